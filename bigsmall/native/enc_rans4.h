/* The field (format 1.0 layout, 4 lanes, 32-bit states) chunk encoder: a C port of
 * codecs/rans_encode.encode_chunk_fast with _symbols, _put and _lanes4. _lanes4's branch-free
 * steps store a word at w - 1 whether or not they emit it; only [w, cap) is ever read, so the
 * plain step (_put) written once per lane gives the same bytes. The lanes are independent:
 * each one's steps run last unit to first, mantissa then exponent, as numba runs them. */
#ifndef BIGSMALL_NATIVE_ENC_RANS4_H
#define BIGSMALL_NATIVE_ENC_RANS4_H

#include "enc_rans8.h"

BS_INLINE uint64_t e4_put(uint64_t x, const uint64_t *tab, i64 s, uint16_t *wl, i64 *wp) {
    const uint64_t *r = tab + 4 * s;
    if (x >= r[0]) {
        *wp -= 1;
        wl[*wp] = (uint16_t)(x & 0xFFFF);
        x >>= 16;
    }
    uint64_t q = (x + ((x * r[1]) >> 32)) >> r[2];
    return x + (r[3] & 0xFFFFFFFFull) + q * (r[3] >> 32);
}

/* Symbol rows of unit t (rans_encode._symbols: es and ms as numba's int32 arithmetic). */
#define E4_SYMBOLS(T)                                                                         \
    static void e4_symbols_##T(const T *values, i64 n, const er_args *a, int32_t *es,         \
                               int32_t *ms, int32_t *cbase, int32_t *mbase, i64 nmrow) {      \
        for (i64 j = 0; j < a->ncols; j++) cbase[j] = (int32_t)(a->colctx[j] * a->alpha);     \
        for (i64 e = 0; e < nmrow; e++) mbase[e] = (int32_t)(a->mrow[e] * a->malpha);         \
        i64 sh_e = a->p + a->mb, emask = ((i64)1 << a->eb) - 1, mmask = ((i64)1 << a->mb) - 1; \
        for (i64 t = 0; t < n;) {                                                             \
            i64 k = a->k0 + t, i = k / a->ncols, j0 = k - i * a->ncols;                       \
            i64 seg = bs_min(a->ncols - j0, n - t);                                           \
            int32_t rb = (int32_t)(a->rowctx[i] * a->alpha);                                  \
            for (i64 u = 0; u < seg; u++) {                                                   \
                i64 v = (i64)values[t + u], ex = (v >> sh_e) & emask;                         \
                es[t + u] = (int32_t)(rb + cbase[j0 + u] + ex);                               \
                if (a->mb > 0) ms[t + u] = (int32_t)(mbase[ex] + ((v >> a->p) & mmask));      \
            }                                                                                 \
            t += seg;                                                                         \
        }                                                                                     \
    }

E4_SYMBOLS(uint8_t)
E4_SYMBOLS(uint16_t)
E4_SYMBOLS(uint32_t)

/* The lanes' states and words: xs[4], words in wbuf (4 x cap), wps[4] (first used word). */
static void e4_lanes(const int32_t *es, const int32_t *ms, int hasm, const uint64_t *etab,
                     const uint64_t *mtab, const i64 *b, const i64 *ln, uint16_t *wbuf, i64 cap,
                     uint64_t *xs, i64 *wps) {
    for (int L = 0; L < 4; L++) {
        uint64_t x = (uint64_t)1 << 16;
        i64 w = cap;
        uint16_t *wl = wbuf + L * cap;
        for (i64 t = ln[L] - 1; t >= 0; t--) {
            i64 k = b[L] + t;
            if (hasm) x = e4_put(x, mtab, ms[k], wl, &w);
            x = e4_put(x, etab, es[k], wl, &w);
        }
        xs[L] = x;
        wps[L] = w;
    }
}

#endif
