/* The delta codec's chunk decoder for version 3 (codecs/delta.py): ``lanes`` rANS states a
 * chunk (32), element k on state k % lanes, one word stream read in element order. Included by
 * _delta.c after delta_decode.h, once per instruction set (DD_NS, DD_SIMD), and reusing its
 * scalar element step (DD_NS(step), DD_NS(ctx)): same arguments, return value and bytes as the
 * numba ``_decode`` with the same ``lanes``.
 *
 * Why 32 states: with 4 (version 2) an element's symbol look-up, multiply and renormalisation
 * were a scalar chain (4.4-8 ns an element). With 32, the AVX2 build steps 8 consecutive
 * elements at once, each on its own state (a 32-bit lane of a vector): the context, symbol and
 * frequency come from three gathers, the renormalisation words from one load spread over the
 * lanes that need one (a permutation picked by the mask: they are the next words of the stream,
 * in lane order, which is the scalar order), the raw bits from one gather at each lane's bit
 * offset (a prefix sum of the lanes' counts), and the inverse map is vector arithmetic. Four
 * vectors (32 states) keep four independent state chains in flight.
 *
 * The vector step commits nothing unless all it reads lies inside the chunk and the raw bits do
 * not run past its end; otherwise those 8 elements are decoded by the scalar step, which does
 * exactly what the reference does (errors included). States are 32-bit in the vectors: with
 * tables prepare builds (frequencies summing to 2**pb, the slot table matching them) a state
 * never leaves [0, 2**32), whatever the chunk's bytes; tables that do not (only a direct call
 * could pass them) give other bytes, never an out-of-bounds read.
 */
#ifndef BIGSMALL_NATIVE_DELTA_WIDE_COMMON
#define BIGSMALL_NATIVE_DELTA_WIDE_COMMON
#define DW_MAXL 64 /* at most this many states a chunk (_delta.c checks) */

/* The AVX2 step's slot table: per context c and slot (st[(c << pb) + slot]) the symbol, its
 * frequency and slot - cum, in one word (sym | freq << 6 | (slot - cum) << 19), so that a
 * state costs one gather instead of two dependent ones (slot -> symbol -> frequency); built
 * from the frequencies by runs (each symbol's slots are consecutive). Returns 0 where a table
 * does not fit that word or does not sum to 2**pb (only a direct call can pass such tables;
 * the scalar step then decodes everything). Needs pb <= 12 and an alphabet <= 64. */
static int dw_slot_table(const dd_model *m, uint32_t *st) {
    const int64_t nctx = m->nk * m->nr, ns = (int64_t)1 << m->pb, alpha = m->alpha;
    if (m->pb > 12 || alpha > 64) return 0;
    for (int64_t c = 0; c < nctx; c++) {
        const uint32_t *fc = m->tfc + c * alpha;
        uint32_t *t = st + (c << m->pb);
        int64_t at = 0;
        for (int64_t s = 0; s < alpha; s++) {
            int64_t f = fc[s] & 0xFFFF, cum = fc[s] >> 16;
            if (f == 0) continue;
            if (cum != at || at + f > ns) return 0;
            for (int64_t j = 0; j < f; j++) t[at + j] = (uint32_t)s | (uint32_t)f << 6 | (uint32_t)j << 19;
            at += f;
        }
        if (at == 0) { /* an empty context: the slot table says 0 (frequency 0, cum 0) */
            for (int64_t j = 0; j < ns; j++) t[j] = (uint32_t)j << 19;
        } else if (at != ns) {
            return 0;
        }
    }
    return 1;
}

/* Element k (not a copy, or a copy) on state xs[k & (lanes - 1)], by the scalar step. */
#define DW_SCALAR(K)                                                                         \
    do {                                                                                     \
        uint64_t b_ = dd_ld(base, W, (K));                                                   \
        int64_t c_ = DD_NS(ctx)(m, rt, b_, KIND);                                            \
        if (c_ < 0) {                                                                        \
            dd_st(out, W, (K), b_);                                                          \
        } else {                                                                             \
            uint64_t x_ = xs[(K) & (lanes - 1)];                                             \
            int e_ = DD_NS(step)(m, chunk, size, &io, &x_, b_, c_, out, (K), W, KIND, PB);   \
            xs[(K) & (lanes - 1)] = (uint32_t)x_;                                            \
            if (e_) return e_;                                                               \
        }                                                                                    \
    } while (0)
#endif

#if DD_SIMD
/* The 8 elements at k (a multiple of 8, in one row of cluster rc) on the states xs[0..7].
 * Returns 0 with everything committed, or 1 with nothing changed (the caller decodes them one
 * by one): a read would leave the chunk, or the raw bits run past its end. st: the slot table
 * (dw_slot_table); lut: per 8-bit mask, lane j -> the number of set bits below j (the word a
 * renormalising lane takes).
 *
 * A context that holds only symbol 0 (det: a copy in the scalar step) needs no case of its
 * own here: its entries say symbol 0 at frequency 2**pb, so the state is left as it is (x >=
 * 2**16: no word read), no raw bits are read and d = 0 gives the base word back. */
DD_INLINE int DD_NS(vec8)(const dd_model *m, const uint8_t *chunk, int64_t size, dd_io *io,
                          __m256i *xs, const void *base, void *out, int64_t k, int64_t rc,
                          const uint32_t *st, const int32_t *lut, int64_t bsafe, int W, int KIND,
                          int PB) {
    const __m256i zero = _mm256_setzero_si256(), one = _mm256_set1_epi32(1);
    const int pb = PB ? PB : (int)m->pb;
    const __m128i cpb = _mm_cvtsi32_si128(pb);
    __m256i b;
    if (W == 2)
        b = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + k)));
    else
        b = _mm256_loadu_si256((const __m256i *)((const uint32_t *)base + k));
    /* the context: clamp(exponent - elo, 0, nk - 1) * nr + rc (floats), rc otherwise */
    __m256i c = _mm256_set1_epi32((int)rc);
    if (KIND == 2) {
        __m256i e = _mm256_and_si256(_mm256_srl_epi32(b, _mm_cvtsi32_si128((int)m->mbits)),
                                     _mm256_set1_epi32((int)((1 << m->cbits) - 1)));
        e = _mm256_min_epi32(_mm256_max_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32((int)m->elo)), zero),
                             _mm256_set1_epi32((int)m->nk - 1));
        c = _mm256_add_epi32(_mm256_mullo_epi32(e, _mm256_set1_epi32((int)m->nr)), c);
    }
    const __m256i x = *xs;
    const __m256i slot = _mm256_and_si256(x, _mm256_set1_epi32((1 << pb) - 1));
    /* one gather: symbol, frequency and slot - cum */
    const __m256i en = _mm256_i32gather_epi32((const int *)st, _mm256_add_epi32(_mm256_sll_epi32(c, cpb), slot), 4);
    const __m256i s = _mm256_and_si256(en, _mm256_set1_epi32(63));
    __m256i xn = _mm256_add_epi32(
        _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(en, 6), _mm256_set1_epi32(0x1FFF)),
                           _mm256_srl_epi32(x, cpb)),
        _mm256_srli_epi32(en, 19));
    const __m256i need = _mm256_cmpeq_epi32(_mm256_srli_epi32(xn, 16), zero);
    /* raw bits: r = max(s / 2 - 1, 0), their offsets a prefix sum */
    const __m256i r = _mm256_max_epi32(_mm256_sub_epi32(_mm256_srli_epi32(s, 1), one), zero);
    __m256i inc = _mm256_add_epi32(r, _mm256_slli_si256(r, 4));
    inc = _mm256_add_epi32(inc, _mm256_slli_si256(inc, 8));
    inc = _mm256_add_epi32(inc, _mm256_and_si256(
        _mm256_permutevar8x32_epi32(inc, _mm256_setr_epi32(3, 3, 3, 3, 3, 3, 3, 3)),
        _mm256_setr_epi32(0, 0, 0, 0, -1, -1, -1, -1)));
    const int64_t tot = (int64_t)(uint32_t)_mm256_extract_epi32(inc, 7);
    const int64_t bit = io->bit;
    const int msk = _mm256_movemask_ps(_mm256_castsi256_ps(need));
    const int64_t pos = io->pos, wbytes = 2 * __builtin_popcount((unsigned)msk);
    const __m256i hasr = _mm256_cmpgt_epi32(r, zero);
    const __m256i wide = W == 4 ? _mm256_cmpgt_epi32(r, _mm256_set1_epi32(25)) : zero;
    const int more = W == 4 && _mm256_movemask_ps(_mm256_castsi256_ps(wide));
    /* far from the chunk's end (nearly always), every read is inside it; else the reference's
     * error (raw bits past the end), words it would read clamped, or a gather past the chunk:
     * the scalar step decodes these 8 */
    const int fast = pos + 16 <= size && bit + tot <= bsafe;
    if (!fast && (pos + wbytes > size || bit + tot > io->rlim ||
                  (tot && io->rbase + ((bit + tot - 1) >> 3) + (more ? 8 : 4) > size)))
        return 1;
    /* commit: the renormalisation words (the next ones, in lane order), the states */
    __m128i w16;
    if (pos + 16 <= size) {
        w16 = _mm_loadu_si128((const __m128i *)(chunk + pos));
    } else { /* the chunk's last bytes: only the words used are real */
        uint8_t tmp[16] = {0};
        memcpy(tmp, chunk + pos, (size_t)(size - pos));
        w16 = _mm_loadu_si128((const __m128i *)tmp);
    }
    __m256i w = _mm256_permutevar8x32_epi32(_mm256_cvtepu16_epi32(w16),
                                            _mm256_loadu_si256((const __m256i *)(lut + 8 * msk)));
    xn = _mm256_blendv_epi8(xn, _mm256_or_si256(_mm256_slli_epi32(xn, 16), w), need);
    *xs = xn;
    io->pos = pos + wbytes;
    io->bit = bit + tot;
    /* each lane's raw bits: 4 bytes at its byte offset (fp32: 8 where some lane needs > 25);
     * lanes without raw bits read nothing */
    const __m256i bp = _mm256_add_epi32(_mm256_set1_epi32((int)bit), _mm256_sub_epi32(inc, r));
    const __m256i at = _mm256_add_epi32(_mm256_set1_epi32((int)io->rbase), _mm256_srli_epi32(bp, 3));
    const __m256i sh = _mm256_and_si256(bp, _mm256_set1_epi32(7));
    __m256i v = _mm256_srlv_epi32(fast ? _mm256_i32gather_epi32((const int *)chunk, at, 1)
                                       : _mm256_mask_i32gather_epi32(zero, (const int *)chunk, at, hasr, 1),
                                  sh);
    if (more) {
        __m256i hi = _mm256_mask_i32gather_epi32(zero, (const int *)chunk,
                                                 _mm256_add_epi32(at, _mm256_set1_epi32(4)), wide, 1);
        v = _mm256_or_si256(v, _mm256_sllv_epi32(hi, _mm256_sub_epi32(_mm256_set1_epi32(32), sh)));
    }
    v = _mm256_and_si256(v, _mm256_sub_epi32(_mm256_sllv_epi32(one, r), one));
    /* z: s below 2, else its leading bits (2 | s & 1) << r and the raw bits */
    const __m256i zl = _mm256_or_si256(
        _mm256_sllv_epi32(_mm256_or_si256(_mm256_set1_epi32(2), _mm256_and_si256(s, one)), r), v);
    const __m256i z = _mm256_blendv_epi8(zl, s, _mm256_cmpgt_epi32(_mm256_set1_epi32(2), s));
    const __m256i mask = _mm256_set1_epi32(W == 2 ? 0xFFFF : -1);
    const __m256i top = _mm256_set1_epi32(W == 2 ? 0x8000 : (int)0x80000000u);
    const int shw = 8 * W - 1;
    /* d's bits above the word are dropped by the masks below */
    const __m256i d = _mm256_xor_si256(_mm256_srli_epi32(z, 1), _mm256_sub_epi32(zero, _mm256_and_si256(z, one)));
    __m256i res;
    if (KIND == 2) {
        __m256i bm = _mm256_xor_si256(
            b, _mm256_or_si256(_mm256_and_si256(_mm256_sub_epi32(zero, _mm256_srli_epi32(b, shw)), mask), top));
        __m256i mm = _mm256_and_si256(_mm256_add_epi32(bm, d), mask);
        res = _mm256_xor_si256(mm, _mm256_or_si256(
            _mm256_and_si256(_mm256_sub_epi32(_mm256_srli_epi32(mm, shw), one), mask), top));
    } else if (KIND == 1) {
        res = _mm256_xor_si256(_mm256_and_si256(_mm256_add_epi32(_mm256_xor_si256(b, top), d), mask), top);
    } else {
        res = _mm256_and_si256(_mm256_add_epi32(b, d), mask);
    }
    if (W == 2) {
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(res, res), 0xD8);
        _mm_storeu_si128((__m128i *)((uint16_t *)out + k), _mm256_castsi256_si128(p));
    } else {
        _mm256_storeu_si256((__m256i *)((uint32_t *)out + k), res);
    }
    return 0;
}
#endif

#if DD_SIMD
/* 8 elements at K on the states at XP (memory), or by the scalar step where the vector step
 * declines them. */
#undef DW_VEC
#define DW_VEC(K, XP)                                                                        \
    do {                                                                                     \
        __m256i v_ = _mm256_loadu_si256((const __m256i *)(XP));                              \
        if (DD_NS(vec8)(m, chunk, size, &io, &v_, base, out, (K), rc, st, lut, bsafe, W, KIND, PB)) { \
            for (int64_t q_ = (K); q_ < (K) + 8; q_++) DW_SCALAR(q_);                        \
        } else {                                                                             \
            _mm256_storeu_si256((__m256i *)(XP), v_);                                        \
        }                                                                                    \
    } while (0)
/* The same with the states in register X (states J .. J + 7 of xs while it is stepped). */
#undef DW_VREG
#define DW_VREG(K, X, J)                                                                     \
    do {                                                                                     \
        if (DD_NS(vec8)(m, chunk, size, &io, &(X), base, out, (K), rc, st, lut, bsafe, W, KIND, PB)) { \
            _mm256_storeu_si256((__m256i *)(xs + (J)), (X));                                 \
            for (int64_t q_ = (K); q_ < (K) + 8; q_++) DW_SCALAR(q_);                        \
            (X) = _mm256_loadu_si256((const __m256i *)(xs + (J)));                           \
        }                                                                                    \
    } while (0)
#endif

DD_INLINE int DD_NS(wide)(const dd_model *mp, const uint8_t *chunk, int64_t size, const void *base,
                          void *out, int64_t n, int64_t k0, int64_t lanes, const int32_t *lut,
                          const uint32_t *st, int W, int KIND, int PB) {
    const dd_model mm = *mp; /* a local copy (see DD_NS(kernel)) */
    const dd_model *m = &mm;
    (void)lut;
    (void)st;
    uint32_t xs[DW_MAXL];
    dd_io io;
    int e = dd_open(chunk, size, lanes, xs, &io);
    if (e) return e;
    /* raw-bit offsets up to which every 8-byte read (a gather of 4 bytes at any lane's offset,
     * fp32's second at + 4) stays inside the chunk */
    int64_t bsafe = 8 * (size - io.rbase - 8);
    bsafe = bsafe < io.rlim ? bsafe : io.rlim;
    (void)bsafe;
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
#if DD_SIMD
        if (st != NULL && (W == 2 || W == 4)) {
            while (k < end && (k & 7)) {
                DW_SCALAR(k);
                k++;
            }
            /* vectors one at a time up to a multiple of 32 elements, then four at a time with
             * the states in registers (lanes == 32: vector j on states 8j .. 8j + 7) */
            for (; k + 8 <= end && ((k & 31) || lanes != 32); k += 8)
                DW_VEC(k, xs + (k & (lanes - 1)));
            if (k + 32 <= end) {
                __m256i x0 = _mm256_loadu_si256((const __m256i *)xs);
                __m256i x1 = _mm256_loadu_si256((const __m256i *)(xs + 8));
                __m256i x2 = _mm256_loadu_si256((const __m256i *)(xs + 16));
                __m256i x3 = _mm256_loadu_si256((const __m256i *)(xs + 24));
                for (; k + 32 <= end; k += 32) {
                    DW_VREG(k, x0, 0);
                    DW_VREG(k + 8, x1, 8);
                    DW_VREG(k + 16, x2, 16);
                    DW_VREG(k + 24, x3, 24);
                }
                _mm256_storeu_si256((__m256i *)xs, x0);
                _mm256_storeu_si256((__m256i *)(xs + 8), x1);
                _mm256_storeu_si256((__m256i *)(xs + 16), x2);
                _mm256_storeu_si256((__m256i *)(xs + 24), x3);
            }
            for (; k + 8 <= end; k += 8) DW_VEC(k, xs + (k & (lanes - 1)));
        }
#endif
        while (k < end) {
            DW_SCALAR(k);
            k++;
        }
    }
    if ((e = dd_close(&io, size)) != 0) return e;
    for (int64_t j = 0; j < lanes; j++)
        if (xs[j] != DD_RANS_L) return 3;
    return 0;
}
