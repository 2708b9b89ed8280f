/* The 4-lane fieldp (prefix code) decode kernel: a port of
 * bigsmall/codecs/_generated/decodep.py.
 *
 * Same groups, same order, same return codes (-1 header, -3 a lane past its stream or not
 * ending in its last byte, -4 a code the tables do not have). One addition for memory safety
 * on any table content: a second-level index outside t2 returns -4 (the tables built by
 * prefix.decode_model never produce one, so valid input decodes identically); context indices
 * and table sizes are checked by the caller (_kernels.c) before the kernel runs.
 */
#ifndef BIGSMALL_NATIVE_DECODEP_H
#define BIGSMALL_NATIVE_DECODEP_H

#include "common.h"

#define DP_HEADER 16
#define DP_MAXCODE 15
#define DP_L1 10
#define DP_RAWT_BITS 10

typedef struct {
    i64 ncols;
    const i64 *rowctx, *colsh, *rshift, *dirs;
    const uint16_t *t1, *t2;
    i64 nt2, p, eb, mb;
} dp_model;

/* Table entry of the code at bit q of lane L's stream: e_ (length << 12 | symbol), or
 * return -4. ``T1``/``DIRS``: tables (row offset folded in), ``TI``: the index. */
#define DP_LOOKUP(T1, DIRS, TI, W_)                                        \
    do {                                                                   \
        e_ = (i64)(T1)[TI];                                                \
        if (e_ >= 0xE000) {                                                \
            if (e_ < 0xF000) return -4;                                    \
            i64 d_ = (DIRS)[TI];                                           \
            uint64_t x2_ = (uint64_t)((d_ >> 4) +                          \
                                      (((W_) >> DP_L1) & (((i64)1 << (d_ & 15)) - 1))); \
            if (x2_ >= (uint64_t)nt2) return -4;                           \
            e_ = (i64)t2[x2_];                                             \
        }                                                                  \
    } while (0)

#define DP_FAST(L, RAWEXPR, ADV)                                                       \
    do {                                                                   \
        i64 w_ = bs_ld64(buf, q##L >> 3) >> (q##L & 7);                    \
        i64 ti_ = cs[L] | (w_ & 1023);                                     \
        i64 e_;                                                            \
        DP_LOOKUP(t1r, dirsr, ti_, w_);                                    \
        i64 ln_ = e_ >> 12;                                                \
        i64 r_ = RAWEXPR;                                                  \
        q##L += ln_ + ADV;                                                 \
        bs_st(out, W, t + (L), ((e_ & 4095) << p) | DP_RAW(r_));                           \
    } while (0)

#define DP_SLOW(L)                                                         \
    if (t + (L) < n) {                                                     \
        i64 k_ = k0 + t + (L);                                             \
        i64 i_ = k_ / ncols;                                               \
        i64 cx = rowctx[i_] + (colsh[k_ - i_ * ncols] >> DP_L1);           \
        i64 h_ = rshift[i_];                                               \
        i64 b_ = rbits - h_;                                               \
        i64 bi_ = q##L >> 3;                                               \
        i64 a_ = bi_ + 8 <= blen ? bs_ld64(buf, bi_) : bs_tail64(buf, blen, bi_); \
        i64 w_ = a_ >> (q##L & 7);                                         \
        i64 ti_ = (cx << DP_L1) | (w_ & 1023);                             \
        i64 e_;                                                            \
        DP_LOOKUP(t1, dirs, ti_, w_);                                      \
        i64 ln_ = e_ >> 12;                                                \
        i64 r_ = ((w_ >> ln_) & (((i64)1 << b_) - 1)) << h_;               \
        q##L += ln_ + b_;                                                  \
        if (q##L > 8 * z##L) return -3;                                    \
        bs_st(out, W, t + (L), ((e_ & 4095) << p) | (r_ & lowmask) | ((r_ >> p) << hishift)); \
    }

/* The fast loop, G groups of 4 units in one row: without and with a row shift. */
#define DP_LOOPS                                                           \
    if (rs == 0) {                                                         \
        for (i64 g = 0; g < G; g++) {                                      \
            DP_FAST(0, ((w_ >> ln_) & rmask), rbits);                      \
            DP_FAST(1, ((w_ >> ln_) & rmask), rbits);                      \
            DP_FAST(2, ((w_ >> ln_) & rmask), rbits);                      \
            DP_FAST(3, ((w_ >> ln_) & rmask), rbits);                      \
            t += 4;                                                        \
            cs += 4;                                                       \
        }                                                                  \
    } else {                                                               \
        for (i64 g = 0; g < G; g++) {                                      \
            DP_FAST(0, (((w_ >> ln_) & bm) << rs), bw);                    \
            DP_FAST(1, (((w_ >> ln_) & bm) << rs), bw);                    \
            DP_FAST(2, (((w_ >> ln_) & bm) << rs), bw);                    \
            DP_FAST(3, (((w_ >> ln_) & bm) << rs), bw);                    \
            t += 4;                                                        \
            cs += 4;                                                       \
        }                                                                  \
    }

BS_INLINE int dp_kernel(const dp_model *m, void *out, const int W, i64 n, i64 k0,
                        const uint8_t *buf, i64 blen, i64 p, i64 eb, i64 mb) {
    const i64 ncols = m->ncols, nt2 = m->nt2;
    const i64 *rowctx = m->rowctx, *colsh = m->colsh, *rshift = m->rshift, *dirs = m->dirs;
    const uint16_t *t1 = m->t1, *t2 = m->t2;
    if (n == 0) return blen == 0 ? 0 : -1;
    if (blen < DP_HEADER) return -1;
    i64 a0 = DP_HEADER, z0 = a0 + bs_ld32(buf, 0), q0 = 8 * a0;
    i64 a1 = z0, z1 = a1 + bs_ld32(buf, 4), q1 = 8 * a1;
    i64 a2 = z1, z2 = a2 + bs_ld32(buf, 8), q2 = 8 * a2;
    i64 a3 = z2, z3 = a3 + bs_ld32(buf, 12), q3 = 8 * a3;
    if (z3 != blen) return -1;
    const i64 rbits = (i64)W * 8 - eb - mb;
    const i64 rmask = ((i64)1 << rbits) - 1;
    const i64 lowmask = ((i64)1 << p) - 1;
    const i64 hishift = bs_min(p + eb + mb, 63); /* see decode8.h */
    const i64 lim = 8 * (blen - 8);
    /* 16-bit units with at most DP_RAWT_BITS raw bits place them through a table, as the
     * numba layout kernels do (gen_decodep.RAW_TABLE_BITS: one load instead of
     * and/shift/shift/or; the same values, r_ < 2^rbits). The fast loop only. */
    uint16_t rawt[1 << DP_RAWT_BITS];
    const int use_rawt = W == 2 && rbits <= DP_RAWT_BITS;
    if (use_rawt) {
        for (i64 r = 0; r < ((i64)1 << rbits); r++)
            rawt[r] = (uint16_t)((r & lowmask) | ((r >> p) << hishift));
    }
    i64 t = 0;
    while (t < n) {
        i64 k = k0 + t;
        i64 i = k / ncols;
        i64 j = k - i * ncols;
        i64 rs = rshift[i];
        i64 bw = rbits - rs;
        i64 adv = DP_MAXCODE + bw;
        i64 G = bs_min(bs_floordiv(ncols - j, 4), bs_floordiv(n - t, 4));
        G = bs_min(G, bs_floordiv(lim - q0, adv));
        G = bs_min(G, bs_floordiv(lim - q1, adv));
        G = bs_min(G, bs_floordiv(lim - q2, adv));
        G = bs_min(G, bs_floordiv(lim - q3, adv));
        if (G >= 1) {
            i64 rc = rowctx[i];
            const uint16_t *t1r = t1 + (rc << DP_L1);
            const i64 *dirsr = dirs + (rc << DP_L1);
            const i64 *cs = colsh + j;
            i64 bm = ((i64)1 << bw) - 1;
            (void)bm;
            if (use_rawt) {
#define DP_RAW(R) ((i64)rawt[R])
                DP_LOOPS
#undef DP_RAW
            } else {
#define DP_RAW(R) (((R) & lowmask) | (((R) >> p) << hishift))
                DP_LOOPS
#undef DP_RAW
            }
        } else {
            DP_SLOW(0)
            DP_SLOW(1)
            DP_SLOW(2)
            DP_SLOW(3)
            t += 4;
        }
    }
    if (((q0 + 7) >> 3) != z0 || ((q1 + 7) >> 3) != z1 || ((q2 + 7) >> 3) != z2 ||
        ((q3 + 7) >> 3) != z3)
        return -3;
    return 0;
}

#endif
