/* The .bsd 4.0 fast chunk's INT4 codes, AVX2: the 8 interleaved rANS states (code t of the
 * chunk, rows flattened, on state t mod 8) in one vector of 8 x u32, 8 consecutive codes a step
 * (dlw_step, dlw_step_any). 5.0's 16 states: two such vectors, A (codes t..t+7) and B
 * (t+8..t+15), a step of each per 16 codes, A's first so that the words are taken in lane order;
 * B's chain waits only for A's word count, so the two latency-bound chains overlap.
 * Included by _dual.c inside a #pragma GCC target("avx2,bmi,bmi2,popcnt") region, after dl_code
 * (the scalar step, on the same tables); dl_codes picks it at run time for lanes 8 and 16: dlw_run
 * for modes 0 and 1 (at most 64 contexts; mode 1 with rows of at least `lanes` codes, so that the
 * code above each of a step's codes is decoded before the step), dlw_run_any for mode 2 (256-1024
 * contexts, each lane's its own). Same return value and, where it decodes, the same codes as the
 * scalar dl_run and the numba _decode_lanes (property_tests/test_dual_fast_codes.py, both
 * instruction sets forced).
 *
 * Why a state fits 32 bits: a state is below 2^32 when a step starts (the initial states are
 * two words), so y = f (x >> 14) + (slot - cum) < 2^14 (2^18 - 1) + 2^14 <= 2^32 and a state
 * that takes a word was below 2^16 -- whatever the words say, and also for a context without a
 * table (its entries say frequency 1 and cum 0 here; the stream is refused anyway).
 *
 * Why no gather: the 8 states are one dependency chain (each step needs the last one's states),
 * so a step costs its latency, and a gather's (the slot's entry of a per-context table) was most
 * of it (~2.9 ns a code with one). Instead the slot is compared with the context's 15 bounds
 * cum[j] (j = 1..15) and the entry of its symbol is E[0] plus the steps E[j] - E[j - 1] of the
 * bounds at or below the slot (cum is nondecreasing, so they telescope to the entry of the
 * symbol whose range holds the slot, as the slot table says; dlw_tables): 15 compares, ands and
 * a tree of adds, all from L1. The entry holds freq - 1, cum and the symbol. This needs the
 * step's contexts from a small set: one zero bin for the 8 codes (all steps but those that
 * cross a row or group boundary at a column that is not a multiple of 8); mode 0: one context,
 * its bounds and steps broadcast; mode 1: the zero bin's 4 contexts (the row above's distance
 * u), each lane's picked by u (a permutation). Other steps (and the first row in mode 1) go
 * through dl_code lane by lane.
 *
 * The renormalisation: the lanes that need a word take the next words of the stream in lane
 * order (which is the scalar order), by a permutation of the next 8 words picked by the mask of
 * those lanes (dl_wlut), the stream advanced by its popcount. A context without a table sets a
 * flag (mode 0: the step's context; mode 1: where one of the zero bin's 4 has none, a bit test
 * per lane), checked every 2048 codes (dl_run's period): the return value is the reference's,
 * which stops at the first error with 1.
 * Near the stream's end (fewer than 8 words left: a vector load would leave it) and for the last
 * n mod 8 codes: dl_code, which clamps its reads and leaves the position past the end for the
 * final check.
 *
 * Mode 2 (dlw_run_any): the 8 contexts differ per column, so bounds broadcast per step do not
 * apply; each lane compares its slot with its context's 16 bounds as int16 (one load, one
 * compare, a mask and its popcount: the symbol) and reads its entry by the scalar index; the 8
 * entries are put together into a vector, and the rest of the step is dlw_run's (~2.6-2.9 ns a
 * code against ~4.8-5.3 for dl_code's bucket search, bench_dual.py --kernels).
 */
#ifndef BIGSMALL_NATIVE_DUAL_CODES_WIDE
#define BIGSMALL_NATIVE_DUAL_CODES_WIDE

/* Per context (mode 0) or zero bin (mode 1: lane l holds context 4 z + (l & 3), the lane's
 * distance u picks it), 32 rows of 8 int32 lanes (nctx * 256 int32 in all): rows 1..15 the
 * bounds cum[j] - 1, row 16 the entry E[0], rows 17..31 the steps E[j] - E[j - 1] (mod 2^32) of
 * the entries E[j] = (freq[j] - 1) | cum[j] << 14 | j << 28 (a symbol of frequency 0: the entry
 * before it, so that its step is 0). The slot's entry is E[0] plus the steps of the bounds at or
 * below the slot (the steps of a nondecreasing cum telescope to the entry of the symbol whose
 * range holds the slot). A context without a table: bounds -1 and entries 0. */
static void dlw_tables(const int64_t *freq, const int64_t *cum, const uint8_t *ok, int64_t nctx, int up, int32_t *bd) {
    for (int64_t g = 0; g < (up ? nctx / 4 : nctx); g++)
        for (int l = 0; l < 8; l++) {
            int64_t cx = up ? 4 * g + (l & 3) : g;
            uint32_t prev = 0;
            for (int j = 0; j < 16; j++) {
                uint32_t ej = prev;
                if (ok[cx] && freq[cx * 16 + j])
                    ej = (uint32_t)(freq[cx * 16 + j] - 1) | (uint32_t)cum[cx * 16 + j] << 14 | (uint32_t)j << 28;
                bd[(g * 32 + j) * 8 + l] = (int32_t)(ok[cx] ? cum[cx * 16 + j] : 0) - 1;
                bd[(g * 32 + 16 + j) * 8 + l] = (int32_t)(j ? ej - prev : ej);
                prev = ej;
            }
        }
}

/* The slot's entry: E[0] + the steps of the 15 bounds below the slot (B(j): bound j, D(j): step
 * j, D(0): E[0]), a tree of adds; DLW_T(j): step j where the slot is above bound j, else 0 */
#define DLW_T(B, D, j) _mm256_and_si256(_mm256_cmpgt_epi32(slot, B(j)), D(j))
#define DLW_ENTRY(B, D)                                                                          \
    ({                                                                                           \
        __m256i a1 = _mm256_add_epi32(DLW_T(B, D, 1), DLW_T(B, D, 2));                           \
        __m256i a2 = _mm256_add_epi32(DLW_T(B, D, 3), DLW_T(B, D, 4));                           \
        __m256i a3 = _mm256_add_epi32(DLW_T(B, D, 5), DLW_T(B, D, 6));                           \
        __m256i a4 = _mm256_add_epi32(DLW_T(B, D, 7), DLW_T(B, D, 8));                           \
        __m256i a5 = _mm256_add_epi32(DLW_T(B, D, 9), DLW_T(B, D, 10));                          \
        __m256i a6 = _mm256_add_epi32(DLW_T(B, D, 11), DLW_T(B, D, 12));                         \
        __m256i a7 = _mm256_add_epi32(DLW_T(B, D, 13), DLW_T(B, D, 14));                         \
        __m256i a8 = _mm256_add_epi32(DLW_T(B, D, 15), D(0));                                    \
        _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a1, a2), _mm256_add_epi32(a3, a4)),  \
                         _mm256_add_epi32(_mm256_add_epi32(a5, a6), _mm256_add_epi32(a7, a8))); \
    })

#define DLW_BLEND(A, B, M) /* B where M's sign bit is set, else A */ \
    _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(A), _mm256_castsi256_ps(B), _mm256_castsi256_ps(M)))

/* The rest of a step from its slots' entries e (freq - 1 | cum << 14 | symbol << 28), shared by
 * both steps: the states updated, the lanes that need a word given the next ones of the stream
 * in lane order (*pp advanced), the 8 symbols stored at q + t. */
static inline __attribute__((always_inline)) __m256i dlw_finish(__m256i x, __m256i e, __m256i slot, int64_t t,
                                                               int64_t p, int64_t *pp, const uint16_t *words,
                                                               uint8_t *q, const int32_t *wlut) {
    const __m256i zero = _mm256_setzero_si256(), smask = _mm256_set1_epi32(MPB - 1);
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i gather8 = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
    /* y = freq (x >> 14) + slot - cum = (freq - 1) (x >> 14) + (x >> 14) + slot - cum */
    const __m256i xh = _mm256_srli_epi32(x, PB);
    __m256i y = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_and_si256(e, smask), xh),
                                 _mm256_sub_epi32(_mm256_add_epi32(xh, slot),
                                                  _mm256_and_si256(_mm256_srli_epi32(e, 14), smask)));
    __m256i need = _mm256_cmpeq_epi32(_mm256_srli_epi32(y, 16), zero);
    /* the lanes that take a word take the next ones, in lane order */
    const unsigned msk = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(need));
    __m256i w = _mm256_permutevar8x32_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(words + p))),
                                            _mm256_loadu_si256((const __m256i *)(wlut + 8 * msk)));
    *pp = p + __builtin_popcount(msk);
    /* the 8 symbols: byte 0 of each lane, to the low 8 bytes */
    __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(_mm256_srli_epi32(e, 28), pick), gather8);
    _mm_storel_epi64((__m128i *)(q + t), _mm256_castsi256_si128(b));
    return _mm256_blendv_epi8(y, _mm256_or_si256(_mm256_slli_epi32(y, 16), w), need);
}

/* One step: codes [t, t + 8) on the 8 states x (8 consecutive lanes of the chunk's), *pp the
 * next word; the vector step where the 8 codes have one zero bin (and, mode 1, their codes above
 * are decoded: t >= cols), else dl_code lane by lane. Errors: *bad, *badv. okbits: bit cx set for
 * a context with a table (nctx <= 64); bd: dlw_tables; wlut: per 8-bit mask, lane j -> the
 * number of set bits below j; fc, c16, lut: dl_code's tables. */
static inline __attribute__((always_inline)) __m256i dlw_step(__m256i x, int64_t t, int64_t *pp, const uint16_t *words,
                                                             int64_t nw, const int32_t *z, const uint8_t *ok,
                                                             uint64_t okbits, uint8_t *q, int64_t cols, int up,
                                                             const uint32_t *fc, const int16_t *c16,
                                                             const uint8_t *lut, const int32_t *bd,
                                                             const int32_t *wlut, int *bad, __m256i *badv) {
    const __m256i one = _mm256_set1_epi32(1), three = _mm256_set1_epi32(3);
    const __m256i smask = _mm256_set1_epi32(MPB - 1), k32 = _mm256_set1_epi32(32);
    const __m256i oklo = _mm256_set1_epi32((int)(uint32_t)okbits), okhi = _mm256_set1_epi32((int)(uint32_t)(okbits >> 32));
    int64_t p = *pp;
    const int64_t z0 = z[t];
    const __m256i zc = _mm256_loadu_si256((const __m256i *)(z + t));
    /* one zero bin for the 8 codes (and, mode 1, the row above decoded: not the first row) */
    const int one_z = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(zc, _mm256_set1_epi32((int)z0)))) == 0xFF;
    if (!one_z || (up && t < cols)) {
        uint32_t x8[8];
        _mm256_storeu_si256((__m256i *)x8, x);
        for (int i = 0; i < 8; i++) {
            uint64_t xi = x8[i];
            dl_code(&xi, t + i, words, nw, &p, z, ok, q, cols, up, fc, c16, lut, NULL, bad);
            x8[i] = (uint32_t)xi;
        }
        *pp = p;
        return _mm256_loadu_si256((const __m256i *)x8);
    }
    const __m256i slot = _mm256_and_si256(x, smask);
    const __m256i *bz = (const __m256i *)(bd + z0 * 256);
    __m256i e;
    if (!up) {
        *bad |= !ok[z0];
#define DLW_B0(j) _mm256_loadu_si256(bz + (j))
#define DLW_D0(j) _mm256_loadu_si256(bz + 16 + (j))
        e = DLW_ENTRY(DLW_B0, DLW_D0);
#undef DLW_B0
#undef DLW_D0
    } else { /* u = min(|q - z| of the code above, 3): each lane's context 4 z + u among 4 */
        __m256i za = _mm256_loadu_si256((const __m256i *)(z + t - cols));
        __m256i qa = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + t - cols)));
        __m256i u = _mm256_min_epi32(_mm256_abs_epi32(_mm256_sub_epi32(qa, za)), three);
        if (((okbits >> (4 * z0)) & 15) != 15) { /* one of the 4 has no table: bit cx of okbits */
            __m256i cx = _mm256_add_epi32(_mm256_slli_epi32(zc, 2), u);
            __m256i okv = _mm256_or_si256(_mm256_srlv_epi32(oklo, cx),
                                          _mm256_srlv_epi32(okhi, _mm256_sub_epi32(cx, k32)));
            *badv = _mm256_or_si256(*badv, _mm256_andnot_si256(okv, one));
        }
#define DLW_B1(j) _mm256_permutevar8x32_epi32(_mm256_loadu_si256(bz + (j)), u)
#define DLW_D1(j) _mm256_permutevar8x32_epi32(_mm256_loadu_si256(bz + 16 + (j)), u)
        e = DLW_ENTRY(DLW_B1, DLW_D1);
#undef DLW_B1
#undef DLW_D1
    }
    return dlw_finish(x, e, slot, t, p, pp, words, q, wlut);
}

/* Codes [0, n) on the lanes (8 or 16, a constant) states xs; *wp: the next word. 0, or 1 once an
 * error is seen. 16 lanes: two vectors, A (codes t..t+7) and B (t+8..t+15), a step each per 16
 * codes, A's first (its words come first in the stream); B's chain does not wait for A's (only
 * the word position does), so the two overlap. Mode 1 needs rows of at least lanes codes (the
 * codes above a step's are decoded before it, and not by the step before). */
static inline __attribute__((always_inline)) int dlw_run(uint64_t *xs, int lanes, int64_t n, const uint16_t *words,
                                                        int64_t nw, int64_t *wp, const int32_t *z, const uint8_t *ok,
                                                        uint64_t okbits, uint8_t *q, int64_t cols, int up,
                                                        const uint32_t *fc, const int16_t *c16, const uint8_t *lut,
                                                        const int32_t *bd, const int32_t *wlut) {
    __m256i xa = _mm256_setr_epi32((int)xs[0], (int)xs[1], (int)xs[2], (int)xs[3], (int)xs[4], (int)xs[5],
                                   (int)xs[6], (int)xs[7]);
    __m256i xb = xa;
    if (lanes == 16)
        xb = _mm256_setr_epi32((int)xs[8], (int)xs[9], (int)xs[10], (int)xs[11], (int)xs[12], (int)xs[13],
                               (int)xs[14], (int)xs[15]);
    __m256i badv = _mm256_setzero_si256();
    int64_t t = 0, p = *wp;
    int bad = 0;
    while (t + lanes <= n && p + lanes <= nw) {
        int64_t stop = t + 2048 < n - (lanes - 1) ? t + 2048 : n - (lanes - 1); /* steps start below n - lanes + 1 */
        for (; t < stop && p + lanes <= nw; t += lanes) {
            xa = dlw_step(xa, t, &p, words, nw, z, ok, okbits, q, cols, up, fc, c16, lut, bd, wlut, &bad, &badv);
            if (lanes == 16)
                xb = dlw_step(xb, t + 8, &p, words, nw, z, ok, okbits, q, cols, up, fc, c16, lut, bd, wlut, &bad, &badv);
        }
        if (bad || !_mm256_testz_si256(badv, badv)) return 1;
    }
    uint32_t x16[16];
    _mm256_storeu_si256((__m256i *)x16, xa);
    _mm256_storeu_si256((__m256i *)(x16 + 8), xb);
    for (int i = 0; i < lanes; i++) xs[i] = x16[i];
    for (; t < n; t++) dl_code(&xs[t & (lanes - 1)], t, words, nw, &p, z, ok, q, cols, up, fc, c16, lut, NULL, &bad);
    *wp = p;
    return bad || p > nw;
}

/* Mode 2 (and any contexts, up = 0, more than 64): each lane's context its own, from 256-1024.
 * Per call, per context: its 16 bounds as int16 (b16: 32767, then cum[j] - 1; a context without
 * a table: 32767, never below a slot) and its 16 entries (et: as dlw_tables', 0 for a context
 * without a table); nctx * 24 u32 in all. */
static void dlw_tables_any(const int64_t *freq, const int64_t *cum, const uint8_t *ok, int64_t nctx, int16_t *b16,
                           uint32_t *et) {
    for (int64_t cx = 0; cx < nctx; cx++)
        for (int j = 0; j < 16; j++) {
            int64_t f = ok[cx] ? freq[cx * 16 + j] : 0, c = cum[cx * 16 + j];
            b16[cx * 16 + j] = (int16_t)(ok[cx] && j ? c - 1 : 32767);
            et[cx * 16 + j] = f ? (uint32_t)(f - 1) | (uint32_t)c << 14 | (uint32_t)j << 28 : 0;
        }
}

/* Lane L's entry: its slot (broadcast from s2 as 16 x int16) compared with its context's 16
 * bounds, the count of those below it (two mask bits each) its symbol. */
#define DLW_ANY_LANE(L)                                                                              \
    ({                                                                                               \
        const int64_t c_ = z[t + (L)];                                                               \
        *good &= ok[c_];                                                                             \
        const __m256i r_ = _mm256_loadu_si256((const __m256i *)(b16 + c_ * 16));                     \
        const unsigned m_ = (unsigned)_mm256_movemask_epi8(                                          \
            _mm256_cmpgt_epi16(_mm256_permutevar8x32_epi32(s2, _mm256_set1_epi32(L)), r_));          \
        (int)et[c_ * 16 + (__builtin_popcount(m_) >> 1)];                                            \
    })

/* One step of mode 2: codes [t, t + 8) on the 8 states x, *pp the next word. */
static inline __attribute__((always_inline)) __m256i dlw_step_any(__m256i x, int64_t t, int64_t *pp,
                                                                 const uint16_t *words, const int32_t *z,
                                                                 const uint8_t *ok, uint8_t *q, const int16_t *b16,
                                                                 const uint32_t *et, const int32_t *wlut,
                                                                 uint8_t *good) {
    const __m256i smask = _mm256_set1_epi32(MPB - 1);
    const int64_t p = *pp;
    const __m256i slot = _mm256_and_si256(x, smask);
    const __m256i s2 = _mm256_or_si256(slot, _mm256_slli_epi32(slot, 16));
    const int e0 = DLW_ANY_LANE(0), e1 = DLW_ANY_LANE(1), e2 = DLW_ANY_LANE(2), e3 = DLW_ANY_LANE(3);
    const int e4 = DLW_ANY_LANE(4), e5 = DLW_ANY_LANE(5), e6 = DLW_ANY_LANE(6), e7 = DLW_ANY_LANE(7);
    __m128i lo = _mm_insert_epi32(_mm_insert_epi32(_mm_insert_epi32(_mm_cvtsi32_si128(e0), e1, 1), e2, 2), e3, 3);
    __m128i hi = _mm_insert_epi32(_mm_insert_epi32(_mm_insert_epi32(_mm_cvtsi32_si128(e4), e5, 1), e6, 2), e7, 3);
    const __m256i e = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
    return dlw_finish(x, e, slot, t, p, pp, words, q, wlut);
}

/* Codes [0, n) (up = 0, nctx > 64: the contexts are z) on the lanes (8 or 16, a constant) states
 * xs, as dlw_run (16: two vectors A, B); fc, c16, bkt: dl_code's tables for the last codes and
 * the stream's end. */
static inline __attribute__((always_inline)) int dlw_run_any(uint64_t *xs, int lanes, int64_t n, const uint16_t *words,
                                                            int64_t nw, int64_t *wp, const int32_t *z,
                                                            const uint8_t *ok, uint8_t *q, int64_t cols,
                                                            const uint32_t *fc, const int16_t *c16,
                                                            const uint8_t *bkt, const int16_t *b16,
                                                            const uint32_t *et, const int32_t *wlut) {
    __m256i xa = _mm256_setr_epi32((int)xs[0], (int)xs[1], (int)xs[2], (int)xs[3], (int)xs[4], (int)xs[5],
                                   (int)xs[6], (int)xs[7]);
    __m256i xb = xa;
    if (lanes == 16)
        xb = _mm256_setr_epi32((int)xs[8], (int)xs[9], (int)xs[10], (int)xs[11], (int)xs[12], (int)xs[13],
                               (int)xs[14], (int)xs[15]);
    int64_t t = 0, p = *wp;
    int bad = 0;
    uint8_t good = 1;
    while (t + lanes <= n && p + lanes <= nw) {
        int64_t stop = t + 2048 < n - (lanes - 1) ? t + 2048 : n - (lanes - 1);
        for (; t < stop && p + lanes <= nw; t += lanes) {
            xa = dlw_step_any(xa, t, &p, words, z, ok, q, b16, et, wlut, &good);
            if (lanes == 16) xb = dlw_step_any(xb, t + 8, &p, words, z, ok, q, b16, et, wlut, &good);
        }
        if (!good) return 1;
    }
    uint32_t x16[16];
    _mm256_storeu_si256((__m256i *)x16, xa);
    _mm256_storeu_si256((__m256i *)(x16 + 8), xb);
    for (int i = 0; i < lanes; i++) xs[i] = x16[i];
    for (; t < n; t++) dl_code(&xs[t & (lanes - 1)], t, words, nw, &p, z, ok, q, cols, 0, fc, c16, NULL, bkt, &bad);
    *wp = p;
    return bad || p > nw;
}
#undef DLW_ANY_LANE

/* Each mode and lane count compiled with its constants. */
#define DLW_ARGS_Z                                                                                       \
    uint64_t *xs, int lanes, int64_t n, const uint16_t *words, int64_t nw, int64_t *wp, const int32_t *z, \
        const uint8_t *ok, uint64_t okbits, uint8_t *q, int64_t cols, const uint32_t *fc, const int16_t *c16, \
        const uint8_t *lut, const int32_t *bd, const int32_t *wlut
__attribute__((noinline)) static int dlw_run_z(DLW_ARGS_Z) {
    return lanes == 16 ? dlw_run(xs, 16, n, words, nw, wp, z, ok, okbits, q, cols, 0, fc, c16, lut, bd, wlut)
                       : dlw_run(xs, 8, n, words, nw, wp, z, ok, okbits, q, cols, 0, fc, c16, lut, bd, wlut);
}

__attribute__((noinline)) static int dlw_run_up(DLW_ARGS_Z) {
    return lanes == 16 ? dlw_run(xs, 16, n, words, nw, wp, z, ok, okbits, q, cols, 1, fc, c16, lut, bd, wlut)
                       : dlw_run(xs, 8, n, words, nw, wp, z, ok, okbits, q, cols, 1, fc, c16, lut, bd, wlut);
}
#undef DLW_ARGS_Z

__attribute__((noinline)) static int dlw_run_any_n(uint64_t *xs, int lanes, int64_t n, const uint16_t *words,
                                                   int64_t nw, int64_t *wp, const int32_t *z, const uint8_t *ok,
                                                   uint8_t *q, int64_t cols, const uint32_t *fc, const int16_t *c16,
                                                   const uint8_t *bkt, const int16_t *b16, const uint32_t *et,
                                                   const int32_t *wlut) {
    return lanes == 16 ? dlw_run_any(xs, 16, n, words, nw, wp, z, ok, q, cols, fc, c16, bkt, b16, et, wlut)
                       : dlw_run_any(xs, 8, n, words, nw, wp, z, ok, q, cols, fc, c16, bkt, b16, et, wlut);
}
#endif
