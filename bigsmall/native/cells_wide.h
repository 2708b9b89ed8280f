/* The .bsd 5.0 exact chunk's AVX2 step (included by _cells.c): 16 weights a block, one lane each
 * in two vectors, while at least 32 words are left (four renormalisations of 8 lanes); the
 * caller's scalar steps do the rest. Same patterns, escapes and return value as cl_block_scalar (the reference's),
 * property_tests/test_dual_cells.py. */

/* renormalisation words to lanes: for a mask of the lanes that read, lane i takes the
 * popcount(mask below i)-th of the next 8 words */
static int32_t cl_lut[256][8];

static void cl_lut_init(void) {
    for (int m = 0; m < 256; m++)
        for (int i = 0, k = 0; i < 8; i++) {
            cl_lut[m][i] = (m >> i) & 1 ? k : 0;
            k += (m >> i) & 1;
        }
}

#define CL_TARGET __attribute__((target("avx2,popcnt")))

CL_TARGET static inline __m256i cl_pick(__m256i lo, __m256i hi, __m256i qv, __m256i qhi) {
    return _mm256_blendv_epi8(_mm256_permutevar8x32_epi32(lo, qv), _mm256_permutevar8x32_epi32(hi, qv), qhi);
}

CL_TARGET static inline __m256i cl_renorm8(__m256i x, const uint16_t *words, int64_t *wp) {
    const __m256i need = _mm256_cmpeq_epi32(_mm256_srli_epi32(x, 16), _mm256_setzero_si256());
    const int msk = _mm256_movemask_ps(_mm256_castsi256_ps(need));
    if (!msk) return x;
    const __m256i w = _mm256_permutevar8x32_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(words + *wp))),
        _mm256_loadu_si256((const __m256i *)cl_lut[msk]));
    *wp += __builtin_popcount((unsigned)msk);
    return _mm256_blendv_epi8(x, _mm256_or_si256(_mm256_slli_epi32(x, 16), w), need);
}

/* What the cell step leaves for the raw step, per lane. */
typedef struct {
    __m256i a, j, neg, escl, etm1, isesc, big;
} cl_mid;

/* One vector's cell step (before its renormalisation): the new states. */
CL_TARGET static inline __m256i cl_step1(__m256i X, __m256i qv, __m256i R[5][2], int32_t mb, cl_mid *o) {
    const __m256i lo16 = _mm256_set1_epi32(0xFFFF), zero = _mm256_setzero_si256(), one = _mm256_set1_epi32(1);
    const __m256i qhi = _mm256_cmpgt_epi32(qv, _mm256_set1_epi32(7));
    const __m256i w0 = cl_pick(R[0][0], R[0][1], qv, qhi), w1 = cl_pick(R[1][0], R[1][1], qv, qhi);
    const __m256i escv = cl_pick(R[2][0], R[2][1], qv, qhi), w3 = cl_pick(R[3][0], R[3][1], qv, qhi);
    const __m256i w4 = cl_pick(R[4][0], R[4][1], qv, qhi);
    const __m256i u0 = _mm256_and_si256(w0, lo16), f = _mm256_srli_epi32(w0, 16);
    const __m256i c1 = _mm256_and_si256(w1, lo16), c2 = _mm256_srli_epi32(w1, 16);
    const __m256i mlo = _mm256_sub_epi32(_mm256_and_si256(w3, lo16), _mm256_set1_epi32(32768));
    const __m256i vs = _mm256_srli_epi32(w3, 16);
    const __m256i et = _mm256_and_si256(w4, lo16), ns = _mm256_srli_epi32(w4, 16);
    const __m256i slot = _mm256_and_si256(X, lo16);
    const __m256i isspec = _mm256_cmpgt_epi32(u0, slot);
    const __m256i isesc = _mm256_cmpgt_epi32(slot, _mm256_sub_epi32(escv, one));
    const __m256i ge1 = _mm256_cmpgt_epi32(slot, _mm256_sub_epi32(c1, one));
    const __m256i ge2 = _mm256_cmpgt_epi32(slot, _mm256_sub_epi32(c2, one));
    const __m256i s_start = _mm256_blendv_epi8(_mm256_and_si256(c1, ge1), c2, ge2);
    const __m256i s_end = _mm256_blendv_epi8(_mm256_blendv_epi8(c1, c2, ge1), u0, ge2);
    const __m256i s_v = _mm256_sub_epi32(_mm256_sub_epi32(vs, ge1), ge2); /* masks are -1 */
    const __m256 rcp = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_cvtepi32_ps(_mm256_max_epi32(f, one)));
    const __m256i u = _mm256_cvttps_epi32(_mm256_mul_ps(
        _mm256_add_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(slot, u0)), _mm256_set1_ps(0.5f)), rcp));
    const __m256i u_start = _mm256_add_epi32(u0, _mm256_mullo_epi32(u, f));
    const __m256i u_v = _mm256_add_epi32(u, _mm256_and_si256(_mm256_cmpgt_epi32(u, _mm256_sub_epi32(vs, one)), ns));
    const __m256i start = _mm256_blendv_epi8(_mm256_blendv_epi8(u_start, escv, isesc), s_start, isspec);
    const __m256i freq = _mm256_blendv_epi8(_mm256_blendv_epi8(f, _mm256_sub_epi32(_mm256_set1_epi32(65536), escv), isesc),
                                            _mm256_sub_epi32(s_end, s_start), isspec);
    const __m256i v = _mm256_blendv_epi8(u_v, s_v, isspec);
    /* the cell's key range, for the raw step */
    const __m256i m = _mm256_add_epi32(mlo, v);
    o->neg = _mm256_cmpgt_epi32(zero, m);
    o->a = _mm256_xor_si256(m, o->neg); /* -1 - m for m < 0 */
    const __m256i lg = _mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(_mm256_cvtepi32_ps(o->a)), 23),
                                        _mm256_set1_epi32(127));
    o->etm1 = _mm256_sub_epi32(et, one);
    const __m256i tiny = _mm256_and_si256(_mm256_cmpeq_epi32(o->a, zero), _mm256_cmpgt_epi32(et, _mm256_set1_epi32(mb + 1)));
    o->escl = _mm256_or_si256(isesc, tiny);
    o->isesc = isesc;
    /* a cell beyond any bin's (a damaged stream): the caller's error, as the reference's */
    o->big = _mm256_andnot_si256(isesc, _mm256_cmpgt_epi32(o->a, _mm256_set1_epi32((1 << (mb + 1)) - 1)));
    o->j = _mm256_andnot_si256(o->escl, _mm256_min_epi32(_mm256_sub_epi32(_mm256_set1_epi32(mb), lg), o->etm1));
    return _mm256_sub_epi32(_mm256_add_epi32(_mm256_mullo_epi32(freq, _mm256_srli_epi32(X, 16)), slot), start);
}

/* One vector's raw step (before its renormalisation); its patterns into *pat, and any pattern
 * out of range (a damaged stream) into *bad. */
CL_TARGET static inline __m256i cl_step2(__m256i X, const cl_mid *o, int32_t mb, __m256i *pat, int *bad) {
    const __m256i lo16 = _mm256_set1_epi32(0xFFFF), one = _mm256_set1_epi32(1);
    const __m256i sh = _mm256_sub_epi32(_mm256_set1_epi32(16), o->j);
    const __m256i slot2 = _mm256_and_si256(X, lo16);
    const __m256i rr = _mm256_srlv_epi32(slot2, sh);
    const __m256i gv = _mm256_add_epi32(_mm256_add_epi32(_mm256_sllv_epi32(o->a, o->j), rr),
                                        _mm256_sll_epi32(_mm256_sub_epi32(o->etm1, o->j), _mm_cvtsi32_si128(mb)));
    *bad |= _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_andnot_si256(o->escl, _mm256_cmpgt_epi32(gv, _mm256_set1_epi32(0x7FFF)))));
    *pat = _mm256_or_si256(gv, _mm256_and_si256(o->neg, _mm256_set1_epi32(0x8000)));
    return _mm256_add_epi32(_mm256_sllv_epi32(_mm256_srli_epi32(X, 16), sh),
                            _mm256_and_si256(slot2, _mm256_sub_epi32(_mm256_sllv_epi32(one, sh), one)));
}

CL_TARGET static inline void cl_store(uint16_t *out, __m256i pat) {
    const __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi32(pat, pat), 0x08);
    _mm_storeu_si128((__m128i *)out, _mm256_castsi256_si128(pk));
}

/* A group's 16 bins' parameters (cl_group's, the reference's) packed for cl_pick into R, the
 * 17 edges 4 at a time in 64-bit lanes and the bins 8 at a time; bins 0 and 15 (their special
 * cells) by cl_bin_fill. Scalar, the group's parameters were ~40 % of the decoder's time. */
CL_TARGET static void cl_group_avx2(uint16_t sb, uint16_t lb, int dt, int32_t mb, const int64_t *spec, __m256i R[5][2]) {
    const int64_t s = db_fp16_units(sb) << (DB_U - 24), lo = db_fp16_units(lb) << (DB_U - 24), h = s >> 1;
    int64_t xs[20] __attribute__((aligned(32)));
    xs[0] = lo - (s >> 5);
    xs[1] = lo + h;
    for (int i = 2; i <= 15; i++) xs[i] = xs[i - 1] + 2 * h;
    xs[16] = lo + 15 * s + (s >> 5);
    xs[17] = xs[18] = xs[19] = 0;
    const int64_t mb64 = db_mb[dt], sign = (int64_t)1 << (db_width[dt] - 1);
    const int64_t top = db_top(dt);
    const int64_t shsub = DB_U + db_emin[dt] - mb64 > 0 ? DB_U + db_emin[dt] - mb64 : 0;
    const __m256i zero = _mm256_setzero_si256(), one64 = _mm256_set1_epi64x(1);
    int32_t ka[16] __attribute__((aligned(32))), kb[16] __attribute__((aligned(32)));
    int64_t lower[20] __attribute__((aligned(32))), upper[20] __attribute__((aligned(32)));
    for (int v = 0; v < 5; v++) {
        const __m256i x = _mm256_load_si256((const __m256i *)(xs + 4 * v));
        const __m256i neg = _mm256_cmpgt_epi64(zero, x);
        const __m256i ax = _mm256_blendv_epi8(x, _mm256_sub_epi64(zero, x), neg);
        /* bit length - 1 by the double's exponent (ax < 2^52: exact); ax = 0: -1023 */
        const __m256d d = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(ax, _mm256_set1_epi64x(0x4330000000000000LL))),
                                        _mm256_set1_pd(4503599627370496.0));
        const __m256i ln = _mm256_sub_epi64(_mm256_srli_epi64(_mm256_castpd_si256(d), 52), _mm256_set1_epi64x(1023));
        const __m256i e = _mm256_sub_epi64(ln, _mm256_set1_epi64x(DB_U));
        const __m256i sub = _mm256_cmpgt_epi64(_mm256_set1_epi64x(db_emin[dt]), e);
        const __m256i shn = _mm256_sub_epi64(ln, _mm256_set1_epi64x(mb64));
        const __m256i shv = _mm256_blendv_epi8(shn, _mm256_set1_epi64x(shsub), sub);
        const __m256i shp = _mm256_andnot_si256(_mm256_cmpgt_epi64(zero, shv), shv); /* max(shv, 0) */
        const __m256i shm = _mm256_andnot_si256(_mm256_cmpgt_epi64(shv, zero), _mm256_sub_epi64(zero, shv));
        const __m256i mm = _mm256_blendv_epi8(_mm256_srlv_epi64(ax, shp), _mm256_sllv_epi64(ax, shm), _mm256_cmpgt_epi64(zero, shv));
        const __m256i mnorm = _mm256_add_epi64(_mm256_slli_epi64(_mm256_add_epi64(e, _mm256_set1_epi64x(db_bias[dt])), (int)mb64),
                                               _mm256_sub_epi64(mm, _mm256_set1_epi64x((int64_t)1 << mb64)));
        const __m256i md = _mm256_blendv_epi8(mnorm, mm, sub);
        const __m256i rem = _mm256_and_si256(ax, _mm256_sub_epi64(_mm256_sllv_epi64(one64, shp), one64));
        const __m256i nz = _mm256_andnot_si256(_mm256_cmpeq_epi64(rem, zero), one64);
        const __m256i topv = _mm256_set1_epi64x(top), mu = _mm256_add_epi64(md, nz);
        const __m256i mup = _mm256_blendv_epi8(mu, topv, _mm256_cmpgt_epi64(mu, topv));
        const __m256i mdn = _mm256_blendv_epi8(md, topv, _mm256_cmpgt_epi64(md, topv));
        const __m256i sg = _mm256_set1_epi64x(sign), sg1 = _mm256_set1_epi64x(sign - 1);
        const __m256i lw = _mm256_blendv_epi8(_mm256_add_epi64(sg, mup), _mm256_sub_epi64(sg1, mdn), neg);
        const __m256i up = _mm256_blendv_epi8(_mm256_add_epi64(sg, mdn), _mm256_sub_epi64(sg1, mup), neg);
        _mm256_store_si256((__m256i *)(lower + 4 * v), dt == 2 ? _mm256_srli_epi64(lw, 16) : lw);
        _mm256_store_si256((__m256i *)(upper + 4 * v), dt == 2 ? _mm256_srli_epi64(up, 16) : up);
    }
    for (int q = 0; q < 16; q++) {
        ka[q] = (int32_t)lower[q];
        kb[q] = (int32_t)upper[q + 1];
    }
    int32_t A[5][16] __attribute__((aligned(32)));
    const __m256i c7fff = _mm256_set1_epi32(0x7FFF), c8000 = _mm256_set1_epi32(0x8000), one = _mm256_set1_epi32(1);
    const __m256i mask = _mm256_set1_epi32((1 << mb) - 1), hid = _mm256_set1_epi32(1 << mb);
    const __m128i mbc = _mm_cvtsi32_si128(mb);
    for (int hh = 0; hh < 2; hh++) {
        const __m256i a = _mm256_load_si256((const __m256i *)(ka + 8 * hh)), b = _mm256_load_si256((const __m256i *)(kb + 8 * hh));
        const __m256i pa = _mm256_cmpgt_epi32(a, c7fff), pb = _mm256_cmpgt_epi32(b, c7fff);
        const __m256i ga = _mm256_blendv_epi8(_mm256_sub_epi32(c7fff, a), _mm256_sub_epi32(a, c8000), pa);
        const __m256i gb = _mm256_blendv_epi8(_mm256_sub_epi32(c7fff, b), _mm256_sub_epi32(b, c8000), pb);
        const __m256i xa = _mm256_srl_epi32(ga, mbc), xb = _mm256_srl_epi32(gb, mbc);
        const __m256i ea = _mm256_max_epi32(xa, one), eb = _mm256_max_epi32(xb, one), et = _mm256_max_epi32(ea, eb);
        const __m256i fa = _mm256_blendv_epi8(_mm256_or_si256(_mm256_and_si256(ga, mask), hid), ga, _mm256_cmpgt_epi32(_mm256_set1_epi32(2), xa));
        const __m256i fb = _mm256_blendv_epi8(_mm256_or_si256(_mm256_and_si256(gb, mask), hid), gb, _mm256_cmpgt_epi32(_mm256_set1_epi32(2), xb));
        const __m256i ca = _mm256_srlv_epi32(fa, _mm256_sub_epi32(et, ea)), cb = _mm256_srlv_epi32(fb, _mm256_sub_epi32(et, eb));
        const __m256i mlo = _mm256_blendv_epi8(_mm256_xor_si256(ca, _mm256_set1_epi32(-1)), ca, pa);
        const __m256i mhi = _mm256_blendv_epi8(_mm256_xor_si256(cb, _mm256_set1_epi32(-1)), cb, pb);
        const __m256i n = _mm256_add_epi32(_mm256_sub_epi32(mhi, mlo), one);
        const __m256i keep = _mm256_xor_si256(_mm256_cmpgt_epi32(a, b), _mm256_set1_epi32(-1)); /* not empty */
        const __m256i nn = _mm256_max_epi32(n, one);
        __m256i f = _mm256_cvttps_epi32(_mm256_div_ps(_mm256_set1_ps(65535.0f), _mm256_cvtepi32_ps(nn)));
        /* the float quotient is within one of floor(65535 / n): corrected in integers */
        const __m256i c65535 = _mm256_set1_epi32(65535);
        f = _mm256_add_epi32(f, _mm256_cmpgt_epi32(_mm256_mullo_epi32(f, nn), c65535));
        f = _mm256_sub_epi32(f, _mm256_cmpgt_epi32(_mm256_add_epi32(c65535, one), _mm256_mullo_epi32(_mm256_add_epi32(f, one), nn)));
        f = _mm256_and_si256(f, keep);
        _mm256_store_si256((__m256i *)(A[0] + 8 * hh), _mm256_slli_epi32(f, 16));
        _mm256_store_si256((__m256i *)(A[1] + 8 * hh), _mm256_setzero_si256());
        _mm256_store_si256((__m256i *)(A[2] + 8 * hh), _mm256_mullo_epi32(f, nn));
        _mm256_store_si256((__m256i *)(A[3] + 8 * hh), _mm256_and_si256(_mm256_add_epi32(mlo, _mm256_set1_epi32(32768)), keep));
        _mm256_store_si256((__m256i *)(A[4] + 8 * hh), _mm256_and_si256(et, keep));
    }
    for (int q = 0; q < 16; q += 15) { /* the edge bins, their special cells */
        cl_bin P;
        cl_bin_fill(&P, q, ka[q], kb[q], s, lo, dt, mb, spec);
        A[0][q] = P.u0 | (P.f << 16);
        A[1][q] = P.c1 | (P.c2 << 16);
        A[2][q] = P.esc;
        A[3][q] = (P.mlo + 32768) | (P.vs << 16);
        A[4][q] = P.et | (P.ns << 16);
    }
    for (int k = 0; k < 5; k++) {
        R[k][0] = _mm256_load_si256((const __m256i *)A[k]);
        R[k][1] = _mm256_load_si256((const __m256i *)(A[k] + 8));
    }
}

/* Blocks of 16 weights (two vectors: their dependency chains overlap) while at least 32 words
 * are left; *b0p: the first weight not decoded. */
CL_TARGET static int cl_run_avx2(cl_io *io, const uint8_t *q, const uint16_t *sb, const uint16_t *lb,
                                 const int64_t *spec, int dt, int64_t n, int64_t cols, int64_t groups, int32_t mb,
                                 uint16_t *out, int64_t *b0p) {
    __m256i XA = _mm256_loadu_si256((const __m256i *)io->xs), XB = _mm256_loadu_si256((const __m256i *)(io->xs + 8));
    int64_t wp = io->wp, t = 0;
    const int64_t nw = io->nw, rows = n / cols;
    int bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t g = 0; g < groups; g++) {
            const int64_t gi = r * groups + g;
            __m256i R[5][2];
            cl_group_avx2(sb[gi], lb[gi], dt, mb, spec, R);
            const int64_t cend = (g + 1) * 128 < cols ? (g + 1) * 128 : cols;
            for (int64_t c = g * 128; c < cend; c += 16) {
                t = r * cols + c;
                if (wp + 32 > nw) goto stop;
                cl_mid mA, mB;
                __m256i pA, pB;
                XA = cl_step1(XA, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + t))), R, mb, &mA);
                XB = cl_step1(XB, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + t + 8))), R, mb, &mB);
                XA = cl_renorm8(XA, io->words, &wp);
                XB = cl_renorm8(XB, io->words, &wp);
                if (_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_or_si256(mA.big, mB.big)))) return 1;
                XA = cl_step2(XA, &mA, mb, &pA, &bad);
                XB = cl_step2(XB, &mB, mb, &pB, &bad);
                XA = cl_renorm8(XA, io->words, &wp);
                XB = cl_renorm8(XB, io->words, &wp);
                cl_store(out + t, pA);
                cl_store(out + t + 8, pB);
                unsigned em = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(mA.escl)) |
                              ((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(mB.escl)) << 8);
                if (em) { /* rare: the side stream's keys, in lane order */
                    int32_t ets[16], ng[16], ie[16];
                    _mm256_storeu_si256((__m256i *)ets, mA.etm1);
                    _mm256_storeu_si256((__m256i *)(ets + 8), mB.etm1);
                    _mm256_storeu_si256((__m256i *)ng, mA.neg);
                    _mm256_storeu_si256((__m256i *)(ng + 8), mB.neg);
                    _mm256_storeu_si256((__m256i *)ie, mA.isesc);
                    _mm256_storeu_si256((__m256i *)(ie + 8), mB.isesc);
                    while (em) {
                        const int ln = __builtin_ctz(em);
                        em &= em - 1;
                        const int32_t e = cl_side_next(io, ie[ln] ? -1 : ets[ln] + 1, ng[ln] != 0, mb);
                        if (e < 0) return 1;
                        out[t + ln] = (uint16_t)e;
                    }
                }
            }
            if (bad) return 1;
        }
    }
    t = n;
stop:
    _mm256_storeu_si256((__m256i *)io->xs, XA);
    _mm256_storeu_si256((__m256i *)(io->xs + 8), XB);
    io->wp = wp;
    *b0p = t;
    return bad;
}
