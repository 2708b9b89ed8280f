/* The fieldp chunk encoder: a port of bigsmall/codecs/_generated/encodep.py (encode_chunk).
 *
 * Same bytes: four lanes (unit t to lane t % 4), each a 64-bit bit accumulator flushed with
 * 8-byte stores into its own scratch region, then u32 lane lengths and the lanes' bytes.
 * One addition for memory safety on any code table: an entry longer than MAXCODE bits is
 * treated like a missing code (the caller raises), so a lane never outgrows its region;
 * code_entries() never makes one. Rows, contexts and the table size are checked by the
 * caller (_kernels.c) before this runs.
 */
#ifndef BIGSMALL_NATIVE_ENCODEP_H
#define BIGSMALL_NATIVE_ENCODEP_H

#include <stdlib.h>

#include "common.h"

#define EP_LANES 4
#define EP_MAXCODE 15

typedef struct {
    i64 ncols, nsym;
    const i64 *rowctx, *colctx, *rshift, *tab;
} ep_model;

BS_INLINE i64 ep_value(const void *v, int W, i64 t) {
    switch (W) {
    case 1: return ((const uint8_t *)v)[t];
    case 2: return ((const uint16_t *)v)[t];
    default: return ((const uint32_t *)v)[t];
    }
}

/* One unit into lane L; 0, or -1 for a symbol without a (sane) code. */
#define EP_STEP(L)                                                                           \
    do {                                                                                     \
        i64 ctx_ = rc + colctx[j];                                                           \
        i64 v_ = ep_value(values, W, t + (L));                                               \
        i64 e_ = tab[ctx_ * nsym + ((v_ >> p) & smask)];                                     \
        if (e_ < 0 || (e_ >> 32) > EP_MAXCODE) return -1;                                   \
        i64 raw_ = ((v_ & lowmask) | ((v_ >> hishift) << p)) >> h;                           \
        a[L] |= (e_ & 0xFFFFFFFF) << b[L];                                                   \
        b[L] += e_ >> 32;                                                                    \
        a[L] |= raw_ << b[L];                                                                \
        b[L] += bw;                                                                          \
        uint64_t w_ = (uint64_t)a[L];                                                        \
        memcpy(tmp + q[L], &w_, 8);                                                          \
        q[L] += b[L] >> 3;                                                                   \
        a[L] >>= b[L] & ~(i64)7; /* arithmetic, as numba's int64 */                        \
        b[L] &= 7;                                                                           \
        j += 1;                                                                              \
        if (j == ncols && t + (L) + 1 < n) {                                                 \
            j = 0;                                                                           \
            i += 1;                                                                          \
            rc = rowctx[i];                                                                  \
            h = rshift[i];                                                                   \
            bw = rbits - h;                                                                  \
        }                                                                                    \
    } while (0)

/* The four lanes of a chunk of n >= 1 units into tmp (4 * cap bytes); their byte lengths in
 * size[]. cap: ep_cap(). Returns 0, or -1 for a missing code. */
BS_INLINE i64 ep_cap(i64 n, i64 rbits) {
    return (((n + EP_LANES - 1) / EP_LANES) * (EP_MAXCODE + rbits) + 7) / 8 + 8;
}

BS_INLINE int ep_kernel(const ep_model *m, const void *values, const int W, i64 n, i64 k0,
                        i64 p, i64 eb, i64 mb, uint8_t *tmp, i64 cap, i64 *size) {
    const i64 ncols = m->ncols, nsym = m->nsym;
    const i64 *rowctx = m->rowctx, *colctx = m->colctx, *rshift = m->rshift, *tab = m->tab;
    const i64 c = eb + mb, rbits = (i64)W * 8 - c;
    const i64 smask = ((i64)1 << c) - 1, lowmask = ((i64)1 << p) - 1, hishift = p + c;
    i64 a[EP_LANES] = {0, 0, 0, 0}, b[EP_LANES] = {0, 0, 0, 0};
    i64 q[EP_LANES] = {0, cap, 2 * cap, 3 * cap};
    i64 i = k0 / ncols, j = k0 - i * ncols;
    i64 rc = rowctx[i], h = rshift[i], bw = rbits - h;
    for (i64 t = 0; t < n; t += EP_LANES) {
        EP_STEP(0);
        if (t + 1 < n) EP_STEP(1);
        if (t + 2 < n) EP_STEP(2);
        if (t + 3 < n) EP_STEP(3);
    }
    for (int l = 0; l < EP_LANES; l++) size[l] = q[l] - l * cap + (b[l] > 0 ? 1 : 0);
    return 0;
}

#endif
