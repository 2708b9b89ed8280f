/* Python-facing functions of _enc.c for the field8 chunk encoder (enc_rans8.h): parse, check
 * every table index the kernel will compute (touched rows, contexts, symbols, frequencies),
 * release the GIL, run. */
#ifndef BIGSMALL_NATIVE_ENC_GLUE8_H
#define BIGSMALL_NATIVE_ENC_GLUE8_H

#include "enc_rans8.h"

/* Every value of a 1-D int64 buffer in [lo, hi); its largest value in *mx. */
static int ek_range(const Py_buffer *v, i64 from, i64 to, i64 lo, i64 hi, i64 *mx,
                    const char *name) {
    const i64 *x = v->buf;
    i64 m = lo;
    if (from < 0 || to > EK_NELEM(*v)) {
        PyErr_Format(PyExc_ValueError, "%s: too short", name);
        return -1;
    }
    for (i64 i = from; i < to; i++) {
        if (x[i] < lo || x[i] >= hi) {
            PyErr_Format(PyExc_ValueError, "%s: a value outside [%lld, %lld)", name,
                         (long long)lo, (long long)hi);
            return -1;
        }
        if (x[i] > m) m = x[i];
    }
    if (mx) *mx = m;
    return 0;
}

static PyObject *py_encode_values(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[10];
    long long k0, ncols, alpha, malpha, p, eb, mb, pbits, mpbits;
    if (!PyArg_ParseTuple(args, "OLLOOLOLLLLOOOOLLOO", &o[0], &k0, &ncols, &o[1], &o[2], &alpha,
                          &o[3], &malpha, &p, &eb, &mb, &o[4], &o[5], &o[6], &o[7], &pbits,
                          &mpbits, &o[8], &o[9]))
        return NULL;
    /* 0 values, 1 rowctx, 2 colctx, 3 mrow, 4 efreq, 5 ecum, 6 mfreq, 7 mcum, 8 magic, 9 shift */
    static const char *names[10] = {"values", "rowctx", "colctx", "mrow", "efreq", "ecum",
                                    "mfreq", "mcum", "magic", "shift"};
    Py_buffer b[10];
    int nb = 0;
    PyObject *res = NULL, *oxs = NULL, *ow = NULL;
    i64 *cbase = NULL, *mbase = NULL;
    uint32_t *words = NULL;
    for (; nb < 10; nb++)
        if (ek_getbuf(o[nb], &b[nb], nb == 0 ? 0 : 8, EK_INT, 1, 0, names[nb]) < 0) goto done;
    i64 n = EK_NELEM(b[0]), w = b[0].itemsize, nmrow = EK_NELEM(b[3]), nmag = EK_NELEM(b[8]);
    int hasm = mb > 0;
    i64 mr = 0, mc = 0, mm = 0;
    if (w > 4 || ek_signed(&b[0])) {
        PyErr_SetString(PyExc_TypeError, "values: unsigned integers of 1, 2 or 4 bytes");
        goto done;
    }
    if (k0 < 0 || ncols < 1 || eb < 0 || eb > 8 || mb < 0 || mb > 8 || p < 0 ||
        p + mb + eb > 8 * w || alpha < ((i64)1 << eb) || alpha > 65536 ||
        (hasm && (malpha < ((i64)1 << mb) || malpha > 65536 || nmrow < ((i64)1 << eb))) ||
        pbits < 0 || mpbits < 0 || 31 - pbits - (hasm ? mpbits : 0) < 0 || nmag < 1 ||
        EK_NELEM(b[9]) != nmag || EK_NELEM(b[2]) < ncols || k0 > ((i64)1 << 50) || n > ((i64)1 << 40)) {
        ek_fail("encode_values: parameters out of range");
        goto done;
    }
    if (n > 0) {
        i64 r0 = k0 / ncols, r1 = (k0 + n - 1) / ncols + 1;
        if (ek_range(&b[1], r0, r1, 0, (i64)1 << 30, &mr, "rowctx") < 0 ||
            ek_range(&b[2], 0, ncols, 0, (i64)1 << 30, &mc, "colctx") < 0)
            goto done;
        if ((mr + mc) * alpha + alpha > EK_NELEM(b[4]) || EK_NELEM(b[5]) < EK_NELEM(b[4])) {
            ek_fail("encode_values: a context beyond the exponent tables");
            goto done;
        }
        if (ek_range(&b[4], 0, EK_NELEM(b[4]), 0, nmag, NULL, "efreq") < 0) goto done;
        if (hasm) {
            if (ek_range(&b[3], 0, (i64)1 << eb, 0, (i64)1 << 30, &mm, "mrow") < 0) goto done;
            if (mm * malpha + malpha > EK_NELEM(b[6]) || EK_NELEM(b[7]) < EK_NELEM(b[6])) {
                ek_fail("encode_values: a mantissa row beyond the mantissa tables");
                goto done;
            }
            if (ek_range(&b[6], 0, EK_NELEM(b[6]), 0, nmag, NULL, "mfreq") < 0) goto done;
        }
    }
    void *xsd, *wd;
    oxs = ek_zeros(8, 8, &xsd);
    words = malloc((size_t)(n + 1) * sizeof(uint32_t));
    cbase = malloc((size_t)(ncols + 1) * sizeof(i64));
    mbase = malloc((size_t)(nmrow + 1) * sizeof(i64));
    if (!oxs || !words || !cbase || !mbase) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    er_args a = {k0, ncols, alpha, malpha, p, eb, mb, pbits, mpbits, b[1].buf, b[2].buf, b[3].buf,
                 b[4].buf, b[5].buf, b[6].buf, b[7].buf, b[8].buf, b[9].buf};
    i64 nw = 0;
    Py_BEGIN_ALLOW_THREADS
    if (w == 1) nw = er_encode_uint8_t(&a, b[0].buf, n, xsd, words, cbase, mbase, nmrow);
    else if (w == 2) nw = er_encode_uint16_t(&a, b[0].buf, n, xsd, words, cbase, mbase, nmrow);
    else nw = er_encode_uint32_t(&a, b[0].buf, n, xsd, words, cbase, mbase, nmrow);
    Py_END_ALLOW_THREADS
    ow = ek_zeros(nw, 4, &wd);
    if (ow == NULL) goto done;
    if (nw > 0) memcpy(wd, words, (size_t)nw * 4);
    res = Py_BuildValue("OO", oxs, ow);
done:
    Py_XDECREF(oxs);
    Py_XDECREF(ow);
    free(words);
    free(cbase);
    free(mbase);
    for (int k = 0; k < nb; k++) PyBuffer_Release(&b[k]);
    return res;
}

static PyObject *py_raw_lane_fast(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ov, *ors;
    Py_buffer v, rs;
    long long k0, bb, e, ncols, p, c;
    if (!PyArg_ParseTuple(args, "OLLLLLLO", &ov, &k0, &bb, &e, &ncols, &p, &c, &ors)) return NULL;
    if (ek_getbuf(ov, &v, 0, EK_INT, 1, 0, "values") < 0) return NULL;
    if (ek_getbuf(ors, &rs, 8, EK_INT, 1, 0, "rshift") < 0) {
        PyBuffer_Release(&v);
        return NULL;
    }
    PyObject *r = NULL;
    i64 w = v.itemsize, rbits = 8 * w - c;
    if (w > 4 || ek_signed(&v) || k0 < 0 || bb < 0 || e < bb || e > EK_NELEM(v) || ncols < 1 ||
        p < 0 || c < 0 || rbits < 0 || rbits > 32 || p > rbits || k0 > ((i64)1 << 50)) {
        ek_fail("raw_lane_fast: unsigned values of <= 4 bytes, 0 <= b <= e <= n, c and p in range");
        goto done;
    }
    if (e > bb && ek_range(&rs, (k0 + bb) / ncols, (k0 + e - 1) / ncols + 1, 0, rbits + 1, NULL,
                           "rshift") < 0)
        goto done;
    void *raw;
    i64 cap = ((e - bb) * rbits + 7) / 8 + 8, used = 0;
    uint8_t *tmp = malloc((size_t)cap);
    if (tmp == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    if (w == 1) used = er_raw_uint8_t(v.buf, k0, bb, e, ncols, p, c, rs.buf, tmp);
    else if (w == 2) used = er_raw_uint16_t(v.buf, k0, bb, e, ncols, p, c, rs.buf, tmp);
    else used = er_raw_uint32_t(v.buf, k0, bb, e, ncols, p, c, rs.buf, tmp);
    Py_END_ALLOW_THREADS
    r = ek_zeros(used, 1, &raw);
    if (r != NULL && used > 0) memcpy(raw, tmp, (size_t)used);
    free(tmp);
done:
    PyBuffer_Release(&v);
    PyBuffer_Release(&rs);
    return r;
}

#define EK_RANS8_METHODS                                                                       \
    {"encode_values", py_encode_values, METH_VARARGS, "_generated/encode8.encode_values"},     \
    {"raw_lane_fast", py_raw_lane_fast, METH_VARARGS, "rans_encode._raw_lane_fast"},

#endif
