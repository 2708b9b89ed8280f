/* Argument checks of the Python-facing functions (_kernels.c): every index a kernel computes
 * from its arguments, as opposed to from the chunk bytes, is bounded here before it runs. */
#ifndef BIGSMALL_NATIVE_CHECKS_H
#define BIGSMALL_NATIVE_CHECKS_H

#define BS_BIG ((i64)1 << 40) /* contexts and row offsets beyond this cannot fit any table */

#include "pybuf.h"

/* A C-contiguous buffer of integers of itemsize ``isz`` (0: 1, 2, 4 or 8), 1-D if ``flat``. */
static int bs_getbuf(PyObject *o, Py_buffer *v, Py_ssize_t isz, int writable, int flat,
                     const char *name) {
    return pb_getbuf(o, v, isz, PB_INTS, flat ? 1 : -1, writable, name);
}

#define BS_N(v) ((i64)((v).len / (v).itemsize))

#define bs_fail pb_fail

/* Units [k0, k0 + n) of a matrix with ncols columns: every row they touch has a row context
 * in [0, 2^40) and a row shift in [0, rbits]; every column a column value in [0, 2^40).
 * Sets *maxr, *maxc to the largest row and column values touched. Cost: the rows and the
 * columns touched (at most n + 2 rows), never the whole matrix per chunk. */
static int bs_check_rows_cols(i64 k0, i64 n, i64 ncols, const i64 *rowctx, i64 nrow,
                              const i64 *colv, i64 ncolv, const i64 *rshift, i64 nrs,
                              i64 rbits, i64 *maxr, i64 *maxc) {
    *maxr = 0;
    *maxc = 0;
    if (ncols < 1) return bs_fail("ncols must be >= 1");
    if (k0 < 0 || n < 0 || k0 > ((i64)1 << 62) - n) return bs_fail("unit range out of bounds");
    if (n == 0) return 0;
    i64 r0 = k0 / ncols, r1 = (k0 + n - 1) / ncols;
    if (r1 >= nrow || r1 >= nrs) return bs_fail("row contexts or row shifts too short");
    if (ncolv < ncols) return bs_fail("column contexts too short");
    for (i64 r = r0; r <= r1; r++) {
        if (rowctx[r] < 0 || rowctx[r] >= BS_BIG) return bs_fail("row context out of range");
        if (rshift[r] < 0 || rshift[r] > rbits) return bs_fail("row shift out of range");
        if (rowctx[r] > *maxr) *maxr = rowctx[r];
    }
    i64 j0 = k0 - r0 * ncols;
    i64 a = n >= ncols ? 0 : j0;
    i64 z = n >= ncols ? ncols : bs_min(ncols, j0 + n);
    i64 wrap = n >= ncols ? 0 : bs_min(ncols, j0 + n - z); /* columns 0 .. wrap-1 as well */
    for (i64 j = a; j < z; j++) {
        if (colv[j] < 0 || colv[j] >= BS_BIG) return bs_fail("column context out of range");
        if (colv[j] > *maxc) *maxc = colv[j];
    }
    for (i64 j = 0; j < wrap; j++) {
        if (colv[j] < 0 || colv[j] >= BS_BIG) return bs_fail("column context out of range");
        if (colv[j] > *maxc) *maxc = colv[j];
    }
    return 0;
}

/* The layout fields shared by both kernels (the ranges codecs.field._parse_head enforces). */
static int bs_check_layout(int w, i64 p, i64 eb, i64 mb, i64 *rbits) {
    if (!(w == 1 || w == 2 || w == 4 || w == 8)) return bs_fail("output element size");
    if (eb < 1 || eb > 8 || mb < 0 || mb > 8 || p < 0) return bs_fail("layout out of range");
    *rbits = (i64)w * 8 - eb - mb;
    if (p > *rbits || *rbits > 56) return bs_fail("layout does not fit the element width");
    return 0;
}

static int d8_check(const d8_model *m, int w, i64 k0, i64 n, i64 nrow, i64 ncolv, i64 nrs,
                    i64 ntsym, i64 ntfc, i64 nmsym, i64 nmfc) {
    i64 rbits, maxr, maxc;
    if (bs_check_layout(w, m->p, m->eb, m->mb, &rbits) < 0) return -1;
    if (m->pbits < 1 || m->pbits > 16 || m->mpbits < 1 || m->mpbits > 16)
        return bs_fail("probability bits out of range");
    if (bs_check_rows_cols(k0, n, m->ncols, m->rowctx, nrow, m->colctx, ncolv, m->rshift, nrs,
                           rbits, &maxr, &maxc) < 0)
        return -1;
    i64 nctx = maxr + maxc + 1;
    if ((nctx << m->pbits) > ntsym || (nctx << m->eb) > ntfc)
        return bs_fail("exponent tables too short for the contexts");
    if (m->mb > 0 && (((i64)1 << (m->eb + m->mpbits)) > nmsym || ((i64)1 << (m->eb + m->mb)) > nmfc))
        return bs_fail("mantissa tables too short");
    return 0;
}

static int dp_check(const dp_model *m, int w, i64 k0, i64 n, i64 nrow, i64 ncolv, i64 nrs,
                    i64 nt1, i64 ndirs) {
    i64 rbits, maxr, maxc;
    if (bs_check_layout(w, m->p, m->eb, m->mb, &rbits) < 0) return -1;
    if (bs_check_rows_cols(k0, n, m->ncols, m->rowctx, nrow, m->colsh, ncolv, m->rshift, nrs,
                           rbits, &maxr, &maxc) < 0)
        return -1;
    /* the largest first-level index either loop forms: (rc << L1) + (colsh | 1023) */
    i64 top = (maxr << DP_L1) + maxc + (1 << DP_L1);
    if (top > nt1 || top > ndirs) return bs_fail("prefix tables too short for the contexts");
    return 0;
}

#endif
