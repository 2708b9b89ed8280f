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
    const uint16_t *tf; /* NULL, or t1 as dp_fast_table makes it (the fast loop reads it) */
} dp_model;

/* The flag bit of a dp_fast_table entry for layout (p, eb, mb): bit 15 where the coded field
 * ends below it (bf16, fp16), else bit 4 (fp16 with its sign coded: the field reaches bit 15,
 * and starts at bit 7 or above). */
#define DP_FAST_ESC(p, eb, mb) ((p) + (eb) + (mb) <= 15 ? 0x8000 : 0x10)

/* Whether layout (W, p, eb, mb) can use a dp_fast_table: 16-bit units whose coded field sits
 * above bit 3 and clear of the flag (the code length goes in bits 0-3), and whose raw bits go
 * through the fast loop's raw table: bf16 and fp16 with 0-3 coded mantissa bits, the sign
 * coded or not. */
#define DP_FAST_OK(W, p, eb, mb)                                                   \
    ((W) == 2 && 16 - (eb) - (mb) <= DP_RAWT_BITS && (p) + (eb) + (mb) <= 16 &&    \
     (p) >= ((p) + (eb) + (mb) <= 15 ? 4 : 5))

/* t1 re-encoded for the fast loop, entry by entry: ``(sym << p) | len`` (the unit's coded bits
 * in place, its code length in bits 0-3), or ``esc`` (DP_FAST_ESC) where the fast loop must
 * take the t1 path (an empty context, a code longer than L1, or a symbol that does not fit
 * beside the length and the flag). Why: the loop then spends one mask for the length and one
 * for the placed symbol where the t1 entry needs a shift, a mask and a shift (about 20 % fewer
 * instructions per unit); the same values come out (property_tests/test_native_fieldp_loop.py).
 * Vectorises. */
static void dp_fast_table(const uint16_t *t1, i64 n1, i64 p, uint32_t esc, uint16_t *tf) {
    const uint32_t room = 0xFFF0u & ~esc; /* where a placed symbol may have bits */
    for (i64 i = 0; i < n1; i++) {
        uint32_t e = t1[i];
        uint32_t hi = (e & 4095u) << p;
        tf[i] = (uint16_t)((e >= 0xE000u || (hi & ~room)) ? esc : (hi | (e >> 12)));
    }
}

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

#define DP_FAST(STEP, L, RAWEXPR, ADV)                                                       \
    do {                                                                   \
        i64 v_ = bs_ld64(buf, q##L >> 3) >> (q##L & 7);                    \
        STEP(L, 0, v_, RAWEXPR, ADV);                                   \
    } while (0)

/* Unit t + L + OFF of lane L from its bits in w_ (the lane's stream from bit q_L on): look up,
 * store, advance q_L. */
#define DP_STEP(L, OFF, WV, RAWEXPR, ADV)                                  \
    do {                                                                   \
        i64 w_ = (WV);                                                     \
        i64 ti_ = cs[(L) + (OFF)] | (w_ & 1023);                           \
        i64 e_;                                                            \
        DP_LOOKUP(t1r, dirsr, ti_, w_);                                    \
        i64 ln_ = e_ >> 12;                                                \
        i64 r_ = RAWEXPR;                                                  \
        q##L += ln_ + ADV;                                                 \
        bs_st(out, W, t + (L) + (OFF), ((e_ & 4095) << p) | DP_RAW(r_));   \
        sh##L = ln_ + ADV;                                                 \
    } while (0)

/* DP_STEP through the fast table (dp_fast_table); its flagged entries take DP_LOOKUP. */
#define DP_STEPF(L, OFF, WV, RAWEXPR, ADV)                                 \
    do {                                                                   \
        i64 w_ = (WV);                                                     \
        i64 ti_ = cs[(L) + (OFF)] | (w_ & 1023);                           \
        i64 f_ = (i64)tfr[ti_];                                            \
        i64 ln_, hi_;                                                      \
        if (__builtin_expect((f_ & DP_FAST_ESC(p, eb, mb)) != 0, 0)) {     \
            i64 e_;                                                        \
            DP_LOOKUP(t1r, dirsr, ti_, w_);                                \
            ln_ = e_ >> 12;                                                \
            hi_ = (e_ & 4095) << p;                                        \
        } else {                                                           \
            ln_ = f_ & 15;                                                 \
            hi_ = f_ & ~(i64)15;                                           \
        }                                                                  \
        i64 r_ = RAWEXPR;                                                  \
        q##L += ln_ + ADV;                                                 \
        bs_st(out, W, t + (L) + (OFF), hi_ | DP_RAW(r_));                  \
        sh##L = ln_ + ADV;                                                 \
    } while (0)

/* Two groups (units t .. t + 7) from one load per lane: a unit spends at most DP_MAXCODE + bw
 * bits, and a load holds >= 57 bits past q_L, so when 2 * (DP_MAXCODE + bw) <= 57 the second
 * unit of a lane is in the word the first one was read from (shifted by what the first spent).
 * The same bits as two loads, decoded and stored in the same order (unit by unit: a corrupt
 * chunk stops at the same unit with the same partial output). */
#define DP_PAIR(STEP, RAWEXPR, ADV)                                              \
    do {                                                                   \
        i64 v0_ = bs_ld64(buf, q0 >> 3) >> (q0 & 7);                       \
        i64 v1_ = bs_ld64(buf, q1 >> 3) >> (q1 & 7);                       \
        i64 v2_ = bs_ld64(buf, q2 >> 3) >> (q2 & 7);                       \
        i64 v3_ = bs_ld64(buf, q3 >> 3) >> (q3 & 7);                       \
        STEP(0, 0, v0_, RAWEXPR, ADV);                                  \
        STEP(1, 0, v1_, RAWEXPR, ADV);                                  \
        STEP(2, 0, v2_, RAWEXPR, ADV);                                  \
        STEP(3, 0, v3_, RAWEXPR, ADV);                                  \
        STEP(0, 4, v0_ >> sh0, RAWEXPR, ADV);                           \
        STEP(1, 4, v1_ >> sh1, RAWEXPR, ADV);                           \
        STEP(2, 4, v2_ >> sh2, RAWEXPR, ADV);                           \
        STEP(3, 4, v3_ >> sh3, RAWEXPR, ADV);                           \
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

/* The fast loop, G groups of 4 units in one row: without and with a row shift; in pairs of
 * groups where the units are short enough (DP_PAIR). */
#define DP_LOOPS(STEP)                                                        \
    if (rs == 0) {                                                         \
        i64 g = 0;                                                         \
        if (2 * (DP_MAXCODE + rbits) <= 57) {                              \
            for (; g + 2 <= G; g += 2) {                                   \
                DP_PAIR(STEP, ((w_ >> ln_) & rmask), rbits);                     \
                t += 8;                                                    \
                cs += 8;                                                   \
            }                                                              \
        }                                                                  \
        for (; g < G; g++) {                                               \
            DP_FAST(STEP, 0, ((w_ >> ln_) & rmask), rbits);                      \
            DP_FAST(STEP, 1, ((w_ >> ln_) & rmask), rbits);                      \
            DP_FAST(STEP, 2, ((w_ >> ln_) & rmask), rbits);                      \
            DP_FAST(STEP, 3, ((w_ >> ln_) & rmask), rbits);                      \
            t += 4;                                                        \
            cs += 4;                                                       \
        }                                                                  \
    } else {                                                               \
        i64 g = 0;                                                         \
        if (2 * (DP_MAXCODE + bw) <= 57) {                                 \
            for (; g + 2 <= G; g += 2) {                                   \
                DP_PAIR(STEP, (((w_ >> ln_) & bm) << rs), bw);                   \
                t += 8;                                                    \
                cs += 8;                                                   \
            }                                                              \
        }                                                                  \
        for (; g < G; g++) {                                               \
            DP_FAST(STEP, 0, (((w_ >> ln_) & bm) << rs), bw);                    \
            DP_FAST(STEP, 1, (((w_ >> ln_) & bm) << rs), bw);                    \
            DP_FAST(STEP, 2, (((w_ >> ln_) & bm) << rs), bw);                    \
            DP_FAST(STEP, 3, (((w_ >> ln_) & bm) << rs), bw);                    \
            t += 4;                                                        \
            cs += 4;                                                       \
        }                                                                  \
    }

BS_INLINE int dp_kernel(const dp_model *m, void *out, const int W, i64 n, i64 k0,
                        const uint8_t *buf, i64 blen, i64 p, i64 eb, i64 mb) {
    const i64 ncols = m->ncols, nt2 = m->nt2;
    const i64 *rowctx = m->rowctx, *colsh = m->colsh, *rshift = m->rshift, *dirs = m->dirs;
    const uint16_t *t1 = m->t1, *t2 = m->t2, *tf = m->tf;
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
            i64 sh0 = 0, sh1 = 0, sh2 = 0, sh3 = 0; /* what each lane's last unit spent */
            (void)bm;
            const uint16_t *tfr = tf + (rc << DP_L1);
            (void)tfr;
            if (use_rawt && DP_FAST_OK(W, p, eb, mb) && tf != NULL) {
#define DP_RAW(R) ((i64)rawt[R])
                DP_LOOPS(DP_STEPF)
            } else if (use_rawt) {
                DP_LOOPS(DP_STEP)
#undef DP_RAW
            } else {
#define DP_RAW(R) (((R) & lowmask) | (((R) >> p) << hishift))
                DP_LOOPS(DP_STEP)
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
