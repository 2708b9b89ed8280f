/* bigsmall.native._dual: C ports of the .bsd 2.0 decode kernels (codecs/dual_trunc.py,
 * codecs/dual_fast.py).
 *
 *   decode_exact(xs, words, esc, q, kat, kbt, base, mass, rinv, W, winv, cc, cols, groups, sh,
 *                out) -> int
 *   decode_codes(words, z, freq, cum, lut, ok, q, cols, up) -> int   (lut unused: may be empty)
 *
 * decode_exact takes exactly the arguments of the numba ``dual_trunc._decode`` and returns the
 * same value with the same keys written; decode_codes is ``dual_fast._decode_up`` (up = 1) or the
 * fast chunk's mode-0 decode (up = 0: the context is the zero bin alone, as ``dual._decode``
 * with no raw bits). property_tests/test_dual.py checks native == reference. Why a module of its
 * own: the .bsd codec is separate from the field codecs of _kernels.c, and each extension builds
 * (or fails to build) on its own.
 *
 * Every size an index depends on is checked before decoding (ValueError/TypeError); what the
 * stream says is checked inside, exactly as the reference does (return 1). The GIL is released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define PREC 31
#define LANES 4

#include "pybuf.h"
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

static int dl_codes(const uint16_t *words, int64_t nw, const int32_t *z, const int64_t *freq,
                    const int64_t *cum, const uint8_t *ok, uint8_t *q, int64_t rows, int64_t cols, int up) {
    if (nw < 2) return 1;
    uint64_t x = (uint64_t)words[0] | ((uint64_t)words[1] << 16);
    int64_t wp = 2, t = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++, t++) {
            int64_t cx = z[t];
            if (up) {
                int64_t u = 0;
                if (r > 0) {
                    u = (int64_t)q[t - cols] - z[t - cols];
                    if (u < 0) u = -u;
                    if (u > 3) u = 3;
                }
                cx = cx * 4 + u;
            }
            if (!ok[cx]) return 1;
            uint64_t slot = x & (MPB - 1);
            /* the symbol whose [cum, cum + freq) holds the slot: the largest s with cum[s] <= slot
             * (a symbol of frequency 0 shares its cum with the next one, so it is never picked) */
            const int64_t *cr = cum + cx * 16;
            int s = 0;
            for (int j = 1; j < 16; j++) s += cr[j] <= (int64_t)slot;
            x = (uint64_t)freq[cx * 16 + s] * (x >> PB) + slot - (uint64_t)cum[cx * 16 + s];
            if (x < ((uint64_t)1 << 16)) {
                if (wp >= nw) return 1;
                x = (x << 16) | words[wp++];
            }
            q[t] = s;
        }
    }
    if (x != ((uint64_t)1 << 16) || wp != nw) return 1;
    return 0;
}

static PyObject *py_decode_codes(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[7];
    long long cols, up;
    if (!PyArg_ParseTuple(args, "OOOOOOOLL", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &cols, &up))
        return NULL;
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
        if (cols < 1 || n % cols || N(v[1]) != n) bad = dl_fail("z: one per code, whole rows");
        else if (up != 0 && up != 1) bad = dl_fail("up must be 0 or 1");
        else if (nctx < (up ? 64 : 16) || N(v[2]) != nctx * 16 || N(v[3]) != nctx * 16)
            bad = dl_fail("freq, cum: 16 per context");
        if (!bad) {
            const int32_t *z = v[1].buf;
            int64_t zmax = up ? 15 : nctx - 1; /* up = 0: z is the context itself */
            for (int64_t i = 0; i < n && !bad; i++)
                if (z[i] < 0 || z[i] > zmax) bad = dl_fail("z: a context out of range");
        }
        if (!bad) {
            Py_BEGIN_ALLOW_THREADS
            rc = dl_codes(v[0].buf, N(v[0]), v[1].buf, v[2].buf, v[3].buf, v[5].buf, v[6].buf, n / cols,
                          cols, (int)up);
            Py_END_ALLOW_THREADS
        }
    }
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    if (rc < 0) return NULL;
    return PyLong_FromLong(rc);
}

static PyMethodDef methods[] = {
    {"decode_exact", py_decode_exact, METH_VARARGS, "The .bsd 2.0 exact chunk's keys (dual_trunc._decode)."},
    {"decode_codes", py_decode_codes, METH_VARARGS, "The .bsd 2.0 fast chunk's INT4 codes (dual_fast)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_dual", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__dual(void) { return PyModule_Create(&module); }
