/* Python-facing functions of _enc.c for the encoder's counting and table kernels
 * (enc_count.h): parse, check every index a kernel computes from its arguments, release the
 * GIL, run. Results are bytearrays (shaped by bigsmall/native/enc.py). */
#ifndef BIGSMALL_NATIVE_ENC_GLUE_H
#define BIGSMALL_NATIVE_ENC_GLUE_H

#include "enc_count.h"

#define EK_NELEM(v) ((i64)((v).len / ((v).itemsize ? (v).itemsize : 1)))

/* values (1-D integers of any width), shift, bits: the bit-field kernels' arguments. */
static int ek_field_args(PyObject *args, Py_buffer *v, long long *shift, long long *bits,
                         long long maxbits) {
    PyObject *o;
    if (!PyArg_ParseTuple(args, "OLL", &o, shift, bits)) return -1;
    if (ek_getbuf(o, v, 0, EK_INT, 1, 0, "values") < 0) return -1;
    if (*shift < 0 || *shift > 63 || *bits < 0 || *bits > maxbits) {
        PyBuffer_Release(v);
        return ek_fail("bit field: shift in [0, 63] and bits in range");
    }
    return 0;
}

static PyObject *py_bit_field(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer v;
    long long shift, bits;
    if (ek_field_args(args, &v, &shift, &bits, 16) < 0) return NULL;
    void *out;
    i64 n = EK_NELEM(v);
    PyObject *r = ek_alloc(n, 2, &out); /* every element written: no zeroing pass */
    if (r != NULL) {
        int sg = ek_signed(&v);
        Py_BEGIN_ALLOW_THREADS
        ec_bit_field(v.buf, n, (int)v.itemsize, sg, shift, bits, out);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&v);
    return r;
}

static PyObject *py_field_counts(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer v;
    long long shift, bits;
    if (ek_field_args(args, &v, &shift, &bits, 24) < 0) return NULL;
    void *out;
    i64 size = (i64)1 << bits;
    PyObject *r = ek_zeros(size, 8, &out);
    i64 *acc = r ? malloc((size_t)(4 * size) * sizeof(i64)) : NULL;
    if (r != NULL && acc == NULL) {
        Py_CLEAR(r);
        PyErr_NoMemory();
    }
    if (r != NULL) {
        int sg = ek_signed(&v);
        Py_BEGIN_ALLOW_THREADS
        ec_field_counts(v.buf, EK_NELEM(v), (int)v.itemsize, sg, shift, bits, out, acc);
        Py_END_ALLOW_THREADS
    }
    free(acc);
    PyBuffer_Release(&v);
    return r;
}

static PyObject *py_row_low_zeros(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o;
    Py_buffer v;
    long long p, nrows, ncols;
    if (!PyArg_ParseTuple(args, "OLLL", &o, &p, &nrows, &ncols)) return NULL;
    if (ek_getbuf(o, &v, 0, EK_INT, 1, 0, "values") < 0) return NULL;
    if (p < 0 || p > 63 || nrows < 0 || ncols < 0 || (ncols > 0 && nrows > EK_NELEM(v) / ncols)) {
        PyBuffer_Release(&v);
        ek_fail("row_low_zeros: p in [0, 63], nrows x ncols within values");
        return NULL;
    }
    void *out;
    PyObject *r = ek_zeros(nrows, 8, &out);
    if (r != NULL) {
        int sg = ek_signed(&v);
        Py_BEGIN_ALLOW_THREADS
        ec_row_low_zeros(v.buf, (int)v.itemsize, sg, p, nrows, ncols, out);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&v);
    return r;
}

static PyObject *py_more_distinct_than(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o;
    Py_buffer v;
    long long limit;
    if (!PyArg_ParseTuple(args, "OL", &o, &limit)) return NULL;
    if (ek_getbuf(o, &v, 0, EK_INT, 1, 0, "values") < 0) return NULL;
    if (limit < 0 || limit > ((i64)1 << 24)) {
        PyBuffer_Release(&v);
        ek_fail("more_distinct_than: limit in [0, 2**24]");
        return NULL;
    }
    i64 size = 16;
    while (size < 4 * (limit + 1)) size *= 2;
    uint64_t *slots = malloc((size_t)size * sizeof(uint64_t));
    uint8_t *used = malloc((size_t)size);
    int res = 0;
    if (slots && used) {
        int sg = ek_signed(&v);
        Py_BEGIN_ALLOW_THREADS
        res = ec_more_distinct_than(v.buf, EK_NELEM(v), (int)v.itemsize, sg, limit, slots, used,
                                    size);
        Py_END_ALLOW_THREADS
    }
    int oom = !slots || !used;
    free(slots);
    free(used);
    PyBuffer_Release(&v);
    if (oom) return PyErr_NoMemory();
    return PyBool_FromLong(res);
}

/* A 1-D int64 buffer with every value in [0, bound). */
static int ek_index_buf(PyObject *o, Py_buffer *v, i64 bound, const char *name, i64 *maxv) {
    if (ek_getbuf(o, v, 8, EK_INT, 1, 0, name) < 0) return -1;
    const i64 *x = v->buf;
    i64 m = 0;
    for (i64 i = 0; i < EK_NELEM(*v); i++) {
        if (x[i] < 0 || x[i] >= bound) {
            PyBuffer_Release(v);
            PyErr_Format(PyExc_ValueError, "%s: a value outside [0, %lld)", name, (long long)bound);
            return -1;
        }
        if (x[i] > m) m = x[i];
    }
    *maxv = m;
    return 0;
}

static PyObject *py_ctx_table(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *os, *orow, *ocol;
    Py_buffer s, rw, cl;
    long long kc, nctx, alpha;
    if (!PyArg_ParseTuple(args, "OOOLLL", &os, &orow, &ocol, &kc, &nctx, &alpha)) return NULL;
    if (kc < 1 || nctx < 1 || alpha < 1 || nctx > 65536 || alpha > 65536) {
        ek_fail("ctx_table: kc, nctx, alpha >= 1 (nctx, alpha <= 65536)");
        return NULL;
    }
    if (ek_getbuf(os, &s, 0, EK_INT, 2, 0, "sym") < 0) return NULL;
    i64 nr = s.shape[0], nc = s.shape[1], mr = 0, mc = 0;
    if (ek_index_buf(orow, &rw, nctx, "rows", &mr) < 0) {
        PyBuffer_Release(&s);
        return NULL;
    }
    if (ek_index_buf(ocol, &cl, nctx, "cols", &mc) < 0) {
        PyBuffer_Release(&s);
        PyBuffer_Release(&rw);
        return NULL;
    }
    PyObject *r = NULL;
    i64 *acc = NULL, *cb = NULL;
    int sg = ek_signed(&s);
    /* every row cluster x kc + column cluster below nctx; symbols: checked while counting */
    int bad = EK_NELEM(rw) < nr || EK_NELEM(cl) < nc || (nr > 0 && nc > 0 && mr * kc + mc >= nctx);
    if (bad) {
        ek_fail("ctx_table: rows/cols shorter than sym, or a context or symbol out of range");
        goto done;
    }
    void *out;
    r = ek_zeros(nctx * alpha, 8, &out);
    acc = malloc((size_t)(4 * nctx * alpha) * sizeof(i64));
    cb = malloc((size_t)(nc + 1) * sizeof(i64));
    if (r == NULL || acc == NULL || cb == NULL) {
        Py_CLEAR(r);
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    ec_ctx_table(s.buf, (int)s.itemsize, sg, nr, nc, rw.buf, cl.buf, kc, nctx, alpha, acc, cb, out,
                 &bad);
    Py_END_ALLOW_THREADS
    if (bad) {
        Py_CLEAR(r);
        ek_fail("ctx_table: rows/cols shorter than sym, or a context or symbol out of range");
    }
done:
    free(acc);
    free(cb);
    PyBuffer_Release(&s);
    PyBuffer_Release(&rw);
    PyBuffer_Release(&cl);
    return r;
}

static PyObject *py_quantize(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oc, *ol;
    Py_buffer c, l;
    double top;
    if (!PyArg_ParseTuple(args, "OOd", &oc, &ol, &top)) return NULL;
    if (ek_getbuf(oc, &c, 8, EK_INT, 2, 0, "counts") < 0) return NULL;
    if (ek_getbuf(ol, &l, 8, EK_FLOAT, 1, 0, "logw") < 0) {
        PyBuffer_Release(&c);
        return NULL;
    }
    PyObject *r = NULL;
    if (EK_NELEM(l) < 1) {
        ek_fail("quantize: logw is empty");
    } else {
        void *out;
        r = ek_zeros(EK_NELEM(c), 1, &out);
        if (r != NULL) {
            Py_BEGIN_ALLOW_THREADS
            ec_quantize(c.buf, c.shape[0], c.shape[1], l.buf, EK_NELEM(l), top, out);
            Py_END_ALLOW_THREADS
        }
    }
    PyBuffer_Release(&c);
    PyBuffer_Release(&l);
    return r;
}

static PyObject *py_pack(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oq;
    Py_buffer q;
    if (!PyArg_ParseTuple(args, "O", &oq)) return NULL;
    if (ek_getbuf(oq, &q, 1, EK_INT, 2, 0, "q") < 0) return NULL;
    i64 nr = q.shape[0], w = q.shape[1], used = 0;
    void *out;
    PyObject *r = w > 65535 ? NULL : ek_zeros(nr * (4 + w), 1, &out);
    if (w > 65535) ek_fail("pack: rows of at most 65535 codes");
    if (r != NULL) used = ec_pack(q.buf, nr, w, out);
    PyBuffer_Release(&q);
    return r ? Py_BuildValue("NL", r, (long long)used) : NULL;
}

static PyObject *py_normalize_rows(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oq;
    Py_buffer q;
    long long bits;
    if (!PyArg_ParseTuple(args, "OL", &oq, &bits)) return NULL;
    if (ek_getbuf(oq, &q, 1, EK_INT, 2, 0, "q") < 0) return NULL;
    i64 nr = q.shape[0], a = q.shape[1], err = 0;
    if (a > 256 || bits < 0 || bits > 16) {
        PyBuffer_Release(&q);
        ek_fail("normalize_rows: at most 256 symbols, bits in [0, 16]");
        return NULL;
    }
    void *out;
    PyObject *r = ek_zeros(nr * a, 8, &out);
    if (r != NULL) {
        Py_BEGIN_ALLOW_THREADS
        err = ec_normalize_rows(q.buf, nr, a, bits, out);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&q);
    return r ? Py_BuildValue("NL", r, (long long)err) : NULL;
}

static PyObject *py_joint_code(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *of, *om, *orow;
    Py_buffer f, m, mr;
    long long eb, mb;
    if (!PyArg_ParseTuple(args, "OOOLL", &of, &om, &orow, &eb, &mb)) return NULL;
    if (eb < 0 || eb > 8 || mb < 0 || mb > 8) {
        ek_fail("joint_code: eb and mb in [0, 8]");
        return NULL;
    }
    if (ek_getbuf(of, &f, 8, EK_INT, 2, 0, "freq") < 0) return NULL;
    if (ek_getbuf(om, &m, 8, EK_INT, 2, 0, "mfreq") < 0) {
        PyBuffer_Release(&f);
        return NULL;
    }
    i64 nctx = f.shape[0], a = f.shape[1], ma = m.shape[1], mx = 0;
    if (ek_index_buf(orow, &mr, m.shape[0] > 0 ? m.shape[0] : 1, "mrow", &mx) < 0) {
        PyBuffer_Release(&f);
        PyBuffer_Release(&m);
        return NULL;
    }
    PyObject *res = NULL, *ow = NULL, *ol = NULL, *oc = NULL;
    i64 *fm = NULL, *sym = NULL, *sub = NULL, *lc = NULL, *cc = NULL, na = 0;
    int ok = 1, mem = 0;
    if (a != ((i64)1 << eb) || (mb > 0 && ma != ((i64)1 << mb)) || EK_NELEM(mr) < a ||
        (m.shape[0] == 0 && a > 0 && ma > 0) || nctx > 65536) {
        ek_fail("joint_code: freq needs 2**eb columns, mfreq 2**mb (mb > 0), mrow one per exponent");
        goto done;
    }
    i64 nsym = a << mb;
    void *wd, *ld, *cd;
    ow = ek_zeros(nctx * nsym, 8, &wd);
    ol = ek_zeros(nctx * nsym, 8, &ld);
    oc = ek_zeros(nctx * nsym, 8, &cd);
    fm = malloc((size_t)(a * ma + 1) * sizeof(i64));
    if (!ow || !ol || !oc || !fm) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const i64 *mf = m.buf, *rows = mr.buf;
    for (i64 e = 0; e < a; e++)
        for (i64 k = 0; k < ma; k++) fm[e * ma + k] = mf[rows[e] * ma + k];
    mem = et_joint_weights(f.buf, nctx, fm, eb, mb, &sym, &sub, &na);
    if (!mem) {
        lc = calloc((size_t)(nctx * na + 1), sizeof(i64));
        cc = calloc((size_t)(nctx * na + 1), sizeof(i64));
        mem = !lc || !cc || et_code_table(sub, nctx, na, lc, cc, &ok);
    }
    if (!mem) ec_scatter(sym, sub, lc, cc, nctx, na, nsym, wd, ld, cd);
    Py_END_ALLOW_THREADS
    if (mem) {
        PyErr_NoMemory();
        goto done;
    }
    res = Py_BuildValue("OOOO", ow, ol, oc, ok ? Py_True : Py_False);
done:
    Py_XDECREF(ow);
    Py_XDECREF(ol);
    Py_XDECREF(oc);
    free(fm);
    free(sym);
    free(sub);
    free(lc);
    free(cc);
    PyBuffer_Release(&f);
    PyBuffer_Release(&m);
    PyBuffer_Release(&mr);
    return res;
}

static PyObject *py_estimate_bits(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[3];
    Py_buffer b[3];
    static const char *names[3] = {"counts", "w", "lens"};
    long long pbits;
    if (!PyArg_ParseTuple(args, "OOOL", &o[0], &o[1], &o[2], &pbits)) return NULL;
    for (int k = 0; k < 3; k++) {
        if (ek_getbuf(o[k], &b[k], 8, EK_INT, 2, 0, names[k]) < 0) {
            for (int j = 0; j < k; j++) PyBuffer_Release(&b[j]);
            return NULL;
        }
    }
    PyObject *res = NULL;
    i64 n = EK_NELEM(b[0]);
    if (EK_NELEM(b[1]) != n || EK_NELEM(b[2]) != n || b[1].shape[1] != b[0].shape[1] ||
        b[2].shape[1] != b[0].shape[1]) {
        ek_fail("estimate_bits: counts, w and lens of one shape");
    } else {
        double *terms = malloc((size_t)(n + 1) * sizeof(double)), bits = 0.0;
        int covered = 0;
        i64 plen = 0;
        if (terms == NULL) {
            PyErr_NoMemory();
        } else {
            Py_BEGIN_ALLOW_THREADS
            ec_estimate_bits(b[0].buf, b[1].buf, b[2].buf, n, pbits, terms, &covered, &bits, &plen);
            Py_END_ALLOW_THREADS
            res = Py_BuildValue("OdL", covered ? Py_True : Py_False, bits, (long long)plen);
        }
        free(terms);
    }
    for (int k = 0; k < 3; k++) PyBuffer_Release(&b[k]);
    return res;
}

/* A 2-D matrix of unsigned integers (the symbol matrices of counting.py). */
static int ek_symbuf(PyObject *o, Py_buffer *v) {
    if (ek_getbuf(o, v, 0, EK_INT, 2, 0, "sym") < 0) return -1;
    if (ek_signed(v)) {
        PyBuffer_Release(v);
        PyErr_SetString(PyExc_TypeError, "sym: unsigned integers");
        return -1;
    }
    return 0;
}

/* The largest element of an unsigned matrix (0 if empty). */
static i64 ek_symmax(const Py_buffer *v) {
    i64 m = 0, n = EK_NELEM(*v);
    EK_TYPED((int)v->itemsize, 0, {
        const T *x = v->buf;
        for (i64 i = 0; i < n; i++) if ((i64)x[i] > m || (i64)x[i] < 0) m = (i64)x[i] < 0 ? INT64_MAX : (i64)x[i];
    });
    return m;
}

/* counting._symbol_counts: bincount of sym (alpha counters), an empty result if a symbol is
 * >= alpha; counting._line_counts: per row (axis 0) or column (1) counts. */
static PyObject *py_symbol_counts(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o;
    Py_buffer v;
    long long alpha;
    if (!PyArg_ParseTuple(args, "OL", &o, &alpha)) return NULL;
    if (ek_symbuf(o, &v) < 0) return NULL;
    void *out;
    PyObject *r = NULL;
    if (alpha < 0 || alpha > ((i64)1 << 24)) {
        ek_fail("symbol_counts: alpha in [0, 2**24]");
        PyBuffer_Release(&v);
        return NULL;
    }
    /* One pass: counts and the range check together (a symbol >= alpha is counted in the
     * spare slot 4 * alpha, whose lane aliasing does not matter: the result is then empty),
     * rows and columns walked without a division per element, the GIL released. */
    i64 *acc = calloc((size_t)(4 * alpha + 1), sizeof(i64));
    if (acc == NULL) {
        PyBuffer_Release(&v);
        return PyErr_NoMemory();
    }
    i64 nr = v.ndim > 0 ? v.shape[0] : 0, nc = v.ndim > 1 ? v.shape[1] : 0, bad = 0;
    uint64_t ua = (uint64_t)alpha;
    Py_BEGIN_ALLOW_THREADS
    EK_TYPED((int)v.itemsize, 0, {
        const T *x = v.buf;
        for (i64 i = 0; i < nr; i++) {
            const T *row = x + i * nc;
            for (i64 j = 0; j < nc; j++) {
                uint64_t s = (uint64_t)row[j];
                int out_ = s >= ua;
                bad |= out_;
                acc[out_ ? 4 * alpha : (j & 3) * alpha + (i64)s] += 1;
            }
        }
    });
    Py_END_ALLOW_THREADS
    if (bad && nr * nc > 0) r = ek_zeros(0, 8, &out);
    else if ((r = ek_zeros(alpha, 8, &out)) != NULL) {
        i64 *dst = out;
        for (i64 s = 0; s < alpha; s++)
            dst[s] = acc[s] + acc[alpha + s] + acc[2 * alpha + s] + acc[3 * alpha + s];
    }
    free(acc);
    PyBuffer_Release(&v);
    return r;
}

static PyObject *py_line_counts(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o;
    Py_buffer v;
    long long axis, alpha;
    if (!PyArg_ParseTuple(args, "OLL", &o, &axis, &alpha)) return NULL;
    if (ek_symbuf(o, &v) < 0) return NULL;
    i64 nr = v.shape[0], nc = v.shape[1], lines = axis == 0 ? nr : nc;
    void *out;
    PyObject *r = NULL;
    if (alpha < 0 || alpha > ((i64)1 << 24) || (EK_NELEM(v) > 0 && ek_symmax(&v) >= alpha))
        ek_fail("line_counts: every symbol below alpha");
    else if ((r = ek_zeros(lines * alpha, 8, &out)) != NULL) {
        i64 *dst = out;
        Py_BEGIN_ALLOW_THREADS
        EK_TYPED((int)v.itemsize, 0, {
            const T *x = v.buf;
            if (axis == 0) {
                for (i64 i = 0; i < nr; i++)
                    for (i64 j = 0; j < nc; j++) dst[i * alpha + (i64)x[i * nc + j]] += 1;
            } else {
                for (i64 i = 0; i < nr; i++)
                    for (i64 j = 0; j < nc; j++) dst[j * alpha + (i64)x[i * nc + j]] += 1;
            }
        });
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&v);
    return r;
}

/* counting._lookup: table[sym] (the table's element size; indices checked). */
static PyObject *py_lookup(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o, *ot;
    Py_buffer v, t;
    if (!PyArg_ParseTuple(args, "OO", &o, &ot)) return NULL;
    if (ek_symbuf(o, &v) < 0) return NULL;
    if (PyObject_GetBuffer(ot, &t, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND) < 0) {
        PyBuffer_Release(&v);
        return NULL;
    }
    i64 n = EK_NELEM(v), isz = t.itemsize, nt = isz ? t.len / isz : 0;
    void *out;
    PyObject *r = NULL;
    if (t.ndim != 1 || isz < 1) {
        ek_fail("lookup: a 1-D table with an entry for every symbol");
    } else if ((r = ek_alloc(n, isz, &out)) != NULL) {
        /* one pass, the range check in it (the result is dropped on a bad symbol), one
         * loop per table width, the GIL released */
        uint8_t *dst = out;
        const uint8_t *src = t.buf;
        uint64_t unt = (uint64_t)nt;
        int bad = 0;
        Py_BEGIN_ALLOW_THREADS
        EK_TYPED((int)v.itemsize, 0, {
            const T *x = v.buf;
            if (isz == 1) {
                for (i64 i = 0; i < n && !bad; i++) {
                    uint64_t s = (uint64_t)x[i];
                    if (s >= unt) bad = 1;
                    else dst[i] = src[s];
                }
            } else if (isz == 2) {
                uint16_t *d2 = (uint16_t *)dst;
                for (i64 i = 0; i < n && !bad; i++) {
                    uint64_t s = (uint64_t)x[i];
                    uint16_t e;
                    if (s >= unt) { bad = 1; break; }
                    memcpy(&e, src + 2 * s, 2);
                    memcpy(d2 + i, &e, 2);
                }
            } else {
                for (i64 i = 0; i < n; i++) {
                    uint64_t s = (uint64_t)x[i];
                    if (s >= unt) { bad = 1; break; }
                    memcpy(dst + i * isz, src + (i64)s * isz, (size_t)isz);
                }
            }
        });
        Py_END_ALLOW_THREADS
        if (bad) {
            Py_CLEAR(r);
            ek_fail("lookup: a 1-D table with an entry for every symbol");
        }
    }
    PyBuffer_Release(&v);
    PyBuffer_Release(&t);
    return r;
}

/* counting._sum_lines: out[labels[i]] += counts[i] (int64). */
static PyObject *py_sum_lines(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oc, *ol;
    Py_buffer c, l;
    long long k;
    if (!PyArg_ParseTuple(args, "OOL", &oc, &ol, &k)) return NULL;
    if (k < 0 || k > 65536) {
        ek_fail("sum_lines: k in [0, 65536]");
        return NULL;
    }
    if (ek_getbuf(oc, &c, 8, EK_INT, 2, 0, "counts") < 0) return NULL;
    i64 mx = 0;
    if (ek_index_buf(ol, &l, k > 0 ? k : 1, "labels", &mx) < 0) {
        PyBuffer_Release(&c);
        return NULL;
    }
    i64 nr = c.shape[0], w = c.shape[1];
    void *out;
    PyObject *r = NULL;
    if (EK_NELEM(l) < nr || (k == 0 && nr > 0)) ek_fail("sum_lines: a label per row, below k");
    else if ((r = ek_zeros(k * w, 8, &out)) != NULL) {
        i64 *dst = out;
        const i64 *src = c.buf, *lab = l.buf;
        for (i64 i = 0; i < nr; i++)
            for (i64 b = 0; b < w; b++) dst[lab[i] * w + b] += src[i * w + b];
    }
    PyBuffer_Release(&c);
    PyBuffer_Release(&l);
    return r;
}

#define EK_ENCODE_METHODS                                                                      \
    {"bit_field", py_bit_field, METH_VARARGS, "counting._bit_field"},                          \
    {"field_counts", py_field_counts, METH_VARARGS, "counting._field_counts"},                  \
    {"row_low_zeros", py_row_low_zeros, METH_VARARGS, "counting._row_low_zeros"},              \
    {"more_distinct_than", py_more_distinct_than, METH_VARARGS, "counting._more_distinct_than"}, \
    {"ctx_table", py_ctx_table, METH_VARARGS, "counting._ctx_table"},                          \
    {"symbol_counts", py_symbol_counts, METH_VARARGS, "counting._symbol_counts"},              \
    {"line_counts", py_line_counts, METH_VARARGS, "counting._line_counts"},                    \
    {"lookup", py_lookup, METH_VARARGS, "counting._lookup"},                                   \
    {"sum_lines", py_sum_lines, METH_VARARGS, "counting._sum_lines"},                          \
    {"quantize", py_quantize, METH_VARARGS, "enc_tables._quantize"},                           \
    {"pack", py_pack, METH_VARARGS, "enc_tables._pack"},                                       \
    {"normalize_rows", py_normalize_rows, METH_VARARGS, "enc_tables._normalize_rows"},         \
    {"joint_code", py_joint_code, METH_VARARGS, "enc_tables.joint_code"},                      \
    {"estimate_bits", py_estimate_bits, METH_VARARGS, "enc_tables.estimate_bits"},

#endif
