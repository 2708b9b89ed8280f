/* The .bsd 4.0 fast chunk's INT4 codes, AVX2: the 8 interleaved rANS states (code t of the
 * chunk, rows flattened, on state t mod 8) in one vector of 8 x u32, 8 consecutive codes a step.
 * Included by _dual.c inside a #pragma GCC target("avx2,bmi,bmi2,popcnt") region; the caller
 * (dl_codes) picks it at run time for lanes == 8 and the slot -> symbol table paths (modes 0
 * and 1: at most 64 contexts; mode 1 only with rows of at least 8 codes, so that the code above
 * each of a step's codes is decoded before the step). Same return value and, where it decodes,
 * the same codes as the scalar dl_run and the numba _decode_lanes
 * (property_tests/test_dual_fast_codes.py, both instruction sets forced).
 *
 * Why a state fits 32 bits: a state is below 2^32 when a step starts (the initial states are
 * two words), so y = f (x >> 14) + (slot - cum) < 2^14 (2^18 - 1) + 2^14 <= 2^32 and a state
 * that takes a word was below 2^16 -- whatever the words say, and also for a context without a
 * table (whose entries are left over from an earlier call: the stream is refused anyway).
 *
 * One step: the slot's entry of the context's table (one gather: symbol, frequency - 1 and
 * slot - cum in one u32, built per call for the used contexts), the new states by one multiply,
 * and the renormalisation words: the lanes that need one take the next words of the stream in
 * lane order (which is the scalar order), by a permutation of the next 8 words picked by the
 * mask of those lanes (dl_wlut), the stream advanced by its popcount. The contexts are built
 * here: mode 0 loads 8 of them; mode 1 loads the 8 codes and zero bins of the row above (from
 * the second row on; in the first row, 0). A context without a table is one bit test (a 64-bit
 * mask of the used contexts) gathered into a flag, checked every 2048 codes (the scalar path's
 * period): the return value is the reference's, which stops at the first error with 1.
 *
 * Near the stream's end (fewer than 8 words left: a vector load would leave it) and for the last
 * n mod 8 codes, the scalar step on the same table (dlw_code), which clamps its reads as dl_code
 * does and leaves the position past the end for the final check.
 */
#ifndef BIGSMALL_NATIVE_DUAL_CODES_WIDE
#define BIGSMALL_NATIVE_DUAL_CODES_WIDE

#define DLW_SLOT (MPB - 1)

/* The wide table of the used contexts: st[(cx << 14) + slot] = s | (f - 1) << 4 | (slot - cum)
 * << 18 (f >= 1 for any symbol a slot maps to; the caller checked the frequencies). */
static void dlw_table(const int64_t *freq, const int64_t *cum, const uint8_t *ok, int64_t nctx, uint32_t *st) {
    for (int64_t cx = 0; cx < nctx; cx++) {
        if (!ok[cx]) continue;
        for (int j = 0; j < 16; j++) {
            int64_t f = freq[cx * 16 + j];
            if (!f) continue;
            uint32_t e = (uint32_t)j | (uint32_t)(f - 1) << 4, *p = st + (cx << PB) + cum[cx * 16 + j];
            for (int64_t i = 0; i < f; i++) p[i] = e | (uint32_t)i << 18;
        }
    }
}

static inline __attribute__((always_inline)) int64_t dlw_ctx(int64_t t, const int32_t *z, const uint8_t *q,
                                                             int64_t cols, int up) {
    int64_t cx = z[t];
    if (up) {
        int64_t u = 0;
        if (t >= cols) {
            u = (int64_t)q[t - cols] - z[t - cols];
            if (u < 0) u = -u;
            if (u > 3) u = 3;
        }
        cx = cx * 4 + u;
    }
    return cx;
}

/* One code t on state *x by the wide table (dl_code's arithmetic, in 32 bits). */
static inline __attribute__((always_inline)) void dlw_code(uint32_t *x, int64_t t, const uint16_t *words, int64_t nw,
                                                           int64_t *wp, const int32_t *z, const uint8_t *ok, uint8_t *q,
                                                           int64_t cols, int up, const uint32_t *st, int *bad) {
    int64_t cx = dlw_ctx(t, z, q, cols, up);
    *bad |= !ok[cx];
    uint32_t xv = *x, e = st[(cx << PB) + (xv & DLW_SLOT)];
    uint32_t y = (((e >> 4) & DLW_SLOT) + 1) * (xv >> PB) + (e >> 18);
    uint32_t need = y < (1u << 16), w = words[*wp < nw ? *wp : nw - 1];
    *wp += need;
    *x = need ? (y << 16) | w : y;
    q[t] = (uint8_t)(e & 15);
}

/* Codes [0, n) on the 8 states xs; *wp: the next word. 0, or 1 once an error is seen. okbits:
 * bit cx set for a context with a table (nctx <= 64); wlut: per 8-bit mask, lane j -> the number
 * of set bits below j. */
static inline __attribute__((always_inline)) int dlw_run(uint32_t *xs, int64_t n, const uint16_t *words, int64_t nw,
                                                        int64_t *wp, const int32_t *z, const uint8_t *ok,
                                                        uint64_t okbits, uint8_t *q, int64_t cols, int up,
                                                        const uint32_t *st, const int32_t *wlut) {
    const __m256i one = _mm256_set1_epi32(1), three = _mm256_set1_epi32(3), zero = _mm256_setzero_si256();
    const __m256i smask = _mm256_set1_epi32(DLW_SLOT), k32 = _mm256_set1_epi32(32);
    const __m256i oklo = _mm256_set1_epi32((int)(uint32_t)okbits), okhi = _mm256_set1_epi32((int)(uint32_t)(okbits >> 32));
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    __m256i x = _mm256_loadu_si256((const __m256i *)xs), badv = zero;
    int64_t t = 0, p = *wp;
    int bad = 0;
    while (t + 8 <= n && p + 8 <= nw) {
        int64_t stop = t + 2048 < n - 7 ? t + 2048 : n - 7; /* steps start below n - 7 */
        for (; t < stop && p + 8 <= nw; t += 8) {
            __m256i cx;
            if (!up) {
                cx = _mm256_loadu_si256((const __m256i *)(z + t));
            } else if (t >= cols) { /* the row above: decoded (cols >= 8) */
                __m256i za = _mm256_loadu_si256((const __m256i *)(z + t - cols));
                __m256i qa = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + t - cols)));
                __m256i u = _mm256_min_epi32(_mm256_abs_epi32(_mm256_sub_epi32(qa, za)), three);
                cx = _mm256_add_epi32(_mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(z + t)), 2), u);
            } else { /* the first row (and the step that crosses into the second) */
                int32_t c8[8];
                for (int i = 0; i < 8; i++) c8[i] = (int32_t)dlw_ctx(t + i, z, q, cols, 1);
                cx = _mm256_loadu_si256((const __m256i *)c8);
            }
            /* bit cx of okbits (a shift by 32 or more, or by a negative count, gives 0) */
            __m256i okv = _mm256_or_si256(_mm256_srlv_epi32(oklo, cx), _mm256_srlv_epi32(okhi, _mm256_sub_epi32(cx, k32)));
            badv = _mm256_or_si256(badv, _mm256_andnot_si256(okv, one));
            __m256i e = _mm256_i32gather_epi32((const int *)st,
                                               _mm256_add_epi32(_mm256_slli_epi32(cx, PB), _mm256_and_si256(x, smask)), 4);
            __m256i f = _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(e, 4), smask), one);
            __m256i y = _mm256_add_epi32(_mm256_mullo_epi32(f, _mm256_srli_epi32(x, PB)), _mm256_srli_epi32(e, 18));
            __m256i need = _mm256_cmpeq_epi32(_mm256_srli_epi32(y, 16), zero);
            unsigned msk = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(need));
            __m256i w = _mm256_permutevar8x32_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(words + p))),
                                                    _mm256_loadu_si256((const __m256i *)(wlut + 8 * msk)));
            x = _mm256_blendv_epi8(y, _mm256_or_si256(_mm256_slli_epi32(y, 16), w), need);
            p += __builtin_popcount(msk);
            /* the 8 symbols: byte 0 of each lane */
            __m256i b = _mm256_shuffle_epi8(_mm256_and_si256(e, _mm256_set1_epi32(15)), pick);
            uint64_t s8 = (uint64_t)(uint32_t)_mm256_cvtsi256_si32(b) |
                          (uint64_t)(uint32_t)_mm256_extract_epi32(b, 4) << 32;
            memcpy(q + t, &s8, 8);
        }
        if (!_mm256_testz_si256(badv, badv)) return 1;
    }
    _mm256_storeu_si256((__m256i *)xs, x);
    for (; t < n; t++) dlw_code(&xs[t & 7], t, words, nw, &p, z, ok, q, cols, up, st, &bad);
    *wp = p;
    return bad || p > nw;
}

/* Mode 0 and mode 1, each compiled with its constant. */
__attribute__((noinline)) static int dlw_run_z(uint32_t *xs, int64_t n, const uint16_t *words, int64_t nw,
                                               int64_t *wp, const int32_t *z, const uint8_t *ok, uint64_t okbits,
                                               uint8_t *q, int64_t cols, const uint32_t *st, const int32_t *wlut) {
    return dlw_run(xs, n, words, nw, wp, z, ok, okbits, q, cols, 0, st, wlut);
}

__attribute__((noinline)) static int dlw_run_up(uint32_t *xs, int64_t n, const uint16_t *words, int64_t nw,
                                                int64_t *wp, const int32_t *z, const uint8_t *ok, uint64_t okbits,
                                                uint8_t *q, int64_t cols, const uint32_t *st, const int32_t *wlut) {
    return dlw_run(xs, n, words, nw, wp, z, ok, okbits, q, cols, 1, st, wlut);
}
#endif
