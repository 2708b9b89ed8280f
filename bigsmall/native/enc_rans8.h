/* The field8 chunk encoder: C ports of codecs/_generated/encode8.encode_values (8-lane rANS,
 * 63-bit states, x // f by a 128-bit multiply with the reciprocal tables MAGIC/SHIFT) and
 * codecs/rans_encode._raw_lane_fast (the raw bits, flushed 32 at a time). Same words, states
 * and bytes as numba; every table index is checked by the caller (enc_glue.h) before a call.
 */
#ifndef BIGSMALL_NATIVE_ENC_RANS8_H
#define BIGSMALL_NATIVE_ENC_RANS8_H

#include "enc_count.h"

typedef struct {
    i64 k0, ncols, alpha, malpha, p, eb, mb, pbits, mpbits;
    const i64 *rowctx, *colctx, *mrow, *efreq, *ecum, *mfreq, *mcum;
    const uint64_t *magic, *shift;
} er_args;

static inline uint64_t er_umulhi(uint64_t a, uint64_t b) {
    return (uint64_t)(((unsigned __int128)a * b) >> 64);
}

/* encode_values over n units of T; xs[8] and words (capacity n + 1, in decoder order). cbase
 * (ncols) and mbase (len(mrow)) are scratch. Returns the number of words. */
#define ER_ENCODE(T)                                                                          \
    static i64 er_encode_##T(const er_args *a, const T *values, i64 n, uint64_t *xs,          \
                             uint32_t *words, i64 *cbase, i64 *mbase, i64 nmrow) {            \
        int hasm = a->mb > 0;                                                                 \
        uint64_t x[8];                                                                        \
        for (int L = 0; L < 8; L++) x[L] = (uint64_t)1 << 31;                                 \
        i64 nw = 0;                                                                           \
        for (i64 j = 0; j < a->ncols; j++) cbase[j] = a->colctx[j] * a->alpha;                \
        for (i64 e = 0; e < nmrow; e++) mbase[e] = a->mrow[e] * a->malpha;                    \
        i64 sh_e = a->p + a->mb, emask = ((i64)1 << a->eb) - 1, mmask = ((i64)1 << a->mb) - 1; \
        uint64_t pe = (uint64_t)a->pbits, pm = (uint64_t)a->mpbits;                           \
        uint64_t kshift = (uint64_t)(31 - a->pbits - (hasm ? a->mpbits : 0));                 \
        if (n > 0) {                                                                          \
            i64 k = a->k0 + n - 1, i = k / a->ncols, j = k - i * a->ncols;                    \
            i64 rb = a->rowctx[i] * a->alpha;                                                 \
            for (i64 g = (n - 1) / 8; g >= 0; g--) {                                          \
                i64 base = g * 8;                                                             \
                for (int L = 7; L >= 0; L--) {                                                \
                    if (base + L >= n) continue;                                              \
                    i64 v = (i64)values[base + L];                                            \
                    i64 ex = (v >> sh_e) & emask;                                             \
                    i64 es = rb + cbase[j] + ex;                                              \
                    i64 ei = a->efreq[es], ms = 0, mi = 1;                                    \
                    if (hasm) {                                                               \
                        ms = mbase[ex] + ((v >> a->p) & mmask);                               \
                        mi = a->mfreq[ms];                                                    \
                    }                                                                         \
                    uint64_t xx = x[L];                                                       \
                    if ((xx >> 32) >= (((uint64_t)ei * (uint64_t)mi) << kshift)) {            \
                        words[nw++] = (uint32_t)(xx & 0xFFFFFFFFull);                         \
                        xx >>= 32;                                                            \
                    }                                                                         \
                    if (hasm) {                                                               \
                        uint64_t q = er_umulhi(xx << 1, a->magic[mi]) >> a->shift[mi];        \
                        xx = (q << pm) + (xx - q * (uint64_t)mi) + (uint64_t)a->mcum[ms];     \
                    }                                                                         \
                    uint64_t q = er_umulhi(xx << 1, a->magic[ei]) >> a->shift[ei];            \
                    x[L] = (q << pe) + (xx - q * (uint64_t)ei) + (uint64_t)a->ecum[es];       \
                    j -= 1;                                                                   \
                    if (j < 0 && base + L > 0) {                                              \
                        j = a->ncols - 1;                                                     \
                        i -= 1;                                                               \
                        rb = a->rowctx[i] * a->alpha;                                         \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
        for (int L = 0; L < 8; L++) xs[L] = x[L];                                             \
        for (i64 w = 0, h = nw - 1; w < h; w++, h--) {                                        \
            uint32_t t = words[w];                                                            \
            words[w] = words[h];                                                              \
            words[h] = t;                                                                     \
        }                                                                                     \
        return nw;                                                                            \
    }

ER_ENCODE(uint8_t)
ER_ENCODE(uint16_t)
ER_ENCODE(uint32_t)

/* _raw_lane_fast for rbits = 8 * itemsize - c <= 32; raw has (n * rbits + 7) / 8 + 8 bytes.
 * Returns the bytes written. */
#define ER_RAW(T)                                                                             \
    static i64 er_raw_##T(const T *values, i64 k0, i64 b, i64 e, i64 ncols, i64 p, i64 c,     \
                          const i64 *rshift, uint8_t *raw) {                                  \
        i64 n = e - b, rbits = (i64)sizeof(T) * 8 - c, rpos = 0;                              \
        if (rbits == 0 || n == 0) return 0;                                                   \
        uint64_t lowmask = (uint64_t)(((i64)1 << p) - 1), up = (uint64_t)(p + c), pp = (uint64_t)p; \
        uint64_t acc = 0, nb = 0;                                                             \
        for (i64 t = b; t < e;) {                                                             \
            i64 k = k0 + t, i = k / ncols;                                                    \
            i64 seg = bs_min(ncols - (k - i * ncols), e - t);                                 \
            uint64_t rs = (uint64_t)rshift[i], w = (uint64_t)(rbits - rshift[i]);             \
            for (i64 u = t; u < t + seg; u++) {                                               \
                uint64_t v = (uint64_t)values[u];                                             \
                acc |= (((v & lowmask) | ((v >> up) << pp)) >> rs) << nb;                     \
                nb += w;                                                                      \
                if (nb >= 32) {                                                               \
                    raw[rpos] = (uint8_t)acc;                                                 \
                    raw[rpos + 1] = (uint8_t)(acc >> 8);                                      \
                    raw[rpos + 2] = (uint8_t)(acc >> 16);                                     \
                    raw[rpos + 3] = (uint8_t)(acc >> 24);                                     \
                    rpos += 4;                                                                \
                    acc >>= 32;                                                               \
                    nb -= 32;                                                                 \
                }                                                                             \
            }                                                                                 \
            t += seg;                                                                         \
        }                                                                                     \
        while (nb > 0) {                                                                      \
            raw[rpos++] = (uint8_t)acc;                                                       \
            acc >>= 8;                                                                        \
            nb = nb > 8 ? nb - 8 : 0;                                                         \
        }                                                                                     \
        return rpos;                                                                          \
    }

ER_RAW(uint8_t)
ER_RAW(uint16_t)
ER_RAW(uint32_t)

#endif
