/* bigsmall.native._enc: C ports of the numba kernels that are not decode loops (README.md in
 * this folder, section "_enc"): the table builders first, so that a decompress or load with
 * the C kernels compiles (and imports) no numba at all.
 *
 *   build_tables(raw, pos, nctx, eb, mb, pbits, mpbits, compact)
 *       -> (tsym, tfc, msym, mfc, pos, err)              (codecs/decode_tables.build_tables)
 *   decode_model(raw, pos, nctx, eb, mb, pbits, mpbits)
 *       -> (t1, dirs, t2, pos, err)                      (codecs/prefix.decode_model)
 *   and the encoder's counting and table kernels (enc_glue.h, enc_count.h): bit_field,
 *   field_counts, row_low_zeros, more_distinct_than, ctx_table (codecs/counting.py);
 *   quantize, pack, normalize_rows, joint_code, estimate_bits (codecs/enc_tables.py);
 *   encode_values, raw_lane_fast: field8's chunk encoder (enc_glue8.h, enc_rans8.h);
 *   hist, assign_rows, lloyd, code_lengths, entropy_rows, quantile_map, line_means: the
 *   clustering search (codecs/lloyd.py, codecs/numpy_exact.py; enc_glue_cluster.h);
 *   encodep_flat: fieldp's chunk encoder for one context and no row shifts (enc_encodep.h).
 *
 * Arrays come back as bytearrays (no numpy at build time); bigsmall/native/enc.py views them
 * with the kernel's dtypes and shapes, so a codec sees exactly what the numba kernel returns
 * (property_tests/test_native_encode.py). Every argument that sizes or indexes a table is
 * range-checked here (ValueError/TypeError) instead of trusted; the GIL is released while the
 * tables are built. Built with -fwrapv like _kernels.c: int64 arithmetic wraps as in numba.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "enc_common.h"
#include "enc_tables.h"
#include "enc_glue.h"
#include "enc_glue8.h"
#include "enc_glue_cluster.h"
#include "enc_encodep.h"

#define EK_MAX_CTX 4096 /* a field head has at most 256 contexts (kr * kc <= 256) */

/* The arguments every table builder shares, range-checked: raw (1-D bytes), pos, nctx, eb,
 * mb, pbits, mpbits. */
typedef struct {
    Py_buffer raw;
    long long pos, nctx, eb, mb, pbits, mpbits;
} ek_head;

static int ek_head_check(ek_head *h, PyObject *raw) {
    if (ek_getbuf(raw, &h->raw, 1, EK_INT, 1, 0, "raw") < 0) return -1;
    if (h->pos < 0 || h->nctx < 0 || h->nctx > EK_MAX_CTX || h->eb < 0 || h->eb > 8 ||
        h->mb < 0 || h->mb > 8 || h->pbits < 0 || h->pbits > 16 || h->mpbits < 0 ||
        h->mpbits > 16) {
        PyBuffer_Release(&h->raw);
        return ek_fail("table builder: pos >= 0, 0 <= nctx <= 4096, eb and mb in [0, 8], "
                       "pbits and mpbits in [0, 16]");
    }
    return 0;
}

/* fe and fm of read_freqs, zeroed (free both). */
static int ek_freq_arrays(const ek_head *h, i64 **fe, i64 **fm) {
    i64 alpha = (i64)1 << h->eb;
    *fe = calloc((size_t)(h->nctx * alpha + 1), sizeof(i64));
    *fm = calloc((size_t)((h->mb > 0 ? alpha : 0) * ((i64)1 << h->mb) + 1), sizeof(i64));
    if (*fe == NULL || *fm == NULL) {
        free(*fe);
        free(*fm);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static PyObject *py_build_tables(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *raw;
    ek_head h;
    int compact;
    if (!PyArg_ParseTuple(args, "OLLLLLLp", &raw, &h.pos, &h.nctx, &h.eb, &h.mb, &h.pbits,
                          &h.mpbits, &compact))
        return NULL;
    if (ek_head_check(&h, raw) < 0) return NULL;
    i64 alpha = (i64)1 << h.eb, er = compact ? h.eb : 8, mr = compact ? h.mb : 8;
    i64 mrows = h.mb > 0 ? alpha : 1;
    i64 ntsym = h.nctx << h.pbits, nmsym = mrows << h.mpbits;
    void *tsym, *tfc, *msym, *mfc;
    PyObject *o[4] = {ek_zeros(ntsym, 1, &tsym), ek_zeros(h.nctx << er, 4, &tfc),
                      ek_zeros(nmsym, 1, &msym), ek_zeros(mrows << mr, 4, &mfc)};
    i64 *fe = NULL, *fm = NULL, pos = h.pos, err = 0;
    if (!o[0] || !o[1] || !o[2] || !o[3] || ek_freq_arrays(&h, &fe, &fm) < 0) goto fail;
    Py_BEGIN_ALLOW_THREADS
    err = et_read_freqs(h.raw.buf, (i64)h.raw.len, &pos, h.nctx, h.eb, h.mb, h.pbits, h.mpbits, fe,
                        fm);
    if (err == 0) {
        for (i64 c = 0; c < h.nctx; c++)
            et_fill(fe + c * alpha, alpha, c, h.pbits, er, tsym, ntsym, tfc);
        i64 am = (i64)1 << h.mb;
        for (i64 e = 0; e < (h.mb > 0 ? alpha : 0); e++)
            et_fill(fm + e * am, am, e, h.mpbits, mr, msym, nmsym, mfc);
    }
    Py_END_ALLOW_THREADS
    free(fe);
    free(fm);
    PyBuffer_Release(&h.raw);
    return Py_BuildValue("NNNNLL", o[0], o[1], o[2], o[3], (long long)pos, (long long)err);
fail:
    for (int k = 0; k < 4; k++) Py_XDECREF(o[k]);
    PyBuffer_Release(&h.raw);
    return NULL;
}

static PyObject *py_decode_model(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *raw;
    ek_head h;
    if (!PyArg_ParseTuple(args, "OLLLLLL", &raw, &h.pos, &h.nctx, &h.eb, &h.mb, &h.pbits,
                          &h.mpbits))
        return NULL;
    if (ek_head_check(&h, raw) < 0) return NULL;
    i64 *fe = NULL, *fm = NULL, *sym = NULL, *w = NULL, pos = h.pos, err = 0, na = 0, nt2 = 1;
    i64 n1 = h.nctx << ET_L1;
    uint16_t *t2 = NULL;
    void *t1d, *dirsd, *t2d;
    int ok = 1, mem = 0;
    PyObject *t1 = ek_zeros(n1, 2, &t1d), *dirs = ek_zeros(n1, 8, &dirsd), *t2o = NULL;
    if (!t1 || !dirs || ek_freq_arrays(&h, &fe, &fm) < 0) goto fail;
    Py_BEGIN_ALLOW_THREADS
    err = et_read_freqs(h.raw.buf, (i64)h.raw.len, &pos, h.nctx, h.eb, h.mb, h.pbits, h.mpbits, fe,
                        fm);
    if (err == 0) {
        mem = et_joint_weights(fe, h.nctx, fm, h.eb, h.mb, &sym, &w, &na) ||
              et_build(sym, w, h.nctx, na, t1d, dirsd, &t2, &nt2, &ok);
    }
    Py_END_ALLOW_THREADS
    free(fe);
    free(fm);
    free(sym);
    free(w);
    PyBuffer_Release(&h.raw);
    if (mem) {
        free(t2);
        Py_DECREF(t1);
        Py_DECREF(dirs);
        return PyErr_NoMemory();
    }
    if (err != 0) { /* numba: zeros(1) uint16, zeros(1) int64, zeros(1) uint16 */
        Py_DECREF(t1);
        Py_DECREF(dirs);
        t1 = ek_zeros(1, 2, &t1d);
        dirs = ek_zeros(1, 8, &dirsd);
        nt2 = 1;
    }
    t2o = ek_zeros(nt2, 2, &t2d);
    if (!t1 || !dirs || !t2o) {
        free(t2);
        Py_XDECREF(t1);
        Py_XDECREF(dirs);
        Py_XDECREF(t2o);
        return NULL;
    }
    if (t2 != NULL) memcpy(t2d, t2, (size_t)nt2 * sizeof(uint16_t));
    free(t2);
    return Py_BuildValue("NNNLL", t1, dirs, t2o, (long long)pos,
                         (long long)(err != 0 ? err : (ok ? 0 : ET_NO_CODE)));
fail:
    Py_XDECREF(t1);
    Py_XDECREF(dirs);
    PyBuffer_Release(&h.raw);
    return NULL;
}

static PyMethodDef methods[] = {
    {"build_tables", py_build_tables, METH_VARARGS,
     "field/field8 decode tables (decode_tables.build_tables); bytearrays"},
    {"decode_model", py_decode_model, METH_VARARGS,
     "fieldp decode tables (prefix.decode_model); bytearrays"},
    EK_ENCODE_METHODS
    EK_RANS8_METHODS
    EK_CLUSTER_METHODS
    EK_ENCODEP_METHODS
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT, "bigsmall.native._enc",
    "C ports of bigsmall's numba table builders and encoder kernels (identical results).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__enc(void) { return PyModule_Create(&moddef); }
