/* The 8-lane field8 rANS decode kernel: a port of bigsmall/codecs/_generated/decode8.py.
 *
 * Same groups, same order of steps, same return codes (-1 header/length, -2 final states,
 * -3 stream position). One addition for memory safety on any table content: a decoded
 * exponent symbol is masked to eb bits and a mantissa symbol to mb bits before it indexes the
 * next table (the tables built by decode_tables.build_tables hold nothing wider, so valid
 * input decodes identically); context indices and table sizes are checked by the caller
 * (_kernels.c) before the kernel runs.
 */
#ifndef BIGSMALL_NATIVE_DECODE8_H
#define BIGSMALL_NATIVE_DECODE8_H

#include "common.h"

#define D8_RL ((i64)1 << 31)
#define D8_HEADER 68

typedef struct {
    i64 ncols;
    const i64 *rowctx, *colctx, *rshift;
    const uint8_t *tsym, *msym;
    const uint32_t *tfc, *mfc;
    i64 pbits, mpbits, p, eb, mb;
} d8_model;

static i64 d8_raw_bits(i64 k0, i64 n, i64 ncols, i64 rbits, const i64 *rshift) {
    i64 total = 0, t = 0;
    while (t < n) {
        i64 k = k0 + t;
        i64 i = k / ncols;
        i64 seg = bs_min(ncols - (k - i * ncols), n - t);
        total += seg * (rbits - rshift[i]);
        t += seg;
    }
    return total;
}

/* Exponent step of lane L: context cx, state x##L, symbol s##L. */
#define D8_EXP(L, CX)                                                      \
    do {                                                                   \
        i64 cx_ = (CX), slot_ = x##L & amask;                              \
        s##L = (i64)tsym[(cx_ << pbits) + slot_] & emask;                  \
        i64 fc_ = (i64)tfc[(cx_ << eb) + s##L];                            \
        x##L = (fc_ & 0xFFFF) * (x##L >> pbits) + slot_ - (fc_ >> 16);     \
    } while (0)

#define D8_MANT(L)                                                         \
    do {                                                                   \
        i64 slot_ = x##L & bmask;                                          \
        i64 m_ = (i64)msym[(s##L << mpbits) + slot_] & mmask;              \
        i64 fc_ = (i64)mfc[(s##L << mb) + m_];                             \
        x##L = (fc_ & 0xFFFF) * (x##L >> mpbits) + slot_ - (fc_ >> 16);    \
        s##L = (s##L << mb) | m_;                                          \
    } while (0)

/* Branch-free renormalisation of the fast loop (the read stays inside the buffer). */
#define D8_RENORM_FAST(L)                                                  \
    do {                                                                   \
        i64 w_ = (i64)((uint64_t)x##L << 32) | bs_ld32(buf, sp);           \
        i64 c_ = -(i64)(x##L < D8_RL); /* all ones or zero: no branch */   \
        sp += c_ & 4;                                                      \
        x##L = (w_ & c_) | (x##L & ~c_);                                   \
    } while (0)

#define D8_RAW_FAST(L)                                                     \
    do {                                                                   \
        i64 q_ = ub + (L) * bw;                                            \
        i64 r_ = ((bs_ld64(buf, q_ >> 3) >> (q_ & 7)) & bm) << rs;         \
        bs_st(out, W, t + (L), (s##L << p) | (r_ & lowmask) | ((r_ >> p) << hishift)); \
    } while (0)

#define D8_ALL(M) M(0); M(1); M(2); M(3); M(4); M(5); M(6); M(7)

/* p, eb, mb, pbits, mpbits: the model's, as arguments so that an instantiation for a common
 * layout folds them into constants (_kernels.c). */
BS_INLINE int d8_kernel(const d8_model *m, void *out, const int W, i64 n, i64 k0,
                        const uint8_t *buf, i64 blen, const i64 p, const i64 eb, const i64 mb,
                        const i64 pbits, const i64 mpbits) {
    const i64 ncols = m->ncols;
    const i64 *rowctx = m->rowctx, *colctx = m->colctx, *rshift = m->rshift;
    const uint8_t *tsym = m->tsym, *msym = m->msym;
    const uint32_t *tfc = m->tfc, *mfc = m->mfc;
    if (n == 0) return blen == 0 ? 0 : -1;
    if (blen < D8_HEADER) return -1;
    i64 slen = bs_ld32(buf, 0);
    i64 c = eb + mb;
    i64 rbits = (i64)W * 8 - c;
    if ((slen & 3) ||
        D8_HEADER + slen + bs_floordiv(d8_raw_bits(k0, n, ncols, rbits, rshift) + 7, 8) != blen)
        return -1;
    i64 x0 = bs_ld64(buf, 4), x1 = bs_ld64(buf, 12), x2 = bs_ld64(buf, 20), x3 = bs_ld64(buf, 28);
    i64 x4 = bs_ld64(buf, 36), x5 = bs_ld64(buf, 44), x6 = bs_ld64(buf, 52), x7 = bs_ld64(buf, 60);
    i64 s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    i64 sp = D8_HEADER, send = D8_HEADER + slen, u = send * 8;
    const i64 amask = ((i64)1 << pbits) - 1, bmask = ((i64)1 << mpbits) - 1;
    const i64 emask = ((i64)1 << eb) - 1, mmask = ((i64)1 << mb) - 1;
    /* p + c <= 64; at 64, r_ >> p is 0 (r_ < 2^rbits = 2^p): clamp the shift C cannot do */
    const i64 lowmask = ((i64)1 << p) - 1, hishift = bs_min(p + c, 63);
    i64 t = 0;
    while (t < n) {
        i64 k = k0 + t;
        i64 i = k / ncols;
        i64 j = k - i * ncols;
        i64 G = bs_min(bs_min(bs_floordiv(ncols - j, 8), bs_floordiv(n - t, 8)),
                       bs_floordiv(blen - sp, 32));
        i64 rs = rshift[i];
        i64 bw = rbits - rs;
        if (bw > 0) G = bs_min(G, bs_floordiv(8 * blen - 64 - u, 8 * bw));
        if (G >= 1) {
            i64 rc = rowctx[i];
            i64 bm = ((i64)1 << bw) - 1;
            i64 ub = bw > 0 ? u : 0;
            const i64 *cc = colctx + j;
            /* the reference's order: every exponent step, every mantissa step, the
             * renormalisations, the raw bits (per-lane order measured x0.8: GCC then
             * serialises the lanes behind the word position) */
            if (mb > 0) {
                for (i64 g = 0; g < G; g++) {
                    D8_EXP(0, rc + cc[0]); D8_EXP(1, rc + cc[1]);
                    D8_EXP(2, rc + cc[2]); D8_EXP(3, rc + cc[3]);
                    D8_EXP(4, rc + cc[4]); D8_EXP(5, rc + cc[5]);
                    D8_EXP(6, rc + cc[6]); D8_EXP(7, rc + cc[7]);
                    D8_ALL(D8_MANT);
                    D8_ALL(D8_RENORM_FAST);
                    D8_ALL(D8_RAW_FAST);
                    ub += 8 * bw;
                    t += 8;
                    cc += 8;
                }
            } else {
                for (i64 g = 0; g < G; g++) {
                    D8_EXP(0, rc + cc[0]); D8_EXP(1, rc + cc[1]);
                    D8_EXP(2, rc + cc[2]); D8_EXP(3, rc + cc[3]);
                    D8_EXP(4, rc + cc[4]); D8_EXP(5, rc + cc[5]);
                    D8_EXP(6, rc + cc[6]); D8_EXP(7, rc + cc[7]);
                    D8_ALL(D8_RENORM_FAST);
                    D8_ALL(D8_RAW_FAST);
                    ub += 8 * bw;
                    t += 8;
                    cc += 8;
                }
            }
            if (bw > 0) u = ub;
        } else {
            /* the slow form: one group of up to 8 units, every read tested */
            i64 cxv[8] = {0}, bv[8] = {0}, hv[8] = {0};
            i64 lanes = bs_min(8, n - t);
            for (i64 l = 0; l < lanes; l++) {
                i64 k_ = k0 + t + l;
                i64 i_ = k_ / ncols;
                cxv[l] = rowctx[i_] + colctx[k_ - i_ * ncols];
                hv[l] = rshift[i_];
                bv[l] = rbits - hv[l];
            }
            i64 xs[8] = {x0, x1, x2, x3, x4, x5, x6, x7};
            i64 ss[8] = {s0, s1, s2, s3, s4, s5, s6, s7};
            for (i64 l = 0; l < lanes; l++) {
                i64 slot = xs[l] & amask;
                ss[l] = (i64)tsym[(cxv[l] << pbits) + slot] & emask;
                i64 fc = (i64)tfc[(cxv[l] << eb) + ss[l]];
                xs[l] = (fc & 0xFFFF) * (xs[l] >> pbits) + slot - (fc >> 16);
            }
            if (mb > 0) {
                for (i64 l = 0; l < lanes; l++) {
                    i64 slot = xs[l] & bmask;
                    i64 m_ = (i64)msym[(ss[l] << mpbits) + slot] & mmask;
                    i64 fc = (i64)mfc[(ss[l] << mb) + m_];
                    xs[l] = (fc & 0xFFFF) * (xs[l] >> mpbits) + slot - (fc >> 16);
                    ss[l] = (ss[l] << mb) | m_;
                }
            }
            int bad = 0;
            for (i64 l = 0; l < lanes; l++) {
                if (xs[l] < D8_RL) {
                    if (sp + 4 > send) { bad = 1; break; }
                    xs[l] = (i64)((uint64_t)xs[l] << 32) | bs_ld32(buf, sp);
                    sp += 4;
                }
            }
            x0 = xs[0]; x1 = xs[1]; x2 = xs[2]; x3 = xs[3];
            x4 = xs[4]; x5 = xs[5]; x6 = xs[6]; x7 = xs[7];
            s0 = ss[0]; s1 = ss[1]; s2 = ss[2]; s3 = ss[3];
            s4 = ss[4]; s5 = ss[5]; s6 = ss[6]; s7 = ss[7];
            if (bad) return -3;
            for (i64 l = 0; l < lanes; l++) {
                i64 q_ = u;
                u += bv[l];
                i64 bi_ = q_ >> 3;
                i64 a_ = bi_ + 8 <= blen ? bs_ld64(buf, bi_) : bs_tail64(buf, blen, bi_);
                i64 r_ = ((a_ >> (q_ & 7)) & (((i64)1 << bv[l]) - 1)) << hv[l];
                bs_st(out, W, t + l, (ss[l] << p) | (r_ & lowmask) | ((r_ >> p) << hishift));
            }
            t += 8;
        }
    }
    if (x0 != D8_RL || x1 != D8_RL || x2 != D8_RL || x3 != D8_RL || x4 != D8_RL ||
        x5 != D8_RL || x6 != D8_RL || x7 != D8_RL)
        return -2;
    if (sp != send) return -3;
    return 0;
}

#endif
