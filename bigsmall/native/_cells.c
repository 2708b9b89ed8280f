/* bigsmall.native._cells: the C decoder of the .bsd 5.0 exact chunk (codecs/dual_cells.py, whose
 * numba kernels ``bin_params`` + ``decode_patterns`` are the reference).
 *
 *   decode(words, side, dfreq, ne, q, sb, lb, spec, dt, cols, groups, mb, out) -> int
 *     words u16 (the 16 states' initial values first), side u16 (the side stream of the ne
 *     escaped weights, its state first), dfreq (its 32 depth frequencies), q u8 (codes,
 *     rows x cols flat), sb/lb u16 (fp16 bits of each group's scale and minimum, rows x groups),
 *     spec (6 special frequencies), dt (0 bf16, 1 fp16, 2 fp32's top halves), mb (mantissa
 *     bits: 7 or 10), out u16 (the patterns) -> 0, or 1 when the stream does not decode
 *   isa() -> 'avx2' | 'scalar';  _set_isa(name)  (tests: force one)
 *
 * Per group of 128 weights the 16 bins' parameters are computed here (the reference's
 * ``bin_params``, in the same integer arithmetic); then per block of 16 weights 16 cell steps and
 * 16 raw steps. The AVX2 step (cols a multiple of 16: a block never straddles a group) holds a
 * group's parameters in registers and picks each lane's by its code with two permutes, divides by
 * the uniform frequency with a float reciprocal (exact: ``floor((w + 1/2) / f)`` is never within
 * the float's error of an integer, w < 2^16) and spreads the renormalisation words over the
 * lanes by a mask LUT. Escaped weights (rare) are decoded afterwards in lane order from the side stream. Why a
 * module of its own: each extension builds (or fails to) on its own, and _dual.c is 3.0's.
 * The GIL is released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pybuf.h"
#include "isa.h"
#include "dual_bins.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define CL_HAVE_AVX2 1
#include <immintrin.h>
#else
#define CL_HAVE_AVX2 0
#endif

#define CL_LANES 16
#define CL_NSPEC 3

/* One bin's parameters (the reference's columns). */
typedef struct {
    int32_t mlo, n, et, vs, ns, c1, c2, u0, f, esc;
} cl_bin;

/* The cell of ordered key k in a bin of top exponent et: m (a: its magnitude cell). */
static inline int32_t cl_cell(int32_t k, int32_t et, int32_t mb, int32_t *a_out) {
    int pos = k >= 0x8000;
    int32_t g = pos ? k - 0x8000 : 0x7FFF - k;
    int32_t e = g >> mb, ee = e > 1 ? e : 1;
    int32_t f = e <= 1 ? g : (g & ((1 << mb) - 1)) | (1 << mb);
    int32_t sh = et - ee, a;
    if (sh < 0) a = 1 << 20;
    else a = sh > mb ? 0 : f >> sh;
    if (a_out) *a_out = a;
    return pos ? a : -1 - a;
}

static inline int32_t cl_et(int32_t k, int32_t mb) {
    int32_t g = k >= 0x8000 ? k - 0x8000 : 0x7FFF - k, e = g >> mb;
    return e > 1 ? e : 1;
}

/* One bin's parameters from its key range [a, b] (the reference's bin_params for bin q; s and
 * lo: the group's scale and minimum in 2^-U units, for the special window of bins 0 and 15). */
static void cl_bin_fill(cl_bin *p, int q, int32_t a, int32_t b, int64_t s, int64_t lo, int dt, int32_t mb,
                        const int64_t *spec) {
    if (b < a) {
        memset(p, 0, sizeof(*p));
        return;
    }
    int32_t ea = cl_et(a, mb), eb = cl_et(b, mb), et = ea > eb ? ea : eb;
    int32_t mlo = cl_cell(a, et, mb, NULL), mhi = cl_cell(b, et, mb, NULL), n = mhi - mlo + 1;
    int32_t vs = 0, ns = 0;
    int64_t c[CL_NSPEC + 1] = {0};
    if (q == 0 || q == 15) {
        int64_t ek = db_edge(q == 0 ? lo : lo + 15 * s, dt, q == 0);
        if (dt == 2) ek >>= 16;
        int32_t ve = cl_cell((int32_t)ek, et, mb, NULL), v0 = ve - mlo - 1;
        int32_t i0 = v0 < 0 ? -v0 : 0, i1 = n - v0 < CL_NSPEC ? n - v0 : CL_NSPEC;
        if (i1 > i0) {
            vs = v0 + i0;
            ns = i1 - i0;
            for (int i = 0; i < ns; i++) c[i + 1] = c[i] + spec[(q == 0 ? 0 : CL_NSPEC) + i0 + i];
        }
    }
    int32_t nu = n - ns, u0 = (int32_t)c[ns];
    /* floor((65535 - u0) / nu) by a double division (exact: both < 2^16, so a quotient that is
     * not an integer lies >= 2^-16 from one, far beyond the rounding error; an integer division
     * here was ~1/5 of the group's time) */
    int32_t f = nu > 0 ? (int32_t)((double)(65535 - u0) / (double)nu) : 0;
    p->mlo = mlo, p->n = n, p->et = et, p->vs = vs, p->ns = ns;
    p->c1 = ns > 1 ? (int32_t)c[1] : u0;
    p->c2 = ns > 2 ? (int32_t)c[2] : u0;
    p->u0 = u0, p->f = f, p->esc = u0 + nu * f;
}

/* The reference's bin_params for one group. */
static void cl_group(uint16_t sb, uint16_t lb, int dt, int32_t mb, const int64_t *spec, cl_bin *P) {
    int64_t lower[17], upper[17];
    int64_t s = db_fp16_units(sb) << (DB_U - 24), lo = db_fp16_units(lb) << (DB_U - 24);
    db_edges(s, lo, dt, lower, upper);
    for (int q = 0; q < 16; q++) cl_bin_fill(&P[q], q, (int32_t)lower[q], (int32_t)upper[q + 1], s, lo, dt, mb, spec);
}

static inline int cl_floor_log2(int32_t a) { return a > 1 ? 31 - __builtin_clz((unsigned)a) : 0; }

static inline int32_t cl_raw_bits(int32_t a, int32_t et, int32_t mb) {
    if (a == 0) return et - 1 <= mb ? et - 1 : -1;
    int32_t j = mb - cl_floor_log2(a);
    return j < et - 1 ? j : et - 1;
}

#define CL_DEPTHS 32
#define CL_DPB 15

typedef struct {
    const uint16_t *words, *side;
    const int64_t *dfreq;
    int64_t nw, ne, wp, ep, sn, sp;
    uint32_t xs[CL_LANES];
    uint32_t sx;
    int sbad;
} cl_io;

/* The side state after a step left x (the reference's _side_set): a word read when below 2^16;
 * past the stream's end sets sbad. */
static inline void cl_side_set(cl_io *io, uint32_t x) {
    if (x < (1u << 16)) {
        if (io->sp >= io->sn) {
            io->sbad = 1;
            return;
        }
        x = (x << 16) | io->side[io->sp++];
    }
    io->sx = x;
}

/* j raw bits from the side stream (the reference's _side_raw). */
static inline int32_t cl_side_raw(cl_io *io, int j) {
    uint32_t x = io->sx, slot = x & 0xFFFF;
    cl_side_set(io, ((x >> 16) << (16 - j)) + (slot & ((1u << (16 - j)) - 1)));
    return (int32_t)(slot >> (16 - j));
}

/* The next escaped pattern (the reference's side_next): et < 0 outside the bin's cells, else a
 * key of the cell at 0 of a bin of top exponent et. -1: the streams do not decode. */
static int32_t cl_side_next(cl_io *io, int32_t et, int neg, int32_t mb) {
    if (io->ep >= io->ne) return -1;
    io->ep++;
    if (et < 0) {
        int32_t hi = cl_side_raw(io, 8), lo = cl_side_raw(io, 8);
        return io->sbad ? -1 : (hi << 8) | lo;
    }
    uint32_t x = io->sx, slot = x & ((1u << CL_DPB) - 1);
    int d = -1;
    int64_t c = 0;
    for (int s = 0; s < CL_DEPTHS; s++) {
        if (io->dfreq[s] > 0 && c <= slot && slot < c + io->dfreq[s]) {
            d = s;
            break;
        }
        c += io->dfreq[s];
    }
    if (d < 0) return -1;
    cl_side_set(io, (uint32_t)io->dfreq[d] * (x >> CL_DPB) + slot - (uint32_t)c);
    int32_t g;
    if (d == CL_DEPTHS - 1) {
        int32_t hi = cl_side_raw(io, 7);
        g = (hi << 8) | cl_side_raw(io, 8);
    } else {
        int32_t ee = et - mb - 1 - d;
        if (ee < 1) return -1;
        g = ee >= 2 ? (ee << mb) | cl_side_raw(io, mb) : cl_side_raw(io, mb + 1);
    }
    return io->sbad ? -1 : (neg ? 0x8000 : 0) | g;
}

static inline int cl_renorm(cl_io *io, uint32_t *x) {
    if (*x < (1u << 16)) {
        if (io->wp >= io->nw) return 1;
        *x = (*x << 16) | io->words[io->wp++];
    }
    return 0;
}

/* The block [b0, b1) in scalar steps, as the reference; bins[t - b0]: weight t's bin. */
static int cl_block_scalar(cl_io *io, int64_t b0, int64_t b1, const cl_bin *bins, int32_t mb,
                           uint16_t *out) {
    int32_t ja[CL_LANES], aa[CL_LANES], sg[CL_LANES], ets[CL_LANES];
    for (int64_t t = b0; t < b1; t++) {
        int ln = (int)(t - b0);
        const cl_bin *p = &bins[ln];
        uint32_t x = io->xs[ln], slot = x & 0xFFFF;
        int32_t start, freq, v = 0, isesc = 0;
        if ((int32_t)slot < p->u0) {
            int i = ((int32_t)slot >= p->c1) + ((int32_t)slot >= p->c2);
            start = i == 0 ? 0 : (i == 1 ? p->c1 : p->c2);
            freq = (i == 0 ? p->c1 : (i == 1 ? p->c2 : p->u0)) - start;
            v = p->vs + i;
        } else if ((int32_t)slot >= p->esc) {
            start = p->esc;
            freq = 65536 - start;
            isesc = 1;
        } else {
            int32_t u = ((int32_t)slot - p->u0) / p->f;
            start = p->u0 + u * p->f;
            freq = p->f;
            v = u < p->vs ? u : u + p->ns;
        }
        x = (uint32_t)freq * (x >> 16) + slot - (uint32_t)start;
        if (cl_renorm(io, &x)) return 1;
        io->xs[ln] = x;
        int32_t m = p->mlo + v, a = m < 0 ? -1 - m : m;
        if (!isesc && (a >> (mb + 1))) return 1; /* beyond any bin's cells: a damaged stream */
        int32_t j = isesc ? -1 : cl_raw_bits(a, p->et, mb);
        ja[ln] = j, aa[ln] = a, sg[ln] = m < 0, ets[ln] = p->et;
        if (j < 0) {
            int32_t e = cl_side_next(io, isesc ? -1 : p->et, m < 0, mb);
            if (e < 0) return 1;
            out[t] = (uint16_t)e;
        }
    }
    for (int64_t t = b0; t < b1; t++) {
        int ln = (int)(t - b0);
        int32_t j = ja[ln];
        if (j < 0) continue;
        int32_t r = 0;
        if (j > 0) {
            uint32_t x = io->xs[ln], slot = x & 0xFFFF;
            r = (int32_t)(slot >> (16 - j));
            x = ((x >> 16) << (16 - j)) + (slot & ((1u << (16 - j)) - 1));
            if (cl_renorm(io, &x)) return 1;
            io->xs[ln] = x;
        }
        int64_t g = ((int64_t)aa[ln] << j) + r + ((int64_t)(ets[ln] - j - 1) << mb);
        if (g > 0x7FFF || g < 0) return 1;
        out[t] = (uint16_t)((sg[ln] << 15) | g);
    }
    return 0;
}

#if CL_HAVE_AVX2
#include "cells_wide.h"
#endif

static int use_avx2 = 0;

/* A group's parameters, computed when first needed (a small cache: blocks may straddle two). */
typedef struct {
    int64_t gi[2];
    cl_bin P[2][16];
    int next;
} cl_cache;

static const cl_bin *cl_bins_of(cl_cache *c, int64_t g, const uint16_t *sb, const uint16_t *lb, int dt,
                                int32_t mb, const int64_t *spec) {
    for (int i = 0; i < 2; i++)
        if (c->gi[i] == g) return c->P[i];
    int i = c->next;
    c->next ^= 1;
    c->gi[i] = g;
    cl_group(sb[g], lb[g], dt, mb, spec, c->P[i]);
    return c->P[i];
}

static int cl_decode(cl_io *io, const uint8_t *q, const uint16_t *sb, const uint16_t *lb, const int64_t *spec,
                     int dt, int64_t n, int64_t cols, int64_t groups, int32_t mb, uint16_t *out) {
    if (io->nw < 2 * CL_LANES || io->sn < 2) return 1;
    io->sx = (uint32_t)io->side[0] | ((uint32_t)io->side[1] << 16);
    io->sp = 2;
    io->sbad = 0;
    for (int i = 0; i < CL_LANES; i++)
        io->xs[i] = (uint32_t)io->words[2 * i] | ((uint32_t)io->words[2 * i + 1] << 16);
    io->wp = 2 * CL_LANES;
    io->ep = 0;
    cl_cache cache = {{-1, -1}, {{{0}}}, 0};
    int64_t b0 = 0;
#if CL_HAVE_AVX2
    if (use_avx2 && cols % CL_LANES == 0) {
        int rc = cl_run_avx2(io, q, sb, lb, spec, dt, n, cols, groups, mb, out, &b0);
        if (rc) return 1;
    }
#endif
    for (; b0 < n; b0 += CL_LANES) {
        int64_t b1 = b0 + CL_LANES < n ? b0 + CL_LANES : n;
        cl_bin bins[CL_LANES]; /* copies: a block may span more groups than the cache holds */
        for (int64_t t = b0; t < b1; t++) {
            int64_t g = (t / cols) * groups + (t % cols) / 128;
            bins[t - b0] = cl_bins_of(&cache, g, sb, lb, dt, mb, spec)[q[t] & 15];
        }
        if (cl_block_scalar(io, b0, b1, bins, mb, out)) return 1;
    }
    for (int i = 0; i < CL_LANES; i++)
        if (io->xs[i] != (1u << 16)) return 1;
    return io->wp != io->nw || io->ep != io->ne || io->sx != (1u << 16) || io->sp != io->sn;
}

static PyObject *py_decode(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[8];
    long long ne, dt, cols, groups, mb;
    if (!PyArg_ParseTuple(args, "OOOLOOOOLLLLO", &o[0], &o[1], &o[2], &ne, &o[3], &o[4], &o[5], &o[6], &dt, &cols,
                          &groups, &mb, &o[7]))
        return NULL;
    static const Py_ssize_t isz[8] = {2, 2, 8, 1, 2, 2, 8, 2};
    static const char *names[8] = {"words", "side", "dfreq", "q", "sb", "lb", "spec", "out"};
    Py_buffer v[8];
    int got = 0;
    for (; got < 8; got++)
        if (pb_getbuf(o[got], &v[got], isz[got], PB_INTS, -1, got == 7, names[got]) < 0) goto fail;
    int64_t n = v[3].len, nw = v[0].len / 2, ng = v[4].len / 2;
    if (dt < 0 || dt > 2 || (mb != 7 && mb != 10) || cols <= 0 || groups != (cols + 127) / 128 ||
        n % cols != 0 || ng != (n / cols) * groups || v[5].len != v[4].len || v[6].len != 6 * 8 ||
        v[7].len / 2 != n || v[2].len != CL_DEPTHS * 8 || ne < 0) {
        PyErr_SetString(PyExc_ValueError, "_cells.decode: inconsistent sizes");
        goto fail;
    }
    const int64_t *spec = (const int64_t *)v[6].buf, *dfreq = (const int64_t *)v[2].buf;
    int64_t dsum = 0;
    for (int i = 0; i < CL_DEPTHS; i++) {
        if (dfreq[i] < 0 || dfreq[i] > (1 << CL_DPB)) dsum = -1 << 20;
        dsum += dfreq[i];
    }
    int bad_tab = dsum != 0 && dsum != (1 << CL_DPB);
    for (int i = 0; i < 6; i++) bad_tab |= spec[i] < 0 || spec[i] > 65535;
    if (bad_tab) {
        PyErr_SetString(PyExc_ValueError, "_cells.decode: a frequency table out of range");
        goto fail;
    }
    int rc;
    cl_io io = {(const uint16_t *)v[0].buf, (const uint16_t *)v[1].buf, dfreq, nw, ne, 0, 0, v[1].len / 2, 0,
                {0}, 0, 0};
    Py_BEGIN_ALLOW_THREADS
    rc = n ? cl_decode(&io, (const uint8_t *)v[3].buf, (const uint16_t *)v[4].buf, (const uint16_t *)v[5].buf,
                       spec, (int)dt, n, cols, groups, (int32_t)mb, (uint16_t *)v[7].buf)
           : 0;
    Py_END_ALLOW_THREADS
    for (int i = 0; i < 8; i++) PyBuffer_Release(&v[i]);
    return PyLong_FromLong(rc);
fail:
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    return NULL;
}

static PyObject *py_isa(PyObject *self, PyObject *args) {
    (void)self, (void)args;
    return PyUnicode_FromString(use_avx2 ? "avx2" : "scalar");
}

static PyObject *py_set_isa(PyObject *self, PyObject *args) {
    (void)self;
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name) || bs_select_isa(name, CL_HAVE_AVX2, &use_avx2, "'scalar' or 'avx2'") < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode", py_decode, METH_VARARGS, "decode a .bsd 5.0 exact chunk's patterns (codecs/dual_cells.py)"},
    {"isa", py_isa, METH_NOARGS, "the instruction set the kernel runs with: 'avx2' or 'scalar'"},
    {"_set_isa", py_set_isa, METH_VARARGS, "tests only: force 'scalar' or 'avx2' (if supported)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cells", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__cells(void) {
#if CL_HAVE_AVX2
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2");
    cl_lut_init();
#endif
    return PyModule_Create(&module);
}
