/* The delta codec's chunk decoder: a C port of codecs/delta.py ``_decode`` (format version 2).
 *
 * Same arguments, same return value (0, or 1 truncated, 2 trailing bytes, 3 bad final state),
 * same bytes written before an error: the statements follow the numba kernel one for one. What
 * differs is only how the compiler sees them: the word width W, the kind (0 unsigned, 1 offset
 * binary, 2 float) and the probability bits PB are constants of each instantiation (_delta.c),
 * and the four rANS states live in registers (the numba kernel keeps them in an array it
 * indexes with k % 4, which costs a store and a reload on every element's critical path).
 *
 * Unsigned 64-bit arithmetic throughout, as numba's uint64 in the reference. The caller
 * (_delta.c) has checked every table and index range; symbols are masked to the alphabet
 * (a power of two: 2 * W * 8) before they index a table, a no-op on tables prepare builds.
 */
#ifndef BIGSMALL_NATIVE_DELTA_DECODE_H
#define BIGSMALL_NATIVE_DELTA_DECODE_H

#include <stdint.h>
#include <string.h>

#define DD_LANES 4
#define DD_RANS_L ((uint64_t)1 << 16)
#define DD_INLINE static inline __attribute__((always_inline))

typedef struct {
    const uint8_t *rowctx; /* a row's cluster (< nr), rows k0 / ncols .. (k0 + n - 1) / ncols */
    const uint8_t *tsym;   /* context c, slot -> symbol: tsym[(c << pb) + slot] */
    const uint32_t *tfc;   /* freq | cum << 16 of symbol s in context c: tfc[c * alpha + s] */
    const uint8_t *det;    /* context holds symbol 0 only (copied from the base) */
    const uint8_t *skip;   /* every context of row cluster r is such: whole rows copied */
    const uint64_t *zlead; /* symbol -> z's known bits */
    const uint8_t *rawn;   /* symbol -> raw bits below them */
    int64_t ncols, nr, elo, nk, mbits, ebits, alpha, pb;
} dd_model;

DD_INLINE uint64_t dd_ld(const void *p, int W, int64_t k) {
    switch (W) {
    case 1: return ((const uint8_t *)p)[k];
    case 2: return ((const uint16_t *)p)[k];
    case 4: return ((const uint32_t *)p)[k];
    default: return ((const uint64_t *)p)[k];
    }
}

DD_INLINE void dd_st(void *p, int W, int64_t k, uint64_t v) {
    switch (W) {
    case 1: ((uint8_t *)p)[k] = (uint8_t)v; break;
    case 2: ((uint16_t *)p)[k] = (uint16_t)v; break;
    case 4: ((uint32_t *)p)[k] = (uint32_t)v; break;
    default: ((uint64_t *)p)[k] = v; break;
    }
}

/* Decoder state that is not a rANS lane: word and raw-bit positions, the raw-bit reservoir. */
typedef struct {
    int64_t pos, rpos, nacc;
    uint64_t acc;
} dd_io;

/* One element that is not a copy: its symbol from lane x, renormalisation, raw bits, the
 * inverse map. Returns 0, or 1 (the raw bits run past the chunk: the reference's only error
 * inside the loop). */
DD_INLINE int dd_step(const dd_model *m, const uint8_t *chunk, int64_t size, dd_io *io,
                      uint64_t *xp, uint64_t b, int64_t c, void *out, int64_t k, int W, int KIND,
                      int PB) {
    const int wbits = 8 * W;
    const uint64_t top = (uint64_t)1 << (wbits - 1);
    const uint64_t mask = wbits == 64 ? ~(uint64_t)0 : (((uint64_t)1 << (wbits & 63)) - 1);
    const int sh = wbits - 1;
    const int pb = PB ? PB : (int)m->pb;
    const int64_t alpha = PB ? 2 * wbits : m->alpha;
    const uint64_t pmask = ((uint64_t)1 << pb) - 1;
    uint64_t x = *xp;
    uint64_t slot = x & pmask;
    int64_t s = (int64_t)(m->tsym[(c << pb) + (int64_t)slot] & (uint8_t)(2 * wbits - 1));
    uint64_t fc = m->tfc[c * alpha + s];
    x = (fc & 0xFFFF) * (x >> pb) + slot - (fc >> 16);
    uint64_t nx = (uint64_t)(x < DD_RANS_L);
    int64_t p2 = io->pos < size - 2 ? io->pos : size - 2;
    uint64_t wd = (uint64_t)chunk[p2] | ((uint64_t)chunk[p2 + 1] << 8);
    *xp = (x << (nx << 4)) | (wd & ((uint64_t)0 - nx));
    io->pos += 2 * (int64_t)nx;
    int64_t r = (int64_t)m->rawn[s];
    uint64_t v;
    if (r <= 32 && io->rpos + 4 <= size) {
        uint64_t need = (uint64_t)(io->nacc < r);
        uint32_t w32;
        memcpy(&w32, chunk + io->rpos, 4);
        io->acc |= ((uint64_t)w32 & ((uint64_t)0 - need)) << io->nacc;
        io->rpos += 4 * (int64_t)need;
        io->nacc += 32 * (int64_t)need;
        v = io->acc & (((uint64_t)1 << r) - 1);
        io->acc >>= r;
        io->nacc -= r;
    } else {
        v = 0;
        int64_t got = 0;
        while (r > 0) {
            int64_t take = r < 32 ? r : 32;
            while (io->nacc < take) {
                if (io->rpos >= size) return 1;
                io->acc |= (uint64_t)chunk[io->rpos] << io->nacc;
                io->rpos += 1;
                io->nacc += 8;
            }
            v |= (io->acc & (((uint64_t)1 << take) - 1)) << got;
            io->acc >>= take;
            io->nacc -= take;
            got += take;
            r -= take;
        }
    }
    uint64_t z = m->zlead[s] | v;
    uint64_t d = ((z >> 1) ^ ((uint64_t)0 - (z & 1))) & mask;
    if (KIND == 2) {
        uint64_t mm = ((b ^ ((((uint64_t)0 - (b >> sh)) & mask) | top)) + d) & mask;
        dd_st(out, W, k, mm ^ ((((mm >> sh) - 1) & mask) | top));
    } else if (KIND == 1) {
        dd_st(out, W, k, (((b ^ top) + d) & mask) ^ top);
    } else {
        dd_st(out, W, k, (b + d) & mask);
    }
    return 0;
}

/* The context of base word b in row cluster rc. */
DD_INLINE int64_t dd_ctx(const dd_model *m, uint64_t b, int64_t rc, int KIND, int W) {
    int64_t ce = 0;
    if (KIND == 2) {
        const uint64_t emask = ((uint64_t)1 << m->ebits) - 1;
        int64_t e = (int64_t)((b >> m->mbits) & emask) - m->elo;
        ce = e < 0 ? 0 : (e >= m->nk ? m->nk - 1 : e);
    }
    (void)W;
    return ce * m->nr + rc;
}

/* Element k on lane (k & 3), the lane picked by a switch so that the states stay registers. */
#define DD_ONE(K)                                                                            \
    do {                                                                                     \
        uint64_t b_ = dd_ld(base, W, (K));                                                   \
        int64_t c_ = dd_ctx(m, b_, rc, KIND, W);                                             \
        if (m->det[c_]) {                                                                    \
            dd_st(out, W, (K), b_);                                                          \
        } else {                                                                             \
            int e_;                                                                          \
            switch ((K) & 3) {                                                               \
            case 0: e_ = dd_step(m, chunk, size, &io, &x0, b_, c_, out, (K), W, KIND, PB); break; \
            case 1: e_ = dd_step(m, chunk, size, &io, &x1, b_, c_, out, (K), W, KIND, PB); break; \
            case 2: e_ = dd_step(m, chunk, size, &io, &x2, b_, c_, out, (K), W, KIND, PB); break; \
            default: e_ = dd_step(m, chunk, size, &io, &x3, b_, c_, out, (K), W, KIND, PB); break; \
            }                                                                                \
            if (e_) return e_;                                                               \
        }                                                                                    \
    } while (0)

/* Element K (a multiple of 4 plus J) on lane J, a constant: no switch. */
#define DD_LANE(K, J, X)                                                                     \
    do {                                                                                     \
        uint64_t b_ = dd_ld(base, W, (K));                                                   \
        int64_t c_ = dd_ctx(m, b_, rc, KIND, W);                                             \
        if (m->det[c_]) {                                                                    \
            dd_st(out, W, (K), b_);                                                          \
        } else if (dd_step(m, chunk, size, &io, &(X), b_, c_, out, (K), W, KIND, PB)) {      \
            return 1;                                                                        \
        }                                                                                    \
    } while (0)

DD_INLINE int dd_kernel(const dd_model *m, const uint8_t *chunk, int64_t size, const void *base,
                        void *out, int64_t n, int64_t k0, int W, int KIND, int PB) {
    const int64_t hb = 4 + 4 * DD_LANES;
    if (size < hb) return 1;
    int64_t rbytes = (int64_t)chunk[0] | (int64_t)chunk[1] << 8 | (int64_t)chunk[2] << 16 |
                     (int64_t)chunk[3] << 24;
    if (rbytes < 4 * DD_LANES || 4 + rbytes > size) return 1;
    uint64_t xs[DD_LANES];
    for (int j = 0; j < DD_LANES; j++) {
        uint32_t v;
        memcpy(&v, chunk + 4 + 4 * j, 4);
        if ((uint64_t)v < DD_RANS_L) return 3;
        xs[j] = v;
    }
    uint64_t x0 = xs[0], x1 = xs[1], x2 = xs[2], x3 = xs[3];
    const int64_t rend = 4 + rbytes;
    dd_io io = {hb, rend, 0, 0};
    const int64_t ncols = m->ncols;
    int64_t i = k0 / ncols;
    int64_t rnext = (i + 1) * ncols - k0;
    int64_t rc = n ? (int64_t)m->rowctx[i] : 0;
    int64_t k = 0;
    while (k < n) {
        if (k == rnext) {
            i += 1;
            rnext += ncols;
            rc = (int64_t)m->rowctx[i];
        }
        int64_t end = rnext < n ? rnext : n;
        if (m->skip[rc]) { /* a row whose contexts all hold "unchanged": a copy */
            memcpy((uint8_t *)out + k * W, (const uint8_t *)base + k * W, (size_t)(end - k) * W);
            k = end;
            continue;
        }
        while (k < end && (k & 3)) {
            DD_ONE(k);
            k++;
        }
        for (; k + 4 <= end; k += 4) { /* four elements, one per lane, lanes as constants */
            DD_LANE(k, 0, x0);
            DD_LANE(k + 1, 1, x1);
            DD_LANE(k + 2, 2, x2);
            DD_LANE(k + 3, 3, x3);
        }
        while (k < end) {
            DD_ONE(k);
            k++;
        }
    }
    if (io.pos > rend) return 1;
    if (io.pos != rend || io.rpos - (io.nacc >> 3) != size) return 2;
    if (x0 != DD_RANS_L || x1 != DD_RANS_L || x2 != DD_RANS_L || x3 != DD_RANS_L) return 3;
    return 0;
}

#endif
