/* The Python-facing functions of _kernels.c: parse, check (checks.h), release the GIL, run. */
#ifndef BIGSMALL_NATIVE_GLUE_H
#define BIGSMALL_NATIVE_GLUE_H

/* Chunk i of a strided call: units [b, e) of out (numba: b = min(n, i * per), e = min(n, b +
 * per)) and bytes [s, z) of blob (blob[offs[i]:offs[i + 1]], Python slice bounds). */
BS_INLINE void bs_chunk_bounds(i64 i, i64 n, i64 per, const i64 *offs, i64 bl, i64 *b, i64 *e,
                               i64 *s, i64 *z) {
    *b = (per > 0 && i > n / per) ? n : bs_min(n, i * per);
    *e = bs_min(n, *b + per);
    *s = offs[i];
    *z = offs[i + 1];
    bs_slice(bl, s, z);
}

/* Chunks first, first + step, ... of a tensor through one kernel (f8 with m8, or fp with
 * mp): -1, or the first chunk that does not decode (the numba decode_chunks loop). */
static i64 bs_run_strided(d8_fn f8, const d8_model *m8, dp_fn fp, const dp_model *mp,
                          uint8_t *out, int w, i64 n, i64 first, i64 step, i64 per,
                          const uint8_t *blob, i64 bl, const i64 *offs, i64 noffs) {
    for (i64 i = first; i < noffs - 1; i += step) {
        i64 b, e, s, z;
        bs_chunk_bounds(i, n, per, offs, bl, &b, &e, &s, &z);
        int rc = f8 ? f8(m8, out + b * w, e - b, b, blob + s, z - s)
                    : fp(mp, out + b * w, e - b, b, blob + s, z - s);
        if (rc != 0) return i;
    }
    return -1;
}

static int bs_check_strided(i64 first, i64 step, i64 per) {
    if (first < 0 || step < 1 || per < 0) return bs_fail("first >= 0, step >= 1, per >= 0");
    return 0;
}

#define BS_RELEASE_ALL(arr, cnt)                                                             \
    for (int r_ = 0; r_ < (cnt); r_++) PyBuffer_Release(&(arr)[r_])

/* buffers: 0 out, 1 rowctx, 2 colctx, 3 tsym, 4 tfc, 5 msym, 6 mfc, 7 rshift, 8 buf/blob,
 * 9 offs. Returns the number acquired, or -1 after releasing them. */
static int d8_buffers(PyObject **o, Py_buffer *v, int nbuf) {
    static const Py_ssize_t isz[10] = {0, 8, 8, 1, 4, 1, 4, 8, 1, 8};
    static const int flat[10] = {1, 0, 0, 0, 0, 0, 0, 0, 1, 1};
    static const char *names[10] = {"out", "rowctx", "colctx", "tsym", "tfc", "msym", "mfc",
                                    "rshift", "buf", "offs"};
    for (int b = 0; b < nbuf; b++) {
        if (bs_getbuf(o[b], &v[b], isz[b], b == 0, flat[b], names[b]) < 0) {
            BS_RELEASE_ALL(v, b);
            return -1;
        }
    }
    return nbuf;
}

/* buffers: 0 out, 1 rowctx, 2 colsh, 3 t1, 4 dirs, 5 t2, 6 rshift, 7 buf/blob, 8 offs */
static int dp_buffers(PyObject **o, Py_buffer *v, int nbuf) {
    static const Py_ssize_t isz[9] = {0, 8, 8, 2, 8, 2, 8, 1, 8};
    static const int flat[9] = {1, 0, 0, 0, 0, 0, 0, 1, 1};
    static const char *names[9] = {"out", "rowctx", "colsh", "t1", "dirs", "t2", "rshift", "buf",
                                   "offs"};
    for (int b = 0; b < nbuf; b++) {
        if (bs_getbuf(o[b], &v[b], isz[b], b == 0, flat[b], names[b]) < 0) {
            BS_RELEASE_ALL(v, b);
            return -1;
        }
    }
    return nbuf;
}

static void d8_fill(d8_model *m, Py_buffer *v, long long ncols, long long pbits,
                    long long mpbits, long long p, long long eb, long long mb) {
    m->ncols = ncols;
    m->rowctx = v[1].buf;
    m->colctx = v[2].buf;
    m->tsym = v[3].buf;
    m->tfc = v[4].buf;
    m->msym = v[5].buf;
    m->mfc = v[6].buf;
    m->rshift = v[7].buf;
    m->pbits = pbits;
    m->mpbits = mpbits;
    m->p = p;
    m->eb = eb;
    m->mb = mb;
}

#define D8_CHECK(v, k0, n)                                                                   \
    d8_check(&m, (int)v[0].itemsize, k0, n, BS_N(v[1]), BS_N(v[2]), BS_N(v[7]), BS_N(v[3]), \
             BS_N(v[4]), BS_N(v[5]), BS_N(v[6]))

static PyObject *py_decode8_chunk(PyObject *self, PyObject *args) {
    PyObject *o[9];
    long long k0, ncols, pbits, mpbits, p, eb, mb;
    if (!PyArg_ParseTuple(args, "OLLOOOOLOOLLLLOO", &o[0], &k0, &ncols, &o[1], &o[2], &o[3],
                          &o[4], &pbits, &o[5], &o[6], &mpbits, &p, &eb, &mb, &o[7], &o[8]))
        return NULL;
    Py_buffer v[9];
    if (d8_buffers(o, v, 9) < 0) return NULL;
    d8_model m;
    d8_fill(&m, v, ncols, pbits, mpbits, p, eb, mb);
    int w = (int)v[0].itemsize;
    i64 n = BS_N(v[0]);
    if (D8_CHECK(v, k0, n) < 0) {
        BS_RELEASE_ALL(v, 9);
        return NULL;
    }
    d8_fn f = d8_pick(w, &m);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = f(&m, v[0].buf, n, k0, v[8].buf, BS_N(v[8]));
    Py_END_ALLOW_THREADS
    BS_RELEASE_ALL(v, 9);
    return PyLong_FromLong(rc);
}

static PyObject *py_decode8_chunks(PyObject *self, PyObject *args) {
    PyObject *o[10];
    long long first, step, per, ncols, pbits, mpbits, p, eb, mb;
    if (!PyArg_ParseTuple(args, "OLLLLOOOOLOOLLLLOOO", &o[0], &first, &step, &per, &ncols,
                          &o[1], &o[2], &o[3], &o[4], &pbits, &o[5], &o[6], &mpbits, &p, &eb,
                          &mb, &o[7], &o[8], &o[9]))
        return NULL;
    Py_buffer v[10];
    if (d8_buffers(o, v, 10) < 0) return NULL;
    d8_model m;
    d8_fill(&m, v, ncols, pbits, mpbits, p, eb, mb);
    int w = (int)v[0].itemsize;
    i64 n = BS_N(v[0]);
    if (bs_check_strided(first, step, per) < 0 || D8_CHECK(v, 0, n) < 0) {
        BS_RELEASE_ALL(v, 10);
        return NULL;
    }
    i64 bad;
    Py_BEGIN_ALLOW_THREADS
    bad = bs_run_strided(d8_pick(w, &m), &m, NULL, NULL, v[0].buf, w, n, first, step, per,
                         v[8].buf, BS_N(v[8]), v[9].buf, BS_N(v[9]));
    Py_END_ALLOW_THREADS
    BS_RELEASE_ALL(v, 10);
    return PyLong_FromLongLong(bad);
}

static void dp_fill(dp_model *m, Py_buffer *v, long long ncols, long long p, long long eb,
                    long long mb) {
    m->ncols = ncols;
    m->rowctx = v[1].buf;
    m->colsh = v[2].buf;
    m->t1 = v[3].buf;
    m->dirs = v[4].buf;
    m->t2 = v[5].buf;
    m->nt2 = BS_N(v[5]);
    m->rshift = v[6].buf;
    m->p = p;
    m->eb = eb;
    m->mb = mb;
    m->tf = NULL;
}

#define DP_CHECK(v, k0, n)                                                                   \
    dp_check(&m, (int)v[0].itemsize, k0, n, BS_N(v[1]), BS_N(v[2]), BS_N(v[6]), BS_N(v[3]), \
             BS_N(v[4]))

static PyObject *py_decodep_chunk(PyObject *self, PyObject *args) {
    PyObject *o[8];
    long long k0, ncols, p, eb, mb;
    if (!PyArg_ParseTuple(args, "OLLOOOOOLLLOO", &o[0], &k0, &ncols, &o[1], &o[2], &o[3], &o[4],
                          &o[5], &p, &eb, &mb, &o[6], &o[7]))
        return NULL;
    Py_buffer v[8];
    if (dp_buffers(o, v, 8) < 0) return NULL;
    dp_model m;
    dp_fill(&m, v, ncols, p, eb, mb);
    int w = (int)v[0].itemsize;
    i64 n = BS_N(v[0]);
    if (DP_CHECK(v, k0, n) < 0) {
        BS_RELEASE_ALL(v, 8);
        return NULL;
    }
    dp_fn f = dp_pick(w, p, eb, mb);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = f(&m, v[0].buf, n, k0, v[7].buf, BS_N(v[7]));
    Py_END_ALLOW_THREADS
    BS_RELEASE_ALL(v, 8);
    return PyLong_FromLong(rc);
}

static PyObject *py_decodep_chunks(PyObject *self, PyObject *args) {
    PyObject *o[9];
    long long first, step, per, ncols, p, eb, mb;
    if (!PyArg_ParseTuple(args, "OLLLLOOOOOLLLOOO", &o[0], &first, &step, &per, &ncols, &o[1],
                          &o[2], &o[3], &o[4], &o[5], &p, &eb, &mb, &o[6], &o[7], &o[8]))
        return NULL;
    Py_buffer v[9];
    if (dp_buffers(o, v, 9) < 0) return NULL;
    dp_model m;
    dp_fill(&m, v, ncols, p, eb, mb);
    int w = (int)v[0].itemsize;
    i64 n = BS_N(v[0]);
    if (bs_check_strided(first, step, per) < 0 || DP_CHECK(v, 0, n) < 0) {
        BS_RELEASE_ALL(v, 9);
        return NULL;
    }
    i64 bad, n1 = BS_N(v[3]), nch = BS_N(v[8]) - 1;
    /* the fast loop's table (decodep.h), where the units this call decodes outnumber its
     * entries enough to pay for it (a table per call: a tensor split between two threads
     * builds it once in each; 0.1-0.3 ns an entry against 1.7-2 ns a unit) */
    i64 units = nch > first ? ((nch - 1 - first) / step + 1) * per : 0;
    uint16_t *tf = NULL;
    if (DP_FAST_OK(w, p, eb, mb) && bs_min(units, n) >= 4 * n1)
        tf = malloc((size_t)(n1 > 0 ? n1 : 1) * sizeof(uint16_t)); /* NULL: the t1 loop */
    Py_BEGIN_ALLOW_THREADS
    if (tf != NULL) {
        dp_fast_table(m.t1, n1, p, DP_FAST_ESC(p, eb, mb), tf);
        m.tf = tf;
    }
    bad = bs_run_strided(NULL, NULL, dp_pick(w, p, eb, mb), &m, v[0].buf, w, n, first, step, per,
                         v[7].buf, BS_N(v[7]), v[8].buf, BS_N(v[8]));
    Py_END_ALLOW_THREADS
    free(tf);
    BS_RELEASE_ALL(v, 9);
    return PyLong_FromLongLong(bad);
}

/* encodep_chunk(values, k0, ncols, rowctx, colctx, tab, nsym, p, eb, mb, rshift) -> bytes:
 * _generated/encodep.encode_chunk's bytes (b"" where it returns an empty array). */
static PyObject *py_encodep_chunk(PyObject *self, PyObject *args) {
    PyObject *o[5];
    long long k0, ncols, nsym, p, eb, mb;
    if (!PyArg_ParseTuple(args, "OLLOOOLLLLO", &o[0], &k0, &ncols, &o[1], &o[2], &o[3], &nsym,
                          &p, &eb, &mb, &o[4]))
        return NULL;
    static const Py_ssize_t isz[5] = {0, 8, 8, 8, 8};
    static const char *names[5] = {"values", "rowctx", "colctx", "tab", "rshift"};
    Py_buffer v[5];
    for (int b = 0; b < 5; b++) {
        if (bs_getbuf(o[b], &v[b], isz[b], 0, b == 0, names[b]) < 0) {
            BS_RELEASE_ALL(v, b);
            return NULL;
        }
    }
    ep_model m = {ncols, nsym, v[1].buf, v[2].buf, v[4].buf, v[3].buf};
    int w = (int)v[0].itemsize;
    i64 n = BS_N(v[0]), rbits, maxr, maxc;
    PyObject *res = NULL;
    if (w == 8) {
        bs_fail("fieldp codes units of at most 4 bytes");
    } else if (bs_check_layout(w, p, eb, mb, &rbits) == 0 &&
               bs_check_rows_cols(k0, n, ncols, m.rowctx, BS_N(v[1]), m.colctx, BS_N(v[2]),
                                  m.rshift, BS_N(v[4]), rbits, &maxr, &maxc) == 0) {
        if (nsym < ((i64)1 << (eb + mb)) || nsym > BS_BIG ||
            (maxr + maxc + 1) * nsym > BS_N(v[3])) {
            bs_fail("code table too short for the contexts and symbols");
        } else if (n == 0) {
            res = PyBytes_FromStringAndSize(NULL, 4 * EP_LANES);
            if (res) memset(PyBytes_AS_STRING(res), 0, 4 * EP_LANES);
        } else {
            i64 cap = ep_cap(n, rbits), size[EP_LANES];
            uint8_t *tmp = malloc((size_t)(EP_LANES * cap));
            int rc = -1;
            if (!tmp) {
                PyErr_NoMemory();
            } else {
                Py_BEGIN_ALLOW_THREADS
                if (w == 1) rc = ep_kernel(&m, v[0].buf, 1, n, k0, p, eb, mb, tmp, cap, size);
                else if (w == 2) rc = ep_kernel(&m, v[0].buf, 2, n, k0, p, eb, mb, tmp, cap, size);
                else rc = ep_kernel(&m, v[0].buf, 4, n, k0, p, eb, mb, tmp, cap, size);
                Py_END_ALLOW_THREADS
                if (rc != 0) {
                    res = PyBytes_FromStringAndSize(NULL, 0);
                } else {
                    i64 total = 4 * EP_LANES;
                    for (int l = 0; l < EP_LANES; l++) total += size[l];
                    res = PyBytes_FromStringAndSize(NULL, total);
                    if (res) {
                        uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(res), *pos = dst + 16;
                        for (int l = 0; l < EP_LANES; l++) {
                            for (int z = 0; z < 4; z++) dst[4 * l + z] = (size[l] >> (8 * z)) & 0xFF;
                            memcpy(pos, tmp + l * cap, (size_t)size[l]);
                            pos += size[l];
                        }
                    }
                }
                free(tmp);
            }
        }
    }
    BS_RELEASE_ALL(v, 5);
    return res;
}

static PyObject *py_isa(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(use_avx2 ? "avx2" : "scalar");
}

static PyObject *py_set_isa(PyObject *self, PyObject *args) {
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    if (strcmp(name, "scalar") == 0) {
        use_avx2 = 0;
    } else if (strcmp(name, "avx2") == 0) {
#if BS_HAVE_AVX2
        if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2")))
#endif
        {
            PyErr_SetString(PyExc_ValueError, "this CPU (or build) has no AVX2 + BMI2 path");
            return NULL;
        }
        use_avx2 = 1;
    } else {
        PyErr_SetString(PyExc_ValueError, "isa: 'scalar' or 'avx2'");
        return NULL;
    }
    return py_isa(self, NULL);
}

#endif
