/* Python-facing functions of _enc.c for the clustering search (enc_cluster.h, enc_lloyd.h):
 * parse, check every symbol, cluster index and shape a kernel indexes with (ValueError or
 * TypeError instead of numba's unchecked reads), release the GIL, run. Results are bytearrays
 * (shaped by bigsmall/native/enc.py). */
#ifndef BIGSMALL_NATIVE_ENC_GLUE_CLUSTER_H
#define BIGSMALL_NATIVE_ENC_GLUE_CLUSTER_H

#include "enc_cluster.h"

#define CL_MAX_ALPHA 65536    /* a uint16 symbol matrix's alphabet */
#define CL_MAX_K 4096         /* clusters per axis (context.choose tries at most 8) */
#define CL_MAX_W ((i64)1 << 24) /* histogram bins per line */

/* A 2-D C-contiguous uint8 or uint16 symbol matrix with every symbol below alpha. */
static int cl_sym_buf(PyObject *o, Py_buffer *v, i64 alpha, const char *name) {
    if (pb_getbuf(o, v, 0, "BH", 2, 0, name) < 0) return -1;
    if (v->itemsize > 2 || cl_max_sym(v->buf, (int)v->itemsize, EK_NELEM(*v)) >= alpha) {
        PyBuffer_Release(v);
        PyErr_Format(PyExc_ValueError, "%s: uint8/uint16 symbols below alpha", name);
        return -1;
    }
    return 0;
}

/* alpha and a cluster count k: their histogram width k * alpha, or -1 with ValueError. */
static i64 cl_width(long long alpha, long long k, const char *name) {
    if (alpha < 1 || alpha > CL_MAX_ALPHA || k < 1 || k > CL_MAX_K || k * alpha > CL_MAX_W) {
        PyErr_Format(PyExc_ValueError, "%s: alpha in [1, 65536], clusters in [1, 4096], "
                     "clusters x alpha <= 2**24", name);
        return -1;
    }
    return (i64)(k * alpha);
}

/* A float64 matrix (or none: shape[0] == 0, then buf is NULL) of exactly rows x cols. */
static int cl_f64_mat(PyObject *o, Py_buffer *v, i64 rows, i64 cols, const char *name) {
    if (pb_getbuf(o, v, 8, PB_DOUBLE, 2, 0, name) < 0) return -1;
    if (v->shape[0] == 0) return 0;
    if (v->shape[0] != rows || v->shape[1] != cols) {
        PyBuffer_Release(v);
        PyErr_Format(PyExc_ValueError, "%s: expected %lld x %lld (or empty)", name,
                     (long long)rows, (long long)cols);
        return -1;
    }
    return 0;
}

static PyObject *py_cl_hist(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *os, *oo;
    Py_buffer s, ot;
    long long k_other, alpha;
    i64 mx;
    if (!PyArg_ParseTuple(args, "OOLL", &os, &oo, &k_other, &alpha)) return NULL;
    i64 w = cl_width(alpha, k_other, "hist");
    if (w < 0 || cl_sym_buf(os, &s, alpha, "sym") < 0) return NULL;
    if (ek_index_buf(oo, &ot, k_other, "other", &mx) < 0) {
        PyBuffer_Release(&s);
        return NULL;
    }
    i64 nr = s.shape[0], nc = s.shape[1];
    PyObject *r = NULL;
    void *out = NULL;
    int32_t *row = NULL;
    i64 *base = NULL;
    if (EK_NELEM(ot) != nc) {
        ek_fail("hist: other needs one cluster per column");
        goto done;
    }
    r = ek_zeros(nr * w, 8, &out);
    row = calloc((size_t)(4 * w), sizeof(int32_t));
    base = malloc((size_t)(nc + 1) * sizeof(i64));
    if (r == NULL || row == NULL || base == NULL) {
        Py_CLEAR(r);
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    cl_hist(s.buf, (int)s.itemsize, nr, nc, ot.buf, alpha, w, out, row, base);
    Py_END_ALLOW_THREADS
done:
    free(row);
    free(base);
    PyBuffer_Release(&s);
    PyBuffer_Release(&ot);
    return r;
}

static PyObject *py_cl_assign_rows(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *os, *oo, *ol;
    Py_buffer s, ot, ln;
    long long k_other, alpha;
    i64 mx;
    if (!PyArg_ParseTuple(args, "OOLLO", &os, &oo, &k_other, &alpha, &ol)) return NULL;
    i64 w = cl_width(alpha, k_other, "assign_rows");
    if (w < 0 || cl_sym_buf(os, &s, alpha, "sym") < 0) return NULL;
    if (ek_index_buf(oo, &ot, k_other, "other", &mx) < 0) {
        PyBuffer_Release(&s);
        return NULL;
    }
    if (pb_getbuf(ol, &ln, 8, PB_DOUBLE, 2, 0, "lengths") < 0) {
        PyBuffer_Release(&s);
        PyBuffer_Release(&ot);
        return NULL;
    }
    i64 nr = s.shape[0], nc = s.shape[1], k = ln.shape[0];
    PyObject *r = NULL;
    void *out = NULL;
    int32_t *row = NULL, *tot = NULL;
    i64 *base = NULL;
    cl_cost_scratch sc = {0};
    if (EK_NELEM(ot) != nc || ln.shape[1] != w || k > CL_MAX_K) {
        ek_fail("assign_rows: other needs one cluster per column, lengths k x (k_other x alpha)");
        goto done;
    }
    r = ek_zeros(nr, 8, &out);
    row = calloc((size_t)(4 * w), sizeof(int32_t));
    tot = malloc((size_t)w * sizeof(int32_t));
    base = malloc((size_t)(nc + 1) * sizeof(i64));
    if (!r || !row || !tot || !base || cl_cost_alloc(&sc, w, cl_pad(k)) < 0) {
        Py_CLEAR(r);
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    cl_assign_rows(s.buf, (int)s.itemsize, nr, nc, ot.buf, alpha, w, ln.buf, k, out, row, tot,
                   base, &sc);
    Py_END_ALLOW_THREADS
done:
    free(row);
    free(tot);
    free(base);
    cl_cost_free(&sc);
    PyBuffer_Release(&s);
    PyBuffer_Release(&ot);
    PyBuffer_Release(&ln);
    return r;
}

/* lloyd(sym, sym_t, alpha, kr, kc, rows, cols, shared_rows, shared_cols, first_rows,
 * iterations) -> (rows, cols) */
static PyObject *py_cl_lloyd(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *os, *ost, *orw, *ocl, *osr, *osc, *ofr;
    Py_buffer s, st, rw, cl, sr, sc, fr;
    long long alpha, kr, kc, iterations;
    i64 mx;
    if (!PyArg_ParseTuple(args, "OOLLLOOOOOL", &os, &ost, &alpha, &kr, &kc, &orw, &ocl, &osr,
                          &osc, &ofr, &iterations))
        return NULL;
    i64 w0 = cl_width(alpha, kc, "lloyd"), w1 = w0 < 0 ? -1 : cl_width(alpha, kr, "lloyd");
    if (w1 < 0 || cl_sym_buf(os, &s, alpha, "sym") < 0) return NULL;
    i64 nr = s.shape[0], nc = s.shape[1];
    int held = 0; /* buffers acquired after s: 1 st, 2 rw, 3 cl, 4 sr, 5 sc, 6 fr */
    PyObject *ro = NULL, *co = NULL;
    if (cl_sym_buf(ost, &st, alpha, "sym_t") < 0) goto done;
    held = 1;
    if (ek_index_buf(orw, &rw, kr, "rows", &mx) < 0) goto done;
    held = 2;
    if (ek_index_buf(ocl, &cl, kc, "cols", &mx) < 0) goto done;
    held = 3;
    if (cl_f64_mat(osr, &sr, nr, alpha, "shared_rows") < 0) goto done;
    held = 4;
    if (cl_f64_mat(osc, &sc, nc, alpha, "shared_cols") < 0) goto done;
    held = 5;
    if (cl_f64_mat(ofr, &fr, nr, w0, "first_rows") < 0) goto done;
    held = 6;
    const double *first = fr.shape[0] > 0 ? fr.buf : NULL;
    const double *srows = sr.shape[0] > 0 ? sr.buf : NULL;
    const double *scols = sc.shape[0] > 0 ? sc.buf : NULL;
    if (st.itemsize != s.itemsize || st.shape[0] != nc || st.shape[1] != nr ||
        EK_NELEM(rw) != nr || EK_NELEM(cl) != nc || nr == 0 || nc == 0 || iterations < 0 ||
        (kr > 1 && kc == 1 && !first && !srows) || (kc > 1 && kr == 1 && !scols)) {
        ek_fail("lloyd: sym_t the transpose's shape and type, rows and cols one per line, "
                "non-empty, the one-cluster histograms that a pass needs");
        goto done;
    }
    void *rd = NULL, *cd = NULL;
    ro = ek_zeros(nr, 8, &rd);
    co = ek_zeros(nc, 8, &cd);
    if (!ro || !co) goto done;
    memcpy(rd, rw.buf, (size_t)nr * sizeof(i64));
    memcpy(cd, cl.buf, (size_t)nc * sizeof(i64));
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = cl_lloyd(s.buf, st.buf, (int)s.itemsize, nr, nc, alpha, kr, kc, rd, cd, srows, scols,
                  first, iterations);
    Py_END_ALLOW_THREADS
    if (rc == -1) PyErr_SetString(PyExc_ZeroDivisionError, "division by zero");
    if (rc == -2) PyErr_NoMemory();
    if (rc < 0) Py_CLEAR(ro);
done:
    PyBuffer_Release(&s);
    if (held >= 1) PyBuffer_Release(&st);
    if (held >= 2) PyBuffer_Release(&rw);
    if (held >= 3) PyBuffer_Release(&cl);
    if (held >= 4) PyBuffer_Release(&sr);
    if (held >= 5) PyBuffer_Release(&sc);
    if (held >= 6) PyBuffer_Release(&fr);
    if (ro == NULL || co == NULL) {
        Py_XDECREF(ro);
        Py_XDECREF(co);
        return NULL;
    }
    return Py_BuildValue("NN", ro, co);
}

/* code_lengths(table) for an int64 or float64 table (k x w) -> float64 k x w */
static PyObject *py_cl_code_lengths(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ot;
    Py_buffer t;
    if (!PyArg_ParseTuple(args, "O", &ot)) return NULL;
    if (pb_getbuf(ot, &t, 8, "qld", 2, 0, "table") < 0) return NULL;
    const char *f = t.format ? t.format : "d";
    int is_float = f[strlen(f) - 1] == 'd';
    i64 k = t.shape[0], w = t.shape[1];
    void *out = NULL;
    PyObject *r = ek_zeros(k * w, 8, &out);
    double *tab = is_float ? NULL : malloc((size_t)(k * w + 1) * sizeof(double));
    double *tmp = malloc((size_t)(w + 1) * sizeof(double));
    if (r == NULL || tmp == NULL || (!is_float && tab == NULL)) {
        Py_CLEAR(r);
        if (!PyErr_Occurred()) PyErr_NoMemory();
    } else {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        if (!is_float) /* np.float64(table[r, b]) */
            for (i64 i = 0; i < k * w; i++) tab[i] = (double)((const i64 *)t.buf)[i];
        rc = cl_code_lengths(is_float ? t.buf : tab, k, w, tmp, out);
        Py_END_ALLOW_THREADS
        if (rc < 0) {
            Py_CLEAR(r);
            PyErr_SetString(PyExc_ZeroDivisionError, "division by zero");
        }
    }
    free(tab);
    free(tmp);
    PyBuffer_Release(&t);
    return r;
}

/* entropy_rows(table int64 k x w) -> (float, int) */
static PyObject *py_cl_entropy_rows(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ot;
    Py_buffer t;
    if (!PyArg_ParseTuple(args, "O", &ot)) return NULL;
    if (pb_getbuf(ot, &t, 8, "ql", 2, 0, "table") < 0) return NULL;
    i64 k = t.shape[0], w = t.shape[1], present = 0;
    double total = 0.0;
    double *c = malloc((size_t)(w + 1) * sizeof(double));
    double *terms = malloc((size_t)(w + 1) * sizeof(double));
    if (c && terms) {
        Py_BEGIN_ALLOW_THREADS
        cl_entropy_rows(t.buf, k, w, c, terms, &total, &present);
        Py_END_ALLOW_THREADS
    }
    int oom = !c || !terms;
    free(c);
    free(terms);
    PyBuffer_Release(&t);
    if (oom) return PyErr_NoMemory();
    return Py_BuildValue("dL", total, (long long)present);
}

/* quantile_map(values float64[n > 0], qs float64[nq], no NaN) -> int64[n] */
static PyObject *py_cl_quantile_map(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ov, *oq;
    Py_buffer v, q;
    if (!PyArg_ParseTuple(args, "OO", &ov, &oq)) return NULL;
    if (pb_getbuf(ov, &v, 8, PB_DOUBLE, 1, 0, "values") < 0) return NULL;
    if (pb_getbuf(oq, &q, 8, PB_DOUBLE, 1, 0, "qs") < 0) {
        PyBuffer_Release(&v);
        return NULL;
    }
    i64 n = EK_NELEM(v), nq = EK_NELEM(q);
    const double *qs = q.buf;
    int bad = n == 0;
    for (i64 t = 0; t < nq; t++) bad |= isnan(qs[t]);
    PyObject *r = NULL;
    void *out = NULL;
    i64 *a = NULL, *b = NULL;
    double *srt = NULL, *qv = NULL;
    if (bad) {
        ek_fail("quantile_map: values non-empty, no quantile NaN");
        goto done;
    }
    r = ek_zeros(n, 8, &out);
    a = malloc((size_t)n * sizeof(i64));
    b = malloc((size_t)n * sizeof(i64));
    srt = malloc((size_t)n * sizeof(double));
    qv = malloc((size_t)(nq + 1) * sizeof(double));
    if (!r || !a || !b || !srt || !qv) {
        Py_CLEAR(r);
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    cl_quantile_map(v.buf, n, qs, nq, out, a, b, srt, qv);
    Py_END_ALLOW_THREADS
done:
    free(a);
    free(b);
    free(srt);
    free(qv);
    PyBuffer_Release(&v);
    PyBuffer_Release(&q);
    return r;
}

/* line_means(sym uint8/uint16 2-D, axis) -> float64 (the reduced axis non-empty) */
static PyObject *py_cl_line_means(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *os;
    Py_buffer s;
    int axis;
    if (!PyArg_ParseTuple(args, "Oi", &os, &axis)) return NULL;
    if (pb_getbuf(os, &s, 0, "BH", 2, 0, "sym") < 0) return NULL;
    i64 nr = s.shape[0], nc = s.shape[1], nout = axis == 0 ? nc : nr;
    PyObject *r = NULL;
    void *out = NULL;
    i64 *acc = NULL;
    if (s.itemsize > 2 || (axis != 0 && axis != 1) || (axis == 0 ? nr : nc) == 0) {
        ek_fail("line_means: uint8/uint16 symbols, axis 0 or 1, the reduced axis non-empty");
        goto done;
    }
    r = ek_zeros(nout, 8, &out);
    acc = malloc((size_t)(nout + 1) * sizeof(i64));
    if (!r || !acc) {
        Py_CLEAR(r);
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    cl_line_means(s.buf, (int)s.itemsize, nr, nc, axis, acc, out);
    Py_END_ALLOW_THREADS
done:
    free(acc);
    PyBuffer_Release(&s);
    return r;
}

#define EK_CLUSTER_METHODS                                                                     \
    {"hist", py_cl_hist, METH_VARARGS, "lloyd._hist"},                                         \
    {"assign_rows", py_cl_assign_rows, METH_VARARGS, "lloyd._assign_rows"},                    \
    {"lloyd", py_cl_lloyd, METH_VARARGS, "lloyd._lloyd"},                                      \
    {"code_lengths", py_cl_code_lengths, METH_VARARGS, "numpy_exact._code_lengths_kernel"},    \
    {"entropy_rows", py_cl_entropy_rows, METH_VARARGS, "numpy_exact._entropy_rows"},           \
    {"quantile_map", py_cl_quantile_map, METH_VARARGS, "numpy_exact._quantile_map"},           \
    {"line_means", py_cl_line_means, METH_VARARGS, "numpy_exact._line_means"},

#endif
