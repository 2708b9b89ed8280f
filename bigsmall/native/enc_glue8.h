/* Python-facing functions of _enc.c for the field8 chunk encoder (enc_rans8.h): parse, check
 * every table index the kernel will compute (touched rows, contexts, symbols, frequencies),
 * release the GIL, run. */
#ifndef BIGSMALL_NATIVE_ENC_GLUE8_H
#define BIGSMALL_NATIVE_ENC_GLUE8_H

#include "enc_rans4.h"

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

/* A C-contiguous uint64[rows, 4] encoder table (rans.encoder_table) with shifts below 64. */
static int e4_table(PyObject *o, Py_buffer *v, const char *name) {
    if (ek_getbuf(o, v, 8, EK_INT, 2, 0, name) < 0) return -1;
    const uint64_t *t = v->buf;
    int bad = v->shape[1] != 4;
    for (i64 r = 0; !bad && r < v->shape[0]; r++) bad = t[4 * r + 2] >= 64;
    if (bad) {
        PyBuffer_Release(v);
        return ek_fail("encode_chunk_fast: encoder tables are uint64[rows, 4] with shifts < 64");
    }
    return 0;
}

static PyObject *py_encode_chunk_fast(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[7];
    long long k0, ncols, alpha, malpha, p, eb, mb;
    if (!PyArg_ParseTuple(args, "OLLOOOLOOLLLLO", &o[0], &k0, &ncols, &o[1], &o[2], &o[3], &alpha,
                          &o[4], &o[5], &malpha, &p, &eb, &mb, &o[6]))
        return NULL;
    /* 0 values, 1 rowctx, 2 colctx, 3 etab, 4 mtab, 5 mrow, 6 rshift */
    static const char *names[7] = {"values", "rowctx", "colctx", "etab", "mtab", "mrow", "rshift"};
    Py_buffer b[7];
    int nb = 0;
    PyObject *res = NULL;
    int32_t *es = NULL, *ms = NULL, *cbase = NULL, *mbase = NULL;
    uint16_t *wbuf = NULL;
    uint8_t *raw = NULL;
    for (; nb < 7; nb++) {
        int rc = (nb == 3 || nb == 4) ? e4_table(o[nb], &b[nb], names[nb])
                                      : ek_getbuf(o[nb], &b[nb], nb == 0 ? 0 : 8, EK_INT, 1, 0, names[nb]);
        if (rc < 0) goto done;
    }
    i64 n = EK_NELEM(b[0]), w = b[0].itemsize, nmrow = EK_NELEM(b[5]), c = eb + mb;
    i64 rbits = 8 * w - c, mr = 0, mc = 0, mm = 0;
    int hasm = mb > 0;
    if (w > 4 || ek_signed(&b[0])) {
        PyErr_SetString(PyExc_TypeError, "values: unsigned integers of 1, 2 or 4 bytes");
        goto done;
    }
    if (k0 < 0 || ncols < 1 || eb < 0 || eb > 8 || mb < 0 || mb > 8 || p < 0 || p + c > 8 * w ||
        rbits > 32 || alpha < ((i64)1 << eb) || alpha > 65536 ||
        (hasm && (malpha < ((i64)1 << mb) || malpha > 65536 || nmrow < ((i64)1 << eb))) ||
        EK_NELEM(b[2]) < ncols || k0 > ((i64)1 << 50) || n > ((i64)1 << 40)) {
        ek_fail("encode_chunk_fast: parameters out of range");
        goto done;
    }
    if (n > 0) {
        i64 r0 = k0 / ncols, r1 = (k0 + n - 1) / ncols + 1;
        if (ek_range(&b[1], r0, r1, 0, (i64)1 << 20, &mr, "rowctx") < 0 ||
            ek_range(&b[2], 0, ncols, 0, (i64)1 << 20, &mc, "colctx") < 0 ||
            ek_range(&b[6], r0, r1, 0, rbits + 1, NULL, "rshift") < 0)
            goto done;
        if ((mr + mc) * alpha + alpha > b[3].shape[0]) {
            ek_fail("encode_chunk_fast: a context beyond the exponent table");
            goto done;
        }
        if (hasm) {
            if (ek_range(&b[5], 0, (i64)1 << eb, 0, (i64)1 << 20, &mm, "mrow") < 0) goto done;
            if (mm * malpha + malpha > b[4].shape[0]) {
                ek_fail("encode_chunk_fast: a mantissa row beyond the mantissa table");
                goto done;
            }
        }
    }
    i64 q = (n + 3) / 4, cap = 2 * q + 2, bl[4], ln[4], wps[4], rl[4], rcap = (q * rbits + 7) / 8 + 8;
    uint64_t xs[4];
    for (int L = 0; L < 4; L++) {
        bl[L] = bs_min(n, L * q);
        ln[L] = bs_min(n, (L + 1) * q) - bl[L];
    }
    es = malloc((size_t)(n + 1) * 4);
    ms = malloc((size_t)(n + 1) * 4);
    cbase = malloc((size_t)(ncols + 1) * 4);
    mbase = malloc((size_t)(nmrow + 1) * 4);
    wbuf = malloc((size_t)(4 * cap) * 2);
    raw = malloc((size_t)(4 * rcap));
    if (!es || !ms || !cbase || !mbase || !wbuf || !raw) {
        PyErr_NoMemory();
        goto done;
    }
    er_args a = {k0, ncols, alpha, malpha, p, eb, mb, 0, 0, b[1].buf, b[2].buf, b[5].buf,
                 NULL, NULL, NULL, NULL, NULL, NULL};
    Py_BEGIN_ALLOW_THREADS
    if (w == 1) e4_symbols_uint8_t(b[0].buf, n, &a, es, ms, cbase, mbase, nmrow);
    else if (w == 2) e4_symbols_uint16_t(b[0].buf, n, &a, es, ms, cbase, mbase, nmrow);
    else e4_symbols_uint32_t(b[0].buf, n, &a, es, ms, cbase, mbase, nmrow);
    e4_lanes(es, ms, hasm, b[3].buf, b[4].buf, bl, ln, wbuf, cap, xs, wps);
    for (int L = 0; L < 4; L++) {
        uint8_t *dst = raw + L * rcap;
        if (w == 1) rl[L] = er_raw_uint8_t(b[0].buf, k0, bl[L], bl[L] + ln[L], ncols, p, c, b[6].buf, dst);
        else if (w == 2) rl[L] = er_raw_uint16_t(b[0].buf, k0, bl[L], bl[L] + ln[L], ncols, p, c, b[6].buf, dst);
        else rl[L] = er_raw_uint32_t(b[0].buf, k0, bl[L], bl[L] + ln[L], ncols, p, c, b[6].buf, dst);
    }
    Py_END_ALLOW_THREADS
    i64 total = 32;
    for (int L = 0; L < 4; L++) total += 4 + 2 * (cap - wps[L]) + rl[L];
    void *od;
    res = ek_zeros(total, 1, &od);
    if (res == NULL) goto done;
    uint8_t *out = od;
    i64 pos = 32;
    for (int L = 0; L < 4; L++) {
        i64 size = 4 + 2 * (cap - wps[L]);
        for (int z = 0; z < 4; z++) {
            out[4 * L + z] = (uint8_t)((size >> (8 * z)) & 0xFF);
            out[4 * (L + 4) + z] = (uint8_t)((rl[L] >> (8 * z)) & 0xFF);
            out[pos + z] = (uint8_t)((xs[L] >> (8 * z)) & 0xFF);
        }
        pos += 4;
        for (i64 k = wps[L]; k < cap; k++) {
            uint16_t word = wbuf[L * cap + k];
            out[pos] = (uint8_t)(word & 0xFF);
            out[pos + 1] = (uint8_t)(word >> 8);
            pos += 2;
        }
    }
    for (int L = 0; L < 4; L++) {
        if (rl[L] > 0) memcpy(out + pos, raw + L * rcap, (size_t)rl[L]);
        pos += rl[L];
    }
done:
    free(es);
    free(ms);
    free(cbase);
    free(mbase);
    free(wbuf);
    free(raw);
    for (int k = 0; k < nb; k++) PyBuffer_Release(&b[k]);
    return res;
}

#define EK_RANS8_METHODS                                                                       \
    {"encode_values", py_encode_values, METH_VARARGS, "_generated/encode8.encode_values"},     \
    {"raw_lane_fast", py_raw_lane_fast, METH_VARARGS, "rans_encode._raw_lane_fast"},           \
    {"encode_chunk_fast", py_encode_chunk_fast, METH_VARARGS, "rans_encode.encode_chunk_fast"},

#endif
