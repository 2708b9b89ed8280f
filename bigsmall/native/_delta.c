/* bigsmall.native._delta: a C port of the delta codec's chunk decoder (codecs/delta.py).
 *
 *   decode(chunk, base, out, k0, wbits, kind, mbits, ebits, elo, nk, ncols, rowctx, nr,
 *          tsym, tfc, alpha, pb, det, skip, zlead, rawn, lanes) -> int
 *
 * takes exactly the arguments of the numba ``_decode``, in the same order, and returns the same
 * value with the same bytes written (property_tests/test_native_delta.py). Why a module of its
 * own (not in _kernels.c): the delta codec is separate from the field codecs those kernels
 * serve, and each extension builds (or fails to build) on its own.
 *
 * Unlike the numba kernel, which trusts prepare, this function checks everything an index
 * depends on before decoding (element sizes, the rows the chunk touches and their clusters,
 * table sizes for every context, the raw-bit counts) and raises ValueError/TypeError; chunk
 * bytes are checked inside the kernel exactly as the reference does. The GIL is released.
 *
 * Instantiated per word width (1, 2, 4, 8 bytes) x kind (unsigned, offset binary, float) x
 * probability bits (13, the only value bigsmall writes, folded; or any), each twice on x86-64:
 * plain and with target("avx2,bmi,bmi2") (shlx/shrx for the variable shifts), picked at import.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DD_HAVE_AVX2 1 /* GCC's target pragma: the AVX2 build of the same source */
#include <immintrin.h>
#else
#define DD_HAVE_AVX2 0
#endif

#define DD_ONE_FN(SUF, W, KIND, PB)                                                           \
    __attribute__((noinline)) static int dd_##SUF##_##W##_##KIND##_##PB(                      \
        const dd_model *m, const uint8_t *chunk, int64_t size, const void *base, void *out,   \
        int64_t n, int64_t k0) {                                                              \
        return dd_##SUF##_kernel(m, chunk, size, base, out, n, k0, W, KIND, PB);              \
    }
#define DD_KINDS(SUF, W, PB) DD_ONE_FN(SUF, W, 0, PB) DD_ONE_FN(SUF, W, 1, PB) DD_ONE_FN(SUF, W, 2, PB)
#define DD_WIDTHS(SUF, PB) DD_KINDS(SUF, 1, PB) DD_KINDS(SUF, 2, PB) DD_KINDS(SUF, 4, PB) DD_KINDS(SUF, 8, PB)
#define DD_ROW(SUF, W, PB) {dd_##SUF##_##W##_0_##PB, dd_##SUF##_##W##_1_##PB, dd_##SUF##_##W##_2_##PB}
#define DD_DEFINE_ISA(SUF)                                                                    \
    DD_WIDTHS(SUF, 13) DD_WIDTHS(SUF, 0)                                                      \
    static const dd_fn dd_table_##SUF[2][4][3] = {                                            \
        {DD_ROW(SUF, 1, 13), DD_ROW(SUF, 2, 13), DD_ROW(SUF, 4, 13), DD_ROW(SUF, 8, 13)},     \
        {DD_ROW(SUF, 1, 0), DD_ROW(SUF, 2, 0), DD_ROW(SUF, 4, 0), DD_ROW(SUF, 8, 0)}};

/* Version 3 (delta_wide.h): any lanes count, the AVX2 vector step for 16- and 32-bit words. */
#define DW_ONE_FN(SUF, W, KIND, PB)                                                           \
    __attribute__((noinline)) static int dw_##SUF##_##W##_##KIND##_##PB(                      \
        const dd_model *m, const uint8_t *chunk, int64_t size, const void *base, void *out,   \
        int64_t n, int64_t k0, int64_t lanes, const int32_t *lut, const uint32_t *st) {       \
        return dd_##SUF##_wide(m, chunk, size, base, out, n, k0, lanes, lut, st, W, KIND, PB); \
    }
#define DW_KINDS(SUF, W, PB) DW_ONE_FN(SUF, W, 0, PB) DW_ONE_FN(SUF, W, 1, PB) DW_ONE_FN(SUF, W, 2, PB)
#define DW_WIDTHS(SUF, PB) DW_KINDS(SUF, 1, PB) DW_KINDS(SUF, 2, PB) DW_KINDS(SUF, 4, PB) DW_KINDS(SUF, 8, PB)
#define DW_ROW(SUF, W, PB) {dw_##SUF##_##W##_0_##PB, dw_##SUF##_##W##_1_##PB, dw_##SUF##_##W##_2_##PB}
#define DW_DEFINE_ISA(SUF)                                                                    \
    DW_WIDTHS(SUF, 10) DW_WIDTHS(SUF, 0)                                                      \
    static const dw_fn dw_table_##SUF[2][4][3] = {                                            \
        {DW_ROW(SUF, 1, 10), DW_ROW(SUF, 2, 10), DW_ROW(SUF, 4, 10), DW_ROW(SUF, 8, 10)},     \
        {DW_ROW(SUF, 1, 0), DW_ROW(SUF, 2, 0), DW_ROW(SUF, 4, 0), DW_ROW(SUF, 8, 0)}};

#define DD_NS(x) dd_scalar_##x
#define DD_SIMD 0
#include "delta_decode.h"
#include "delta_wide.h"
typedef int (*dd_fn)(const dd_model *, const uint8_t *, int64_t, const void *, void *, int64_t,
                     int64_t);
typedef int (*dw_fn)(const dd_model *, const uint8_t *, int64_t, const void *, void *, int64_t,
                     int64_t, int64_t, const int32_t *, const uint32_t *);
DD_DEFINE_ISA(scalar)
DW_DEFINE_ISA(scalar)
#undef DD_NS
#undef DD_SIMD

#if DD_HAVE_AVX2
#pragma GCC push_options
#pragma GCC target("avx2,bmi,bmi2,popcnt")
#define DD_NS(x) dd_avx2_##x
#define DD_SIMD 1
#include "delta_decode.h"
#include "delta_wide.h"
DD_DEFINE_ISA(avx2)
DW_DEFINE_ISA(avx2)
#undef DD_NS
#undef DD_SIMD
#pragma GCC pop_options
#endif

static int use_avx2 = 0; /* set at import (and by _set_isa, for the tests) */
static int dw_eager = 0;  /* tests: the vector step on chunks of any size ("avx2-eager") */

static dd_fn dd_pick(int64_t w, int64_t kind, int64_t pb) {
    int wi = w == 1 ? 0 : (w == 2 ? 1 : (w == 4 ? 2 : 3));
    int pi = pb == 13 ? 0 : 1;
#if DD_HAVE_AVX2
    if (use_avx2) return dd_table_avx2[pi][wi][kind];
#endif
    return dd_table_scalar[pi][wi][kind];
}

static dw_fn dw_pick(int64_t w, int64_t kind, int64_t pb) {
    int wi = w == 1 ? 0 : (w == 2 ? 1 : (w == 4 ? 2 : 3));
    int pi = pb == 10 ? 0 : 1; /* version 3's probability bits (codecs/delta.py PB3), folded */
#if DD_HAVE_AVX2
    if (use_avx2) return dw_table_avx2[pi][wi][kind];
#endif
    return dw_table_scalar[pi][wi][kind];
}

/* Per 8-bit mask of the lanes that renormalise: lane j -> how many of the lanes below it do
 * (the index of its word among the next 8 of the stream; delta_wide.h). */
static int32_t dw_lut[256 * 8];

static void dw_init_lut(void) {
    for (int msk = 0; msk < 256; msk++)
        for (int j = 0; j < 8; j++) dw_lut[8 * msk + j] = __builtin_popcount((unsigned)msk & ((1u << j) - 1));
}

/* ------------------------------------------------------------------ argument checks */

#include "pybuf.h"
#include "isa.h"
#define dd_fail pb_fail

/* A C-contiguous 1-D buffer of integers of itemsize isz (0: 1, 2, 4 or 8). */
static int dd_getbuf(PyObject *o, Py_buffer *v, Py_ssize_t isz, int writable, const char *name) {
    return pb_getbuf(o, v, isz, PB_INTS, 1, writable, name);
}

#define DD_NB 11 /* chunk, base, out, rowctx, tsym, tfc, det, skip, zlead, rawn (+1 spare) */
#define DD_N(v) ((int64_t)((v).len / (v).itemsize))
#define DD_BIG ((int64_t)1 << 40)

/* Everything an index of the kernel depends on (see the file comment). */
static int dd_check(Py_buffer *v, dd_model *m, int64_t k0, int64_t wbits, int64_t kind) {
    int64_t w = v[1].itemsize, n = DD_N(v[1]);
    if (v[2].itemsize != w || DD_N(v[2]) < n) return dd_fail("out: the base's word size, >= its length");
    if (wbits != 8 * w) return dd_fail("wbits must be 8 x the base's word size");
    if (kind < 0 || kind > 2) return dd_fail("kind must be 0, 1 or 2");
    if (m->alpha != 2 * wbits) return dd_fail("alpha must be 2 x wbits");
    if (m->pb < 1 || m->pb > 16) return dd_fail("pb must be in [1, 16]");
    if (m->nr < 1 || m->nr > 256 || m->nk < 1 || m->nk > 256) return dd_fail("nk, nr in [1, 256]");
    if (kind == 2 && (m->mbits < 0 || m->ebits < 1 || m->mbits + m->ebits > wbits))
        return dd_fail("mbits + ebits must fit the word");
    if (m->elo <= -DD_BIG || m->elo >= DD_BIG) return dd_fail("elo out of range");
    if (m->ncols < 1) return dd_fail("ncols must be >= 1");
    if (k0 < 0 || k0 > DD_BIG) return dd_fail("k0 out of range");
    int64_t nctx = m->nk * m->nr;
    if (nctx > 32767) return dd_fail("nk x nr contexts: at most 32767");
    if (DD_N(v[4]) < (nctx << m->pb)) return dd_fail("tsym too short for the contexts");
    if (DD_N(v[5]) < nctx * m->alpha) return dd_fail("tfc too short for the contexts");
    if (DD_N(v[6]) < nctx) return dd_fail("det too short for the contexts");
    if (DD_N(v[7]) < m->nr) return dd_fail("skip too short for the row clusters");
    if (DD_N(v[8]) < m->alpha || DD_N(v[9]) < m->alpha) return dd_fail("zlead, rawn too short");
    for (int64_t s = 0; s < m->alpha; s++)
        if (m->rawn[s] > wbits - 2) return dd_fail("rawn out of range (at most wbits - 2)");
    if (kind == 2 && (m->nr << m->ebits) > ((int64_t)1 << 16))
        return dd_fail("nr x 2**ebits contexts: at most 65536");
    if (n == 0) return 0;
    int64_t r0 = k0 / m->ncols, r1 = (k0 + n - 1) / m->ncols;
    if (r1 >= DD_N(v[3])) return dd_fail("rowctx too short for the chunk's rows");
    for (int64_t r = r0; r <= r1; r++)
        if (m->rowctx[r] >= m->nr) return dd_fail("row cluster out of range");
    return 0;
}

/* The kernels' tables, in one allocation (NULL with MemoryError):
 *
 * - the AVX2 kernels' compare rows (delta_decode.h): per context, 0x7FFF then cum[c][1..], or
 *   0x7FFF throughout where the context's frequencies are all zero (the slot table then says
 *   symbol 0 everywhere, and so do these rows);
 * - ctab, per row cluster rc and exponent field e (floats; one entry otherwise): the context
 *   c = clamp(e - elo, 0, nk - 1) * nr + rc of the numba kernel, or -1 where det[c]. */
static int16_t *dd_tables(const dd_model *m, int64_t kind) {
    int64_t nctx = m->nk * m->nr, alpha = m->alpha, ne = (int64_t)1 << m->cbits;
    int16_t *t = PyMem_Malloc((size_t)(nctx * alpha + (m->nr << m->cbits)) * sizeof(int16_t) + 32);
    if (t == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (int64_t c = 0; c < nctx; c++) {
        const uint32_t *fc = m->tfc + c * alpha;
        uint64_t tot = 0;
        for (int64_t s = 0; s < alpha; s++) tot += fc[s] & 0xFFFF;
        t[c * alpha] = 0x7FFF;
        for (int64_t s = 1; s < alpha; s++) {
            uint32_t cum = fc[s] >> 16;
            t[c * alpha + s] = (int16_t)(tot == 0 || cum > 0x7FFE ? 0x7FFF : cum);
        }
    }
    int16_t *ctab = t + nctx * alpha;
    for (int64_t rc = 0; rc < m->nr; rc++) {
        for (int64_t e = 0; e < ne; e++) {
            int64_t ce = 0;
            if (kind == 2) {
                int64_t d = e - m->elo;
                ce = d < 0 ? 0 : (d >= m->nk ? m->nk - 1 : d);
            }
            int64_t c = ce * m->nr + rc;
            ctab[(rc << m->cbits) + e] = (int16_t)(m->det[c] ? -1 : c);
        }
    }
    return t;
}

/* ------------------------------------------------------------------ Python functions */

static PyObject *py_decode(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[DD_NB];
    long long k0, wbits, kind, mbits, ebits, elo, nk, ncols, nr, alpha, pb, lanes;
    if (!PyArg_ParseTuple(args, "OOOLLLLLLLLOLOOLLOOOOL", &o[0], &o[1], &o[2], &k0, &wbits, &kind,
                          &mbits, &ebits, &elo, &nk, &ncols, &o[3], &nr, &o[4], &o[5], &alpha,
                          &pb, &o[6], &o[7], &o[8], &o[9], &lanes))
        return NULL;
    if (lanes < 1 || lanes > DW_MAXL || (lanes & (lanes - 1))) {
        PyErr_SetString(PyExc_ValueError, "lanes must be a power of two in [1, 64]");
        return NULL;
    }
    static const Py_ssize_t isz[10] = {1, 0, 0, 1, 1, 4, 1, 1, 8, 1};
    static const char *names[10] = {"chunk", "base", "out", "rowctx", "tsym", "tfc", "det",
                                    "skip", "zlead", "rawn"};
    Py_buffer v[10];
    int got = 0;
    for (; got < 10; got++)
        if (dd_getbuf(o[got], &v[got], isz[got], got == 2, names[got]) < 0) break;
    int rc = -1;
    if (got == 10) {
        dd_model m = {v[3].buf, v[4].buf, v[5].buf, v[6].buf, v[7].buf, v[8].buf, v[9].buf,
                      NULL, NULL, 0, ncols, nr, elo, nk, mbits, ebits, alpha, pb};
        int16_t *cmpt = NULL;
        m.cbits = kind == 2 ? ebits : 0;
        if (dd_check(v, &m, k0, wbits, kind) == 0 && (cmpt = dd_tables(&m, kind)) != NULL) {
            m.cmpt = cmpt;
            m.ctab = cmpt + m.nk * m.nr * m.alpha;
            int64_t n = DD_N(v[1]);
            if (lanes == 4) {
                dd_fn f = dd_pick(v[1].itemsize, kind, pb);
                Py_BEGIN_ALLOW_THREADS
                rc = f(&m, v[0].buf, (int64_t)v[0].len, v[1].buf, v[2].buf, n, k0);
                Py_END_ALLOW_THREADS
            } else {
                /* the vector step (AVX2, 16- and 32-bit words) wants its slot table: built
                 * here (~0.3 ns a slot), so only where the chunk has more elements than a
                 * quarter of the table's slots; bit offsets and indices within 31 bits */
                int64_t nctx = m.nk * m.nr;
                uint32_t *st = NULL;
                int simd = use_avx2 && lanes >= 8 && (v[1].itemsize == 2 || v[1].itemsize == 4) && m.pb <= 12 &&
                           (dw_eager || 4 * n >= (nctx << m.pb)) && (int64_t)v[0].len < ((int64_t)1 << 27) &&
                           m.elo > -((int64_t)1 << 20) && m.elo < ((int64_t)1 << 20);
                if (simd) {
                    st = PyMem_Malloc((size_t)(nctx << m.pb) * sizeof(uint32_t));
                    if (st == NULL) {
                        PyErr_NoMemory();
                    } else if (!dw_slot_table(&m, st)) {
                        PyMem_Free(st);
                        st = NULL;
                    }
                }
                if (!simd || st != NULL || !PyErr_Occurred()) {
                    dw_fn f = dw_pick(v[1].itemsize, kind, pb);
                    Py_BEGIN_ALLOW_THREADS
                    rc = f(&m, v[0].buf, (int64_t)v[0].len, v[1].buf, v[2].buf, n, k0, lanes, dw_lut, st);
                    Py_END_ALLOW_THREADS
                }
                PyMem_Free(st);
            }
        }
        PyMem_Free(cmpt);
    }
    for (int b = 0; b < got; b++) PyBuffer_Release(&v[b]);
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
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    int eager = strcmp(name, "avx2-eager") == 0;
    if (bs_select_isa(eager ? "avx2" : name, DD_HAVE_AVX2, &use_avx2, "'scalar', 'avx2' or 'avx2-eager'") < 0)
        return NULL;
    dw_eager = eager;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode", py_decode, METH_VARARGS, "delta: one chunk (codecs/delta.py _decode)"},
    {"isa", py_isa, METH_NOARGS, "the instruction set the kernel runs with: 'avx2' or 'scalar'"},
    {"_set_isa", py_set_isa, METH_VARARGS,
     "tests only: force 'scalar' or 'avx2' (if supported); 'avx2-eager': avx2, and version 3's "
     "vector step on chunks of any size (not only where building its slot table pays)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT, "bigsmall.native._delta",
    "A C port of the delta codec's numba chunk decoder (byte-identical output).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__delta(void) {
    dw_init_lut();
#if DD_HAVE_AVX2
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
#endif
    return PyModule_Create(&moddef);
}
