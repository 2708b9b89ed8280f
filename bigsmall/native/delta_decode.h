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

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the delta kernel loads little-endian words with memcpy (the numba path serves others)"
#endif

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
    const int16_t *cmpt;   /* AVX2, pb 13: cum[c][s] (s >= 1; 0x7FFF never) at c * alpha + s */
    const int16_t *ctab;   /* row cluster rc, exponent field e: the context, or -1 where it is
                            * det (a copy): ctab[(rc << cbits) + e] (_delta.c dd_tables) */
    int64_t cbits;         /* ebits for floats, 0 otherwise */
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

/* Decoder state that is not a rANS lane: the word position, and the raw bits as one bit
 * counter into the LSB-first bit stream at rbase (rlim bits long). The numba kernel keeps a
 * 32-bit reservoir (acc, nacc, rpos) instead: the same bits, but each element's read then
 * waited on the reservoir update of the one before (a third of this kernel's time); here the
 * only chain between elements is bit += r. */
typedef struct {
    int64_t pos, bit, rbase, rlim;
} dd_io;

/* 8 bytes from chunk[at], zeros past its end (the last bytes of a chunk). */
static inline uint64_t dd_tail(const uint8_t *chunk, int64_t size, int64_t at) {
    uint64_t w = 0;
    for (int z = 0; z < 8 && at + z < size; z++) w |= (uint64_t)chunk[at + z] << (8 * z);
    return w;
}

DD_INLINE uint64_t dd_bits(const uint8_t *chunk, int64_t size, int64_t rbase, int64_t bit,
                           int64_t r) {
    int64_t at = rbase + (bit >> 3);
    uint64_t w;
    if (at + 8 <= size)
        memcpy(&w, chunk + at, 8);
    else
        w = dd_tail(chunk, size, at);
    return (w >> (bit & 7)) & (((uint64_t)1 << r) - 1); /* r <= 56 */
}

/* A chunk's head (both versions): the rANS byte count and the ``lanes`` final states (each
 * checked >= 2**16) into xs; the word and raw-bit positions into io. Returns 0, or the
 * reference's 1 (truncated) or 3 (bad state). */
static inline int dd_open(const uint8_t *chunk, int64_t size, int64_t lanes, uint32_t *xs,
                          dd_io *io) {
    const int64_t hb = 4 + 4 * lanes;
    if (size < hb) return 1;
    int64_t rbytes = (int64_t)chunk[0] | (int64_t)chunk[1] << 8 | (int64_t)chunk[2] << 16 |
                     (int64_t)chunk[3] << 24;
    if (rbytes < 4 * lanes || 4 + rbytes > size) return 1;
    for (int64_t j = 0; j < lanes; j++) {
        uint32_t v;
        memcpy(&v, chunk + 4 + 4 * j, 4);
        if ((uint64_t)v < DD_RANS_L) return 3;
        xs[j] = v;
    }
    io->pos = hb;
    io->bit = 0;
    io->rbase = 4 + rbytes;
    io->rlim = 8 * (size - io->rbase);
    return 0;
}

/* After a chunk's last element: the words and the raw bits used up exactly (the reference's
 * 1 and 2; the final states are the caller's check). */
static inline int dd_close(const dd_io *io, int64_t size) {
    if (io->pos > io->rbase) return 1;
    if (io->pos != io->rbase || io->rbase + ((io->bit + 7) >> 3) != size) return 2; /* = numba's rpos - nacc / 8 */
    return 0;
}

#endif

/* ------------------------------------------------------------------ the kernel, once per ISA
 *
 * Included once per instruction set by _delta.c with DD_NS (a name prefix) and DD_SIMD defined:
 * 1 inside a "#pragma GCC target("avx2,...")" region, where the symbol of a slot of a 8- or
 * 16-bit word is found by comparing it with the context's cumulative frequencies (one or two
 * AVX2 compares, a table of 32-64 bytes a context, always in L1; fp32's four compares measured
 * slower than the slot table) instead of the numba kernel's slot table (8 kB a
 * context: 512 kB for 64 contexts, so most look-ups missed L1 and stalled the lane: perf
 * showed a third of the kernel's time on the instruction after that load). Both give the
 * same symbol on every table prepare builds: a context's frequencies sum to 2**pb (or are all
 * zero: the slot table then says 0, and so does the compare table, whose entries are then
 * "never"). */
/* One element that is not a copy: its symbol from lane x, renormalisation, raw bits, the
 * inverse map. Returns 0, or 1 (the raw bits run past the chunk: the reference's only error
 * inside the loop). */
#if DD_SIMD
/* The symbol of ``slot`` in the context whose compare row is ``t``: how many of its entries
 * are <= slot (16 * NV of them, 16 a vector; entry 0 and the entries of an empty context are
 * 0x7FFF, never counted). */
DD_INLINE int64_t DD_NS(sym)(const int16_t *t, uint64_t slot, int NV) {
    __m256i sv = _mm256_set1_epi16((short)(slot + 1));
    uint64_t cnt = 0;
    for (int v = 0; v < NV; v += 2) {
        uint64_t bits = (uint32_t)_mm256_movemask_epi8(
            _mm256_cmpgt_epi16(sv, _mm256_loadu_si256((const __m256i *)(t + 16 * v))));
        if (v + 1 < NV)
            bits |= (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi16(
                        sv, _mm256_loadu_si256((const __m256i *)(t + 16 * (v + 1)))))
                    << 32;
        cnt += (uint64_t)__builtin_popcountll(bits);
    }
    return (int64_t)(cnt >> 1);
}
#endif

DD_INLINE int DD_NS(step)(const dd_model *m, const uint8_t *chunk, int64_t size, dd_io *io,
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
    int64_t s;
#if DD_SIMD
    if (PB == 13 && W <= 2) /* 1-2 compares; fp32's four lost to the slot table */
        s = DD_NS(sym)(m->cmpt + c * alpha, slot, W);
    else
#endif
        s = (int64_t)(m->tsym[(c << pb) + (int64_t)slot] & (uint8_t)(2 * wbits - 1));
    uint64_t fc = m->tfc[c * alpha + s];
    x = (fc & 0xFFFF) * (x >> pb) + slot - (fc >> 16);
    uint64_t nx = (uint64_t)(x < DD_RANS_L);
    int64_t p2 = io->pos < size - 2 ? io->pos : size - 2;
    uint16_t w16;
    memcpy(&w16, chunk + p2, 2);
    uint64_t wd = w16;
    *xp = (x << (nx << 4)) | (wd & ((uint64_t)0 - nx));
    io->pos += 2 * (int64_t)nx;
    int64_t r = (int64_t)m->rawn[s];
    /* the numba kernel's only error inside the loop: raw bits past the chunk's end */
    if (io->bit + r > io->rlim) return 1;
    uint64_t v;
    if (W < 8 || r <= 56) {
        v = dd_bits(chunk, size, io->rbase, io->bit, r);
    } else { /* 57..62 raw bits (64-bit words): the low 32, then the rest, as numba takes them */
        v = dd_bits(chunk, size, io->rbase, io->bit, 32) |
            dd_bits(chunk, size, io->rbase, io->bit + 32, r - 32) << 32;
    }
    io->bit += r;
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

/* The context of base word b in the current row (rt: its row cluster's ctab row), -1 for a
 * copy: the numba kernel's exponent bucket, clamp, row cluster and det[] in one look-up. */
DD_INLINE int64_t DD_NS(ctx)(const dd_model *m, const int16_t *rt, uint64_t b, int KIND) {
    if (KIND == 2) return rt[(b >> m->mbits) & (((uint64_t)1 << m->cbits) - 1)];
    return rt[0];
}

/* Element k on lane (k & 3), the lane picked by a switch so that the states stay registers. */
#undef DD_ONE
#undef DD_LANE
#define DD_ONE(K)                                                                            \
    do {                                                                                     \
        uint64_t b_ = dd_ld(base, W, (K));                                                   \
        int64_t c_ = DD_NS(ctx)(m, rt, b_, KIND);                                            \
        if (c_ < 0) {                                                                        \
            dd_st(out, W, (K), b_);                                                          \
        } else {                                                                             \
            int e_;                                                                          \
            switch ((K) & 3) {                                                               \
            case 0: e_ = DD_NS(step)(m, chunk, size, &io, &x0, b_, c_, out, (K), W, KIND, PB); break; \
            case 1: e_ = DD_NS(step)(m, chunk, size, &io, &x1, b_, c_, out, (K), W, KIND, PB); break; \
            case 2: e_ = DD_NS(step)(m, chunk, size, &io, &x2, b_, c_, out, (K), W, KIND, PB); break; \
            default: e_ = DD_NS(step)(m, chunk, size, &io, &x3, b_, c_, out, (K), W, KIND, PB); break; \
            }                                                                                \
            if (e_) return e_;                                                               \
        }                                                                                    \
    } while (0)

/* Element K (a multiple of 4 plus J) on lane J, a constant: no switch. */
#define DD_LANE(K, J, X)                                                                     \
    do {                                                                                     \
        uint64_t b_ = dd_ld(base, W, (K));                                                   \
        int64_t c_ = DD_NS(ctx)(m, rt, b_, KIND);                                            \
        if (c_ < 0) {                                                                        \
            dd_st(out, W, (K), b_);                                                          \
        } else if (DD_NS(step)(m, chunk, size, &io, &(X), b_, c_, out, (K), W, KIND, PB)) {      \
            return 1;                                                                        \
        }                                                                                    \
    } while (0)

DD_INLINE int DD_NS(kernel)(const dd_model *mp, const uint8_t *chunk, int64_t size,
                            const void *base, void *out, int64_t n, int64_t k0, int W, int KIND,
                            int PB) {
    /* a local copy: its fields stay in registers (a store to out may alias anything the
     * compiler cannot prove local, and the library is built with -fno-strict-aliasing) */
    const dd_model mm = *mp;
    const dd_model *m = &mm;
    uint32_t xs[DD_LANES];
    dd_io io;
    int e = dd_open(chunk, size, DD_LANES, xs, &io);
    if (e) return e;
    uint64_t x0 = xs[0], x1 = xs[1], x2 = xs[2], x3 = xs[3];
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
        const int16_t *rt = m->ctab + (rc << m->cbits);
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
    if ((e = dd_close(&io, size)) != 0) return e;
    if (x0 != DD_RANS_L || x1 != DD_RANS_L || x2 != DD_RANS_L || x3 != DD_RANS_L) return 3;
    return 0;
}

