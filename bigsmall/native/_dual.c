/* bigsmall.native._dual: C ports of the .bsd 2.0 decode kernels (codecs/dual_trunc.py,
 * codecs/dual_fast.py).
 *
 *   decode_exact(xs, words, esc, q, kat, kbt, base, mass, rinv, W, winv, cc, cols, groups, sh,
 *                out) -> int
 *   decode_codes(words, z, freq, cum, lut, ok, q, cols, up[, lanes, cm, k]) -> int   (lut unused)
 *     (k >= 0: z holds one zero bin per group of 128 codes of a row, and k > 0 the column
 *     clusters cm: the contexts z * k + cm[col] of mode 2, built here; lanes = 8 or 16: the AVX2
 *     step of dual_codes_wide.h where the CPU has it)
 *   isa() -> 'avx2' | 'scalar', _set_isa(name)   (the step decode_codes uses; tests force one)
 *   dequantize(q, s16, lo16, cols, dtype, out) -> int   (dtype 0 bf16, 1 fp16, 2 fp32; 1: not finite;
 *     with AVX2 where decode_codes uses it)
 *
 * decode_exact takes exactly the arguments of the numba ``dual_trunc._decode`` and returns the
 * same value with the same keys written; decode_codes is ``dual_fast._decode_up`` (up = 1) or the
 * fast chunk's mode-0 decode (up = 0: the context is the zero bin alone, as ``dual._decode``
 * with no raw bits); lanes (1-16, default 1): the .bsd 4.0 (8) and 5.0 (16) chunks' interleaved states
 * (dual_fast._decode_lanes). property_tests/test_dual.py and test_dual_fast_codes.py check
 * native == reference. Why a module of its
 * own: the .bsd codec is separate from the field codecs of _kernels.c, and each extension builds
 * (or fails to build) on its own.
 *
 * Every size an index depends on is checked before decoding (ValueError/TypeError); what the
 * stream says is checked inside, exactly as the reference does (return 1). The GIL is released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dual_bins.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DL_HAVE_AVX2 1 /* GCC's target pragma: decode_codes' AVX2 step (dual_codes_wide.h) */
#include <immintrin.h>
#else
#define DL_HAVE_AVX2 0
#endif

#define PREC 31
#define LANES 4

#include "pybuf.h"
#include "isa.h"
#define dl_fail pb_fail

/* A C-contiguous buffer of itemsize isz; float: format 'd'. Any dimension (read flat). */
static int dl_getbuf(PyObject *o, Py_buffer *v, Py_ssize_t isz, int flt, int writable, const char *name) {
    return pb_getbuf(o, v, isz, flt ? PB_DOUBLE : PB_INTS_BOOL, -1, writable, name);
}

#define N(v) ((int64_t)((v).len / (v).itemsize))

static inline int64_t dl_scaled(int64_t v, int64_t m, double r) {
    int64_t a = (int64_t)((double)v * r);
    int64_t t = v << PREC;
    if (a * m > t)
        a -= 1;
    else if ((a + 1) * m <= t)
        a += 1;
    return a;
}

static int dl_exact(const uint64_t *xs0, const uint32_t *words, int64_t nw, const uint16_t *esc,
                    int64_t ne, const uint8_t *q, const int64_t *kat, const int64_t *kbt,
                    const int64_t *base, const int64_t *mass, const double *rinv, const uint16_t *W,
                    const double *winv, int64_t ncls, const int64_t *cc, int64_t cols, int64_t groups,
                    int64_t sh, int32_t *out, int64_t n) {
    uint64_t xs[LANES];
    for (int i = 0; i < LANES; i++) xs[i] = xs0[i];
    const uint64_t mask = ((uint64_t)1 << PREC) - 1, low = (uint64_t)1 << PREC;
    int64_t wp = 0, ep = 0, t = 0, rows = n / cols;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++, t++) {
            int64_t bi = ((r * groups + (c >> 7)) << 4) + q[t];
            uint64_t x = xs[t & (LANES - 1)];
            int64_t m = mass[bi];
            int64_t slot = (int64_t)(x & mask);
            int64_t u = ((slot + 1) * m - 1) >> PREC;
            int64_t k, st, en;
            if (u == m - 1) {
                if (ep >= ne) return 1;
                k = esc[ep++];
                st = m - 1;
                en = m;
            } else {
                int64_t target = u + base[bi];
                int64_t lo = kat[bi] >> sh, hi = kbt[bi] >> sh;
                if (lo < 0 || hi >= ncls) return 1;
                int64_t span = hi - lo + 1;
                while (span > 1) {
                    int64_t half = span >> 1, mid = lo + half;
                    lo = cc[mid] <= target ? mid : lo;
                    span -= half;
                }
                int64_t w = W[lo];
                if (w == 0) return 1;
                int64_t d = target - cc[lo];
                int64_t j = (int64_t)((double)d * winv[lo]);
                if (j * w > d)
                    j -= 1;
                else if ((j + 1) * w <= d)
                    j += 1;
                k = (lo << sh) + j;
                st = cc[lo] + (k - (lo << sh)) * w - base[bi];
                en = st + w;
                if (st > u || en <= u) return 1;
            }
            int64_t a = dl_scaled(st, m, rinv[bi]);
            int64_t f = dl_scaled(en, m, rinv[bi]) - a;
            x = (uint64_t)f * (x >> PREC) + (uint64_t)(slot - a);
            if (x < low) {
                if (wp >= nw) return 1;
                x = (x << 32) | words[wp++];
            }
            xs[t & (LANES - 1)] = x;
            out[t] = (int32_t)k;
        }
    }
    for (int i = 0; i < LANES; i++)
        if (xs[i] != low) return 1;
    if (wp != nw || ep != ne) return 1;
    return 0;
}

static PyObject *py_decode_exact(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[13];
    long long cols, groups, sh;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOLLLO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[7], &o[8], &o[9], &o[10], &o[11], &cols, &groups, &sh, &o[12]))
        return NULL;
    /* xs, words, esc, q, kat, kbt, base, mass, rinv, W, winv, cc, out */
    static const Py_ssize_t isz[13] = {8, 4, 2, 1, 8, 8, 8, 8, 8, 2, 8, 8, 4};
    static const int flt[13] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0};
    static const char *names[13] = {"xs", "words", "esc", "q", "kat", "kbt", "base", "mass",
                                    "rinv", "W", "winv", "cc", "out"};
    Py_buffer v[13];
    int got = 0;
    for (; got < 13; got++)
        if (dl_getbuf(o[got], &v[got], isz[got], flt[got], got == 12, names[got]) < 0) break;
    int rc = -1;
    if (got == 13) {
        int64_t n = N(v[12]), nbins = N(v[4]), ncls = N(v[9]);
        int bad = 0;
        if (N(v[0]) != LANES) bad = dl_fail("xs: one state per lane");
        else if (cols < 1 || groups != (cols + 127) / 128) bad = dl_fail("cols >= 1, groups = ceil(cols / 128)");
        else if (N(v[3]) != n || n % cols) bad = dl_fail("q: one code per output, whole rows");
        else if (nbins != (n / cols) * groups * 16 || N(v[5]) != nbins || N(v[6]) != nbins ||
                 N(v[7]) != nbins || N(v[8]) != nbins)
            bad = dl_fail("kat, kbt, base, mass, rinv: 16 per group");
        else if (N(v[10]) != ncls || N(v[11]) != ncls + 1) bad = dl_fail("winv: one per class, cc: one more");
        else if (sh < 0 || sh > 16) bad = dl_fail("sh in [0, 16]");
        if (!bad) {
            const uint8_t *q = v[3].buf;
            const int64_t *mass = v[7].buf;
            for (int64_t i = 0; i < n && !bad; i++)
                if (q[i] > 15) bad = dl_fail("q: a code above 15");
            for (int64_t i = 0; i < nbins && !bad; i++)
                if (mass[i] < 1 || mass[i] > ((int64_t)1 << PREC)) bad = dl_fail("mass out of [1, 2^31]");
        }
        if (!bad) {
            Py_BEGIN_ALLOW_THREADS
            rc = dl_exact(v[0].buf, v[1].buf, N(v[1]), v[2].buf, N(v[2]), v[3].buf, v[4].buf, v[5].buf,
                          v[6].buf, v[7].buf, v[8].buf, v[9].buf, v[10].buf, ncls, v[11].buf, cols,
                          groups, sh, v[12].buf, n);
            Py_END_ALLOW_THREADS
        }
    }
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    if (rc < 0) return NULL;
    return PyLong_FromLong(rc);
}

#define PB 14
#define MPB (1 << PB)

/* The fast chunk's codes. Per call, each used context's table is packed as u32 entries
 * (freq | cum << 15; the caller checked every used row: frequencies summing to 2^14, cum their
 * running sum) and, with at most DL_LUT_CTX contexts (modes 0 and 1), a slot -> symbol table
 * of 2^14 bytes per used context; more contexts (mode 2's 256-1024): the symbol of each bucket of
 * 64 slots (256 bytes a context), then a step up while cum <= slot. Both tables live in one
 * buffer per thread (dl_lut). The renormalisation is branchless: a word is read
 * (from a clamped position) and kept only when the state needs it; reading past the last word
 * is the reference's error, at the same code. */
#define DL_LUT_CTX 64

static inline uint64_t dl_renorm(uint64_t x, const uint16_t *words, int64_t nw, int64_t *wp) {
    uint64_t need = x < ((uint64_t)1 << 16);
    uint64_t w = words[*wp < nw ? *wp : nw - 1];
    *wp += (int64_t)need;
    return (x << (need << 4)) | (w & (0 - need)); /* no branch: mispredicted ~1 code in 5 */
}

/* One code t on state *x. Errors are gathered in *bad instead of a branch per code (the reference
 * returns 1 at the first; the return value is the same: a context without a table flags bad, a
 * read past the last word leaves wp > nw to the end). Inlined with constant lane, up and lut,
 * the states stay in registers and the loop has no flag tests. */
static inline __attribute__((always_inline)) void dl_code(uint64_t *x, int64_t t, const uint16_t *words,
                                                          int64_t nw, int64_t *wp, const int32_t *z,
                                                          const uint8_t *ok, uint8_t *q, int64_t cols, int up,
                                                          const uint32_t *fc, const int16_t *c16,
                                                          const uint8_t *lut, const uint8_t *bkt, int *bad) {
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
    *bad |= !ok[cx];
    uint32_t slot = (uint32_t)(*x & (MPB - 1));
    int s;
    if (lut) {
        s = lut[(cx << PB) + slot];
    } else { /* the symbol of the slot's bucket of 64 slots, then up while cum <= slot (the
              * largest s with cum[s] <= slot; a bucket holds a symbol's start ~1 time in 16) */
        const int16_t *cr = c16 + cx * 16;
        s = bkt ? bkt[(cx << 8) + (slot >> 6)] : 0; /* no bucket table (the AVX2 path's few scalar steps): from 0 */
        while (s < 15 && cr[s + 1] <= (int16_t)slot) s++;
    }
    uint32_t e = fc[cx * 16 + s];
    uint64_t y = (uint64_t)(e & 0x7FFF) * (*x >> PB) + slot - (e >> 15);
    *x = dl_renorm(y, words, nw, wp);
    q[t] = (uint8_t)s;
}

#define DL_MAX_LANES 16

/* The slot -> symbol tables: one buffer per thread, kept (1 MiB at most for the .bsd's own
 * chunks: 64 x 2^14 or 1024 x 256 bytes) so that a call does not fault in fresh pages. Only
 * values 0..15 are ever written to it (a fresh one is zeroed), so a stale row of an unused
 * context still indexes inside its row. */
#if defined(_MSC_VER)
#define DL_TLS __declspec(thread)
#else
#define DL_TLS __thread
#endif
/* A per-thread buffer of at least ``bytes``, grown (zeroed) when too small, kept otherwise. */
static void *dl_grow(void **buf, size_t *cap, size_t bytes) {
    if (bytes > *cap) {
        free(*buf);
        *cap = 0;
        *buf = calloc(bytes ? bytes : 1, 1);
        if (!*buf) return NULL;
        *cap = bytes;
    }
    return *buf;
}

static DL_TLS void *dl_lut_buf, *dl_z_buf, *dl_wtab_buf;
static DL_TLS size_t dl_lut_cap, dl_z_cap, dl_wtab_cap;

static int32_t *dl_zbuf(int64_t n) { /* the per-code contexts built from per-group zero bins */
    return dl_grow(&dl_z_buf, &dl_z_cap, sizeof(int32_t) * (size_t)n);
}

static uint8_t *dl_lut(size_t n) { return dl_grow(&dl_lut_buf, &dl_lut_cap, n); }

/* Codes [t0, n) on lanes states, in rows of cols codes: 0, or 1 once an error is seen (checked
 * per row, so a damaged stream stops within a row of it). */
static inline __attribute__((always_inline)) int dl_run(uint64_t *xs, int lanes, int64_t n, const uint16_t *words,
                                                        int64_t nw, int64_t *wp, const int32_t *z,
                                                        const uint8_t *ok, uint8_t *q, int64_t cols, int up,
                                                        const uint32_t *fc, const int16_t *c16,
                                                        const uint8_t *lut, const uint8_t *bkt) {
    int bad = 0;
    int64_t t = 0;
#define DL_CODE(X) dl_code(&(X), t++, words, nw, wp, z, ok, q, cols, up, fc, c16, lut, bkt, &bad)
    if (lanes == 8) { /* 8 independent chains, unrolled: their steps overlap */
        uint64_t x0 = xs[0], x1 = xs[1], x2 = xs[2], x3 = xs[3], x4 = xs[4], x5 = xs[5], x6 = xs[6], x7 = xs[7];
        while (t + 8 <= n) {
            int64_t stop = t + 8 * (2048 / 8); /* check for errors every 2048 codes */
            if (stop > n - 7) stop = n - 7;
            while (t < stop) {
                DL_CODE(x0); DL_CODE(x1); DL_CODE(x2); DL_CODE(x3);
                DL_CODE(x4); DL_CODE(x5); DL_CODE(x6); DL_CODE(x7);
            }
            if (bad || *wp > nw) return 1;
        }
        xs[0] = x0, xs[1] = x1, xs[2] = x2, xs[3] = x3, xs[4] = x4, xs[5] = x5, xs[6] = x6, xs[7] = x7;
    } else if (lanes == 16) { /* .bsd 5.0: 16 chains, the inner loop unrolled */
        uint64_t x[16];
        for (int l = 0; l < 16; l++) x[l] = xs[l];
        while (t + 16 <= n) {
            int64_t stop = t + 2048 < n - 15 ? t + 2048 : n - 15;
            while (t < stop) {
#pragma GCC unroll 16
                for (int l = 0; l < 16; l++) DL_CODE(x[l]);
            }
            if (bad || *wp > nw) return 1;
        }
        for (int l = 0; l < 16; l++) xs[l] = x[l];
    } else if (lanes == 1) {
        uint64_t x0 = xs[0];
        while (t < n) {
            int64_t stop = t + 2048 < n ? t + 2048 : n;
            while (t < stop) DL_CODE(x0);
            if (bad || *wp > nw) return 1;
        }
        xs[0] = x0;
    }
    while (t < n) {
        int l = (int)(t % lanes);
        DL_CODE(xs[l]);
    }
#undef DL_CODE
    return bad || *wp > nw;
}

/* lanes == 8 (up = 0, or mode 1 with rows of 8 codes or more): the AVX2 step where the CPU has
 * it (set at import; _set_isa for the tests), with its tables per context (dl_wtab: 256 int32 a
 * context for modes 0 and 1, 24 for mode 2; one buffer per thread like dl_lut's) and dl_code's
 * tables for the other steps. */
static int use_avx2 = 0;
static int32_t dl_wlut[256 * 8]; /* per 8-bit mask, lane j -> the set bits below j */

static uint32_t *dl_wtab(size_t n) { return dl_grow(&dl_wtab_buf, &dl_wtab_cap, sizeof(uint32_t) * n); }

#if DL_HAVE_AVX2
#pragma GCC push_options
#pragma GCC target("avx2,bmi,bmi2,popcnt")
#include "dual_codes_wide.h"
#pragma GCC pop_options
#endif

static int dl_codes(const uint16_t *words, int64_t nw, const int32_t *z, const int64_t *freq,
                    const int64_t *cum, const uint8_t *ok, uint8_t *q, int64_t rows, int64_t cols, int up,
                    int64_t nctx, uint32_t *fc, int16_t *c16, uint8_t *lut, uint8_t *bkt, int lanes,
                    uint32_t *wt) {
    if (nw < 2 * lanes) return 1;
    for (int64_t cx = 0; cx < nctx; cx++) {
        for (int j = 0; j < 16; j++) { /* unused contexts: zeros (decoding one flags bad) */
            fc[cx * 16 + j] = ok[cx] ? (uint32_t)freq[cx * 16 + j] | ((uint32_t)cum[cx * 16 + j] << 15) : 0;
            c16[cx * 16 + j] = ok[cx] ? (int16_t)cum[cx * 16 + j] : 0;
            if (lut && ok[cx] && freq[cx * 16 + j])
                memset(lut + (cx << PB) + cum[cx * 16 + j], j, (size_t)freq[cx * 16 + j]);
        }
        if (bkt && ok[cx]) /* bucket b: the symbol of slot 64 b, the largest j with cum[j] <= 64 b */
            for (int b = 0, j = 0; b < 256; b++) {
                while (j < 15 && cum[cx * 16 + j + 1] <= (int64_t)b << 6) j++;
                bkt[(cx << 8) + b] = (uint8_t)j;
            }
    }
    uint64_t xs[DL_MAX_LANES];
    for (int i = 0; i < lanes; i++) xs[i] = (uint64_t)words[2 * i] | ((uint64_t)words[2 * i + 1] << 16);
    int64_t wp = 2 * lanes, n = rows * cols;
    int rc;
#if DL_HAVE_AVX2
    if (wt && nctx > DL_LUT_CTX) { /* lanes 8 or 16, up = 0, nctx > 64 (mode 2): the AVX2 step, any contexts */
        int16_t *b16 = (int16_t *)(wt + nctx * 16);
        dlw_tables_any(freq, cum, ok, nctx, b16, wt);
        rc = dlw_run_any_n(xs, lanes, n, words, nw, &wp, z, ok, q, cols, fc, c16, bkt, b16, wt, dl_wlut);
    } else if (wt) { /* lanes 8 or 16, nctx <= 64, (mode 1) cols >= lanes: the AVX2 step */
        uint64_t okbits = 0;
        for (int64_t cx = 0; cx < nctx; cx++) okbits |= (uint64_t)(ok[cx] != 0) << cx;
        dlw_tables(freq, cum, ok, nctx, up, (int32_t *)wt);
        rc = up ? dlw_run_up(xs, lanes, n, words, nw, &wp, z, ok, okbits, q, cols, fc, c16, lut, (int32_t *)wt, dl_wlut)
                : dlw_run_z(xs, lanes, n, words, nw, &wp, z, ok, okbits, q, cols, fc, c16, lut, (int32_t *)wt, dl_wlut);
    } else
#else
    (void)wt;
#endif
    if (lut && up)
        rc = dl_run(xs, lanes, n, words, nw, &wp, z, ok, q, cols, 1, fc, c16, lut, NULL);
    else if (lut)
        rc = dl_run(xs, lanes, n, words, nw, &wp, z, ok, q, cols, 0, fc, c16, lut, NULL);
    else if (up)
        rc = dl_run(xs, lanes, n, words, nw, &wp, z, ok, q, cols, 1, fc, c16, NULL, bkt);
    else
        rc = dl_run(xs, lanes, n, words, nw, &wp, z, ok, q, cols, 0, fc, c16, NULL, bkt);
    if (rc) return 1;
    for (int i = 0; i < lanes; i++)
        if (xs[i] != ((uint64_t)1 << 16)) return 1;
    if (wp != nw) return 1;
    return 0;
}

static PyObject *py_decode_codes(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[7], *ocm = NULL;
    long long cols, up, lanes = 1, k = -1;
    if (!PyArg_ParseTuple(args, "OOOOOOOLL|LOL", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &cols, &up,
                          &lanes, &ocm, &k))
        return NULL;
    Py_buffer vcm;
    int gotcm = 0;
    if (k > 0) {
        if (ocm == NULL) return PyErr_Format(PyExc_TypeError, "cm: the column clusters are needed when k > 0");
        if (dl_getbuf(ocm, &vcm, 1, 0, 0, "cm") < 0) return NULL;
        gotcm = 1;
    }
    /* words, z, freq, cum, lut, ok, q */
    static const Py_ssize_t isz[7] = {2, 4, 8, 8, 1, 1, 1};
    static const char *names[7] = {"words", "z", "freq", "cum", "lut", "ok", "q"};
    Py_buffer v[7];
    int got = 0;
    for (; got < 7; got++)
        if (dl_getbuf(o[got], &v[got], isz[got], 0, got == 6, names[got]) < 0) break;
    int rc = -1;
    if (got == 7) {
        int64_t n = N(v[6]), nctx = N(v[5]);
        int bad = 0;
        const int32_t *z = v[1].buf;
        if (cols < 1 || n % cols) bad = dl_fail("q: whole rows");
        else if (k < 0 && N(v[1]) != n) bad = dl_fail("z: one per code, whole rows");
        else if (k >= 0 && N(v[1]) != n / cols * ((cols + 127) / 128)) bad = dl_fail("z (k >= 0): one per group of 128 codes of a row");
        else if (k > 0 && (N(vcm) != cols || (up && k))) bad = dl_fail("cm: one per column (k > 0, up = 0)");
        else if (up != 0 && up != 1) bad = dl_fail("up must be 0 or 1");
        else if (lanes < 1 || lanes > DL_MAX_LANES) bad = dl_fail("lanes in [1, 16]");
        else if (nctx < (up ? 64 : 16) || N(v[2]) != nctx * 16 || N(v[3]) != nctx * 16)
            bad = dl_fail("freq, cum: 16 per context");
        int64_t zmax = up ? 15 : nctx - 1; /* up = 0: z is the context itself */
        if (!bad && k > 65536) bad = dl_fail("k: at most 65536 clusters of columns");
        /* the checks of the contexts and frequencies, the contexts per code and the decode run
         * without the GIL (they touch C buffers only: ~5 % of a fast load's CPU, held with the
         * GIL it stalled the loading thread's Python); an error is raised once it is back */
        const char *err = NULL;
        int nomem = 0;
        uint32_t *fc = NULL, *wt = NULL;
        int16_t *c16 = NULL;
        Py_BEGIN_ALLOW_THREADS
        if (!bad && k >= 0) { /* z per group (and k clusters of columns): the contexts per code */
            int64_t groups = (cols + 127) / 128, rows = n / cols;
            const uint8_t *cm = k > 0 ? vcm.buf : NULL;
            int32_t *zx = dl_zbuf(n);
            int64_t *cr = malloc(sizeof(int64_t) * 2 * (size_t)groups); /* per group: its clusters' min, max */
            if (!zx || !cr) {
                nomem = 1;
                bad = 1;
            }
            for (int64_t g = 0; g < groups && !bad; g++) {
                int64_t lo = cm ? nctx : 0, hi = 0;
                for (int64_t c = g * 128; c < cols && c < g * 128 + 128 && cm; c++) {
                    /* a cluster at or above k would alias another context: pushed out of range */
                    int64_t u = cm[c] < k ? cm[c] : nctx;
                    lo = u < lo ? u : lo;
                    hi = u > hi ? u : hi;
                }
                cr[2 * g] = lo, cr[2 * g + 1] = hi;
            }
            /* the contexts z k + cluster of a group's codes lie in [z k + min, z k + max]: checked
             * per group, before they are written out */
            for (int64_t i = 0; i < rows * groups && !bad; i++) {
                int64_t zg = z[i], g = i % groups;
                if (zg * k + cr[2 * g] < 0 || zg * k + cr[2 * g + 1] > zmax || (!cm && (zg < 0 || zg > zmax)))
                    bad = (err = "z: a context out of range", 1);
            }
            for (int64_t r = 0; r < rows && !bad; r++)
                for (int64_t g = 0; g < groups; g++) { /* loops that vectorise */
                    int32_t zg = z[r * groups + g], *o = zx + r * cols;
                    int64_t c1 = g * 128 + 128 < cols ? g * 128 + 128 : cols;
                    if (cm) {
                        int32_t b = zg * (int32_t)k;
                        for (int64_t c = g * 128; c < c1; c++) o[c] = b + cm[c];
                    } else {
                        for (int64_t c = g * 128; c < c1; c++) o[c] = zg;
                    }
                }
            free(cr);
            z = zx;
        } else if (!bad) {
            int32_t zlo = 0, zhi = 0; /* min and max: a loop that vectorises */
            for (int64_t i = 0; i < n; i++) {
                zlo = z[i] < zlo ? z[i] : zlo;
                zhi = z[i] > zhi ? z[i] : zhi;
            }
            if (zlo < 0 || zhi > zmax) bad = (err = "z: a context out of range", 1);
        }
        if (!bad) {
            const int64_t *freq = v[2].buf, *cum = v[3].buf;
            const uint8_t *ok = v[5].buf;
            for (int64_t cx = 0; cx < nctx && !bad; cx++) {
                if (!ok[cx]) continue;
                int64_t run = 0, good = 1;
                for (int j = 0; j < 16; j++) {
                    if (freq[cx * 16 + j] < 0 || freq[cx * 16 + j] > MPB || cum[cx * 16 + j] != run) good = 0;
                    run += good ? freq[cx * 16 + j] : 0;
                }
                if (!good || run != MPB) bad = (err = "freq, cum: a used context's frequencies must sum to 2^14, cum their running sum", 1);
            }
        }
        int wide = DL_HAVE_AVX2 && use_avx2 && (lanes == 8 || lanes == 16) &&
                   (nctx <= DL_LUT_CTX ? !up || cols >= lanes : !up);
        uint8_t *lut = NULL, *bkt = NULL;
        if (!bad) {
            fc = malloc((size_t)nctx * 16 * sizeof(uint32_t));
            c16 = malloc((size_t)nctx * 16 * sizeof(int16_t));
            if (wide) wt = dl_wtab((size_t)nctx * (nctx <= DL_LUT_CTX ? 256 : 24));
            /* the scalar step's tables: only without the AVX2 step, which takes scalar steps for
             * a chunk's last codes and rare boundaries only and searches the 16 bounds there
             * (building them was ~1 ms a mode-2 chunk: 1024 contexts x 256 buckets) */
            if (!wide && nctx <= DL_LUT_CTX) lut = dl_lut((size_t)nctx << PB);
            else if (!wide) bkt = dl_lut((size_t)nctx << 8);
            if (!fc || !c16 || (!wide && !lut && !bkt) || (wide && !wt)) {
                nomem = 1;
                bad = 1;
            }
        }
        if (!bad) {
            rc = dl_codes(v[0].buf, N(v[0]), z, v[2].buf, v[3].buf, v[5].buf, v[6].buf, n / cols,
                          cols, (int)up, nctx, fc, c16, lut, bkt, (int)lanes, wt);
        }
        Py_END_ALLOW_THREADS
        if (nomem) PyErr_NoMemory();
        else if (err != NULL) pb_fail(err);
        free(fc);
        free(c16);
    }
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    if (gotcm) PyBuffer_Release(&vcm);
    if (rc < 0) return NULL;
    return PyLong_FromLong(rc);
}

/* ---- .bsd 3.0: the exact chunk decoded by table look-ups (codecs/dual_lookup.py, its
 * numba kernels are the reference: decode_keys, group_bins, bin_tables, _uniform). */
#define LPB 16
#define LTOT ((1 << LPB) - 1)
/* the group's bins (lo + (q -+ 1/2) s as key ranges): dual_bins.h's db_group_bins, shared with
 * _cells.c */
static int64_t lk_rec[257]; /* ceil(2^33 / n) */

/* floor(a / b) for 0 <= a < 2^48, 0 < b < 2^53: a float estimate (off by one at most) corrected
 * in integers, so exactly the reference's ``//`` without a hardware division. */
static inline int64_t lk_div(int64_t a, int64_t b) {
    int64_t d = (int64_t)((double)a / (double)b);
    if (d * b > a) d -= 1;
    else if ((d + 1) * b <= a) d += 1;
    return d;
}

/* As the reference's bin_tables, but each bin's entries start[q]..end[q] are followed by a
 * sentinel cum of LTOT (so the search reads its end there). */
static void lk_bin_tables(const int64_t *ka, const int64_t *kb, const uint16_t *W, int64_t ncls,
                          const int64_t *pc, int64_t npc, const int64_t *nxt, int64_t sh,
                          int64_t *start, int64_t *end, int64_t *cls, int64_t *cum, int32_t *bk,
                          int64_t *em) {
    int64_t pos = 0;
    for (int q = 0; q < 16; q++) {
        start[q] = end[q] = pos;
        int64_t a = ka[q], b = kb[q];
        if (b < a) continue;
        int64_t ca = a >> sh, cb = b >> sh;
        if (ca >= ncls) continue;
        int64_t mt = 0, ne = 0, best = -1, bestm = -1;
        for (int64_t i = nxt[ca]; i < npc && pc[i] <= cb; i++, ne++) {
            int64_t c = pc[i];
            int64_t lo = a > (c << sh) ? a : (c << sh);
            int64_t hi = b < (((c + 1) << sh) - 1) ? b : (((c + 1) << sh) - 1);
            int64_t m = (int64_t)W[c] * (hi - lo + 1);
            cls[pos + ne] = lo; /* the class's first in-bin key and their count */
            em[pos + ne] = hi - lo + 1;
            cum[pos + ne] = m; /* the mass for now */
            if (m > bestm) {
                bestm = m;
                best = ne;
            }
            mt += m;
        }
        if (ne == 0) continue;
        int64_t r = lk_div(((int64_t)LTOT - ne) << 31, mt), acc = 0;
        for (int64_t j = 0; j < ne; j++) { /* frequencies 1 + floor(m r / 2^31), cumulated */
            int64_t f = 1 + ((cum[pos + j] * r) >> 31);
            cum[pos + j] = acc;
            acc += f;
        }
        for (int64_t j = best + 1; j < ne; j++) cum[pos + j] += LTOT - acc; /* the rest to the largest */
        cum[pos + ne] = LTOT;
        end[q] = pos + ne;
        /* per 2^12 slots, the entry holding the bucket's first slot: the search starts there
         * (a bin of <= 4 entries: its first; the search's two steps and loop cover it) */
        if (ne <= 4) {
            for (int u = 0; u < 16; u++) bk[q * 16 + u] = (int32_t)pos;
        } else {
            int64_t j = pos;
            for (int u = 0; u < 16; u++) {
                while (cum[j + 1] <= ((int64_t)u << 12)) j++;
                bk[q * 16 + u] = (int32_t)j;
            }
        }
        pos += ne + 1;
    }
}

/* The decoder's state for one chunk: the group's bin tables, each lane's state and word stream. */
typedef struct {
    int64_t ka[16], kb[16], start[16], end[16];
    int32_t bk[256];
    int64_t *cls, *cum, *em;
    uint64_t xs[LANES];
    const uint32_t *wl[LANES];
    int64_t wp[LANES], wend[LANES];
    const uint16_t *esc;
    int64_t ep, ne;
} lk_state;

#define LK_MASK (((uint64_t)1 << LPB) - 1)
#define LK_LOW ((uint64_t)1 << 32)

/* One weight exactly as the reference decodes it (escapes, empty bins, a code above 15):
 * 0, or 1 when the stream does not decode. */
static int lk_one(lk_state *st, int64_t t, int qq, int32_t *out) {
    if (qq > 15) return 1;
    int l = (int)(t & (LANES - 1));
    uint64_t x = st->xs[l];
    int64_t b0 = st->start[qq], b1 = st->end[qq];
    if (b1 == b0) {
        if (st->ep >= st->ne) return 1;
        out[t] = st->esc[st->ep++];
        return 0;
    }
    int64_t slot = (int64_t)(x & LK_MASK), a0, f0, m, k;
    if (slot >= LTOT) {
        if (st->ep >= st->ne) return 1;
        k = st->esc[st->ep++];
        a0 = LTOT;
        f0 = 1;
        m = 1;
    } else {
        int64_t j = st->bk[qq * 16 + (slot >> 12)];
        while (st->cum[j + 1] <= slot) j++;
        a0 = st->cum[j];
        f0 = st->cum[j + 1] - a0;
        m = st->em[j];
        k = st->cls[j];
    }
    x = (uint64_t)f0 * (x >> LPB) + (uint64_t)(slot - a0);
    if (x < LK_LOW) {
        if (st->wp[l] >= st->wend[l]) return 1;
        x = (x << 32) | st->wl[l][st->wp[l]++];
    }
    if (m > 1) {
        int64_t u = (int64_t)(x & LK_MASK), i = (u * m) >> LPB, rr = lk_rec[m];
        int64_t a1 = (((i << LPB) + m - 1) * rr) >> 33;
        int64_t f1 = (((((i + 1) << LPB) + m - 1) * rr) >> 33) - a1;
        k += i;
        x = (uint64_t)f1 * (x >> LPB) + (uint64_t)(u - a1);
        if (x < LK_LOW) {
            if (st->wp[l] >= st->wend[l]) return 1;
            x = (x << 32) | st->wl[l][st->wp[l]++];
        }
    }
    st->xs[l] = x;
    out[t] = (int32_t)k;
    return 0;
}

/* 0: decoded; 1: corrupt; -1: out of memory. Four consecutive weights (four lanes, each with its
 * own word stream) are decoded side by side without branches; a run holding an escape or an
 * empty bin goes through lk_one. Same keys and return code as the reference (codes > 15, words
 * or escapes run out, states or streams not at their end: 1). */
static int lk_decode(const uint64_t *xs0, const uint32_t *words, int64_t nw, const int64_t *wcount,
                     const uint16_t *esc, int64_t ne, const uint8_t *q, const uint16_t *sbits,
                     const uint16_t *lbits, int dt, const uint16_t *W, int64_t ncls, int64_t cols,
                     int64_t groups, int64_t sh, int32_t *out, int64_t n) {
    lk_state st;
    int64_t *pc = malloc(sizeof(int64_t) * (size_t)ncls), *nxt = malloc(sizeof(int64_t) * (size_t)(ncls + 1));
    uint32_t *wpad = malloc(sizeof(uint32_t) * (size_t)(nw + 2 * LANES));
    st.cls = st.cum = st.em = NULL;
    int rc = 1;
    if (!pc || !nxt || !wpad) goto oom;
    int64_t npc = 0;
    for (int64_t c = 0; c < ncls; c++) {
        nxt[c] = npc;
        if (W[c] > 0) pc[npc++] = c;
    }
    nxt[ncls] = npc;
    st.cls = malloc(sizeof(int64_t) * (size_t)(16 * npc + 17));
    st.cum = malloc(sizeof(int64_t) * (size_t)(16 * npc + 17));
    st.em = malloc(sizeof(int64_t) * (size_t)(16 * npc + 17));
    if (!st.cls || !st.cum || !st.em) goto oom;
    {   /* each lane's words, followed by two zero words (read, never used, by a corrupt stream) */
        int64_t acc = 0, off = 0;
        for (int l = 0; l < LANES; l++) {
            if (wcount[l] < 0 || wcount[l] > nw - acc) goto done;
            memcpy(wpad + off, words + acc, sizeof(uint32_t) * (size_t)wcount[l]);
            wpad[off + wcount[l]] = wpad[off + wcount[l] + 1] = 0;
            st.wl[l] = wpad + off;
            st.wp[l] = 0;
            st.wend[l] = wcount[l];
            acc += wcount[l];
            off += wcount[l] + 2;
            st.xs[l] = xs0[l];
        }
        if (acc != nw) goto done;
    }
    st.esc = esc;
    st.ep = 0;
    st.ne = ne;
    int64_t rows = n / cols;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t g = 0; g < groups; g++) {
            db_group_bins(sbits[r * groups + g], lbits[r * groups + g], dt, st.ka, st.kb);
            lk_bin_tables(st.ka, st.kb, W, ncls, pc, npc, nxt, sh, st.start, st.end, st.cls, st.cum, st.bk, st.em);
            int64_t c = g * 128, cend = g * 128 + 128 < cols ? g * 128 + 128 : cols;
            for (; c + 4 <= cend; c += 4) {
                int64_t t = r * cols + c;
                int qv[4], lv[4], special = 0;
                int64_t sl[4], jv[4];
                uint64_t xv[4];
                for (int i = 0; i < 4; i++) {
                    qv[i] = q[t + i];
                    lv[i] = (int)((t + i) & (LANES - 1));
                    xv[i] = st.xs[lv[i]];
                    sl[i] = (int64_t)(xv[i] & LK_MASK);
                    int qq = qv[i] & 15;
                    special |= (qv[i] > 15) | (st.start[qq] == st.end[qq]) | (sl[i] >= LTOT);
                }
                if (special) {
                    for (int i = 0; i < 4; i++)
                        if (lk_one(&st, t + i, qv[i], out)) goto done;
                    continue;
                }
                for (int i = 0; i < 4; i++) {
                    int64_t j = st.bk[qv[i] * 16 + (sl[i] >> 12)];
                    j += st.cum[j + 1] <= sl[i];
                    j += st.cum[j + 1] <= sl[i];
                    while (st.cum[j + 1] <= sl[i]) j++;
                    jv[i] = j;
                }
                for (int i = 0; i < 4; i++) {
                    int64_t a0 = st.cum[jv[i]], f0 = st.cum[jv[i] + 1] - a0;
                    uint64_t x = (uint64_t)f0 * (xv[i] >> LPB) + (uint64_t)(sl[i] - a0);
                    int l = lv[i];
                    int64_t need = x < LK_LOW;
                    x = need ? (x << 32) | st.wl[l][st.wp[l]] : x;
                    st.wp[l] += need;
                    xv[i] = x;
                }
                for (int i = 0; i < 4; i++) {
                    /* m = 1: i = 0, a1 = 0, f1 = 2^16: the step leaves x as it is, as the
                     * reference, which skips it */
                    int64_t m = st.em[jv[i]], u = (int64_t)(xv[i] & LK_MASK), k = (u * m) >> LPB, rr = lk_rec[m];
                    int64_t a1 = (((k << LPB) + m - 1) * rr) >> 33;
                    int64_t f1 = (((((k + 1) << LPB) + m - 1) * rr) >> 33) - a1;
                    uint64_t x = (uint64_t)f1 * (xv[i] >> LPB) + (uint64_t)(u - a1);
                    int l = lv[i];
                    int64_t need = x < LK_LOW;
                    x = need ? (x << 32) | st.wl[l][st.wp[l]] : x;
                    st.wp[l] += need;
                    st.xs[l] = x;
                    out[t + i] = (int32_t)(st.cls[jv[i]] + k);
                }
                if ((st.wp[0] > st.wend[0]) | (st.wp[1] > st.wend[1]) | (st.wp[2] > st.wend[2]) |
                    (st.wp[3] > st.wend[3]))
                    goto done; /* a lane read past its words: the reference stops there too */
            }
            for (; c < cend; c++)
                if (lk_one(&st, r * cols + c, q[r * cols + c], out)) goto done;
        }
    }
    for (int i = 0; i < LANES; i++)
        if (st.xs[i] != LK_LOW || st.wp[i] != st.wend[i]) goto done;
    if (st.ep != ne) goto done;
    rc = 0;
done:
    free(pc);
    free(nxt);
    free(wpad);
    free(st.cls);
    free(st.cum);
    free(st.em);
    return rc;
oom:
    rc = -1;
    goto done;
}

static PyObject *py_decode_lookup(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[9];
    long long dt, cols, groups, sh;
    if (!PyArg_ParseTuple(args, "OOOOOOOLOLLLO", &o[0], &o[1], &o[8], &o[2], &o[3], &o[4], &o[5], &dt, &o[6],
                          &cols, &groups, &sh, &o[7]))
        return NULL;
    /* xs, words, esc, q, sbits, lbits, W, out, wcount */
    static const Py_ssize_t isz[9] = {8, 4, 2, 1, 2, 2, 2, 4, 8};
    static const char *names[9] = {"xs", "words", "esc", "q", "sbits", "lbits", "W", "out", "wcount"};
    Py_buffer v[9];
    int got = 0;
    for (; got < 9; got++)
        if (dl_getbuf(o[got], &v[got], isz[got], 0, got == 7, names[got]) < 0) break;
    int rc = -2;
    if (got == 9) {
        int64_t n = N(v[7]), ncls = N(v[6]);
        int bad = 0;
        if (N(v[0]) != LANES || N(v[8]) != LANES) bad = dl_fail("xs, wcount: one per lane");
        else if (dt < 0 || dt > 2) bad = dl_fail("dt: 0 (BF16), 1 (F16) or 2 (F32)");
        else if (sh != (dt == 1 ? 8 : 5) || ncls != ((int64_t)1 << (16 - sh)))
            bad = dl_fail("sh: the dtype's class shift; W: one weight per class");
        else if (cols < 1 || groups != (cols + 127) / 128) bad = dl_fail("cols >= 1, groups = ceil(cols / 128)");
        else if (N(v[3]) != n || n % cols) bad = dl_fail("q: one code per output, whole rows");
        else if (N(v[4]) != (n / cols) * groups || N(v[5]) != (n / cols) * groups)
            bad = dl_fail("sbits, lbits: one per group");
        if (!bad) {
            Py_BEGIN_ALLOW_THREADS
            rc = lk_decode(v[0].buf, v[1].buf, N(v[1]), v[8].buf, v[2].buf, N(v[2]), v[3].buf, v[4].buf,
                           v[5].buf, (int)dt, v[6].buf, ncls, cols, groups, sh, v[7].buf, n);
            Py_END_ALLOW_THREADS
            if (rc == -1) PyErr_NoMemory();
        }
    }
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    if (rc < 0) return NULL;
    return PyLong_FromLong(rc);
}

/* ---- the fast code back to the tensor's dtype (codecs/dual.py: dequantize_block then
 * to_dtype_bits, numpy, the reference): x = float32(q) * s + lo in float32 (two roundings: no
 * fused multiply-add), then bf16 (round to nearest even, the reference's integer formula), fp16
 * (round to nearest even, as numpy's cast) or fp32 bits. Scales or minimums that are not finite
 * (a crafted file) return 1: the caller takes the numpy path, whose NaN casts are its own. */
#if defined(__GNUC__) && !defined(__clang__)
#define DL_NOFMA __attribute__((optimize("fp-contract=off")))
#else
#define DL_NOFMA
#endif
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static inline float dl_h2f(uint16_t h) { /* finite fp16 -> float32, exact */
    uint32_t e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) {
        v = (float)m * 0x1p-24f;
        return (h & 0x8000) ? -v : v;
    }
    uint32_t f = ((uint32_t)(h & 0x8000) << 16) | ((e + 112) << 23) | (m << 13);
    memcpy(&v, &f, 4);
    return v;
}

/* finite float32 bits -> fp16, nearest even, without branches (so that the loop vectorises):
 * normal: the exponent rebased and the 13 dropped bits rounded by an add (a carry may reach
 * infinity, as it should from 65520); below 2^-14: the float add of 0.5 rounds the value to
 * fp16's subnormal step 2^-24 (the FPU's own nearest-even) and its low bits are the result;
 * from 65536: infinity. */
static inline uint16_t dl_f2h(uint32_t f) {
    uint32_t sign = (f >> 16) & 0x8000, a = f & 0x7FFFFFFF;
    uint32_t hn = (a - (112u << 23) + 0xFFFu + ((a >> 13) & 1u)) >> 13;
    float fa, fs;
    memcpy(&fa, &a, 4);
    fs = fa + 0.5f;
    uint32_t us;
    memcpy(&us, &fs, 4);
    uint32_t hs = us - 0x3F000000u;
    uint32_t h = a < 0x38800000u ? hs : (a >= 0x47800000u ? 0x7C00u : hn);
    return (uint16_t)(sign | h);
}

#if DL_HAVE_AVX2
#pragma GCC push_options
#pragma GCC target("avx2,bmi,bmi2,popcnt")
/* Codes [c0, c1) of a row (a multiple of 16), the group's scale and minimum broadcast in sc, lo:
 * dl_dequant's arithmetic 16 codes at a time (q * s and + lo as two roundings: no FMA in this
 * target; bf16 and fp16 as dl_dequant's integer rounding, fp16 below 2^-14 by the float add of
 * 0.5, as dl_f2h). */
__attribute__((optimize("fp-contract=off"))) static void dlw_dequant(const uint8_t *qr, int64_t c0, int64_t c1,
                                                                     float sc, float lo, int dt, uint16_t *o16,
                                                                     uint32_t *o32) {
    const __m256 vs = _mm256_set1_ps(sc), vl = _mm256_set1_ps(lo);
    const __m256i one = _mm256_set1_epi32(1), r7 = _mm256_set1_epi32(0x7FFF), rf = _mm256_set1_epi32(0xFFF);
    const __m256i abs_ = _mm256_set1_epi32(0x7FFFFFFF), sgn = _mm256_set1_epi32(0x8000);
    const __m256i reb = _mm256_set1_epi32(112 << 23), half = _mm256_set1_epi32(0x3F000000);
    const __m256i tiny = _mm256_set1_epi32(0x38800000), big = _mm256_set1_epi32(0x477FFFFF);
    const __m256i inf = _mm256_set1_epi32(0x7C00);
    for (int64_t c = c0; c < c1; c += 16) {
        __m128i q16 = _mm_loadu_si128((const __m128i *)(qr + c));
        __m256i u[2];
        u[0] = _mm256_castps_si256(_mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q16)), vs), vl));
        u[1] = _mm256_castps_si256(_mm256_add_ps(
            _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(q16, 8))), vs), vl));
        if (dt == 2) {
            _mm256_storeu_si256((__m256i *)(o32 + c), u[0]);
            _mm256_storeu_si256((__m256i *)(o32 + c + 8), u[1]);
            continue;
        }
        __m256i h[2];
        for (int i = 0; i < 2; i++) {
            if (dt == 0) {
                h[i] = _mm256_srli_epi32(
                    _mm256_add_epi32(_mm256_add_epi32(u[i], r7), _mm256_and_si256(_mm256_srli_epi32(u[i], 16), one)), 16);
            } else {
                __m256i a = _mm256_and_si256(u[i], abs_);
                __m256i hn = _mm256_srli_epi32(
                    _mm256_add_epi32(_mm256_sub_epi32(a, reb),
                                     _mm256_add_epi32(rf, _mm256_and_si256(_mm256_srli_epi32(a, 13), one))), 13);
                __m256i hs = _mm256_sub_epi32(
                    _mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(half))), half);
                __m256i x = _mm256_blendv_epi8(hn, hs, _mm256_cmpgt_epi32(tiny, a));
                x = _mm256_blendv_epi8(x, inf, _mm256_cmpgt_epi32(a, big));
                h[i] = _mm256_or_si256(x, _mm256_and_si256(_mm256_srli_epi32(u[i], 16), sgn));
            }
        }
        /* 16 x u32 (each below 2^16) -> 16 x u16 in order */
        __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi32(h[0], h[1]), 0xD8);
        _mm256_storeu_si256((__m256i *)(o16 + c), pk);
    }
}
#pragma GCC pop_options
#endif

/* The codes dequantized (dual.dequantize_block, to_dtype_bits); the AVX2 loop (dlw_dequant) for
 * each group's first multiple of 16 codes where decode_codes uses the AVX2 step (use_avx2). */
static DL_NOFMA int dl_dequant(const uint8_t *q, const uint16_t *s16, const uint16_t *lo16, int64_t rows,
                               int64_t cols, int64_t groups, int dt, void *out) {
    for (int64_t i = 0; i < rows * groups; i++)
        if (((s16[i] >> 10) & 31) == 31 || ((lo16[i] >> 10) & 31) == 31) return 1;
    const int wide = DL_HAVE_AVX2 && use_avx2;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t g = 0; g < groups; g++) {
            float sc = dl_h2f(s16[r * groups + g]), lo = dl_h2f(lo16[r * groups + g]);
            int64_t c0 = g * 128, c1 = c0 + 128 < cols ? c0 + 128 : cols;
#if DL_HAVE_AVX2
            if (wide) {
                int64_t cw = c0 + ((c1 - c0) & ~(int64_t)15);
                dlw_dequant(q + r * cols, c0, cw, sc, lo, dt, (uint16_t *)out + r * cols, (uint32_t *)out + r * cols);
                c0 = cw;
            }
#else
            (void)wide;
#endif
            const uint8_t *qr = q + r * cols;
            uint16_t *o16 = (uint16_t *)out + r * cols;
            uint32_t *o32 = (uint32_t *)out + r * cols;
#define DL_X(c) float p = (float)qr[c] * sc, x = p + lo; uint32_t u; memcpy(&u, &x, 4)
            if (dt == 0) /* one loop per dtype: the compiler vectorises the bf16 and fp32 ones */
                for (int64_t c = c0; c < c1; c++) {
                    DL_X(c);
                    o16[c] = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
                }
            else if (dt == 1)
                for (int64_t c = c0; c < c1; c++) {
                    DL_X(c);
                    o16[c] = dl_f2h(u);
                }
            else
                for (int64_t c = c0; c < c1; c++) {
                    DL_X(c);
                    o32[c] = u;
                }
#undef DL_X
        }
    }
    return 0;
}

static PyObject *py_dequantize(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[4];
    long long cols, dt;
    if (!PyArg_ParseTuple(args, "OOOLLO", &o[0], &o[1], &o[2], &cols, &dt, &o[3])) return NULL;
    /* q u8, s16 and lo16 as 2-byte integers (their bits), out: 2 or 4-byte integers */
    static const char *names[4] = {"q", "s16", "lo16", "out"};
    Py_ssize_t isz[4] = {1, 2, 2, dt == 2 ? 4 : 2};
    Py_buffer v[4];
    int got = 0;
    for (; got < 4; got++)
        if (dl_getbuf(o[got], &v[got], isz[got], 0, got == 3, names[got]) < 0) break;
    int rc = -1;
    if (got == 4) {
        int64_t n = N(v[0]), groups = (cols + 127) / 128;
        int bad = 0;
        if (dt < 0 || dt > 2) bad = dl_fail("dtype: 0 bf16, 1 fp16, 2 fp32");
        else if (cols < 1 || n % cols) bad = dl_fail("q: whole rows of cols codes");
        else if (N(v[1]) != n / cols * groups || N(v[2]) != n / cols * groups)
            bad = dl_fail("s16, lo16: one per group of 128 codes of a row");
        else if (N(v[3]) != n) bad = dl_fail("out: one per code");
        if (!bad) {
            Py_BEGIN_ALLOW_THREADS
            rc = dl_dequant(v[0].buf, v[1].buf, v[2].buf, n / cols, cols, groups, (int)dt, v[3].buf);
            Py_END_ALLOW_THREADS
        }
    }
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    if (rc < 0) return NULL;
    return PyLong_FromLong(rc);
}

static PyObject *py_isa(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    return PyUnicode_FromString(use_avx2 ? "avx2" : "scalar");
}

static PyObject *py_set_isa(PyObject *self, PyObject *args) {
    (void)self;
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name) || bs_select_isa(name, DL_HAVE_AVX2, &use_avx2, "'scalar' or 'avx2'") < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"isa", py_isa, METH_NOARGS, "the instruction set decode_codes runs with: 'avx2' or 'scalar'"},
    {"_set_isa", py_set_isa, METH_VARARGS, "tests only: force 'scalar' or 'avx2' (if supported)"},
    {"decode_exact", py_decode_exact, METH_VARARGS, "The .bsd 2.0 exact chunk's keys (dual_trunc._decode)."},
    {"decode_codes", py_decode_codes, METH_VARARGS, "The .bsd 2.0 fast chunk's INT4 codes (dual_fast)."},
    {"dequantize", py_dequantize, METH_VARARGS, "The fast code as the dtype's bits (dual.dequantize_block, to_dtype_bits)."},
    {"decode_lookup", py_decode_lookup, METH_VARARGS, "The .bsd 3.0 exact chunk's keys (dual_lookup.decode_keys)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_dual", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__dual(void) {
    for (int64_t n = 1; n <= 256; n++) lk_rec[n] = (((int64_t)1 << 33) + n - 1) / n;
    for (int msk = 0; msk < 256; msk++)
        for (int j = 0; j < 8; j++) dl_wlut[8 * msk + j] = __builtin_popcount((unsigned)msk & ((1u << j) - 1));
#if DL_HAVE_AVX2
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
#endif
    return PyModule_Create(&module);
}
