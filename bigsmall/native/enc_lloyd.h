/* lloyd._lloyd in C: the Lloyd iterations of one clustering candidate (rows to their cheapest
 * row cluster given the column map, then columns given the row map, until neither map changes
 * or ``iterations`` rounds), with _axis_hist's reuse of the last pass' histograms (unchanged
 * map: the same; fewer than half the lines moved: move their counts; one cluster: the shared
 * histograms) and _reassign (_sum_rows, _code_lengths_kernel, _argmin_cost). Included by
 * enc_cluster.h, whose kernels it calls; the glue is enc_glue_cluster.h.
 *
 * The histograms handed in (shared_rows, shared_cols, first_rows: kept by the caller's memo
 * for other candidates) are never written: a pass that changes them works on its own copy,
 * as numba's ``prev_h.copy()``.
 */
#ifndef BIGSMALL_NATIVE_ENC_LLOYD_H
#define BIGSMALL_NATIVE_ENC_LLOYD_H

/* One axis of the iteration: its lines' histograms (n x w, w = k_other * alpha) and state. */
typedef struct {
    const void *mat;    /* the lines: n x n_other symbols */
    i64 n, n_other, w;
    const double *h;    /* current histograms (own buffer, shared or first) */
    double *buf;        /* this axis' own histograms (n x w) */
    i64 *map;           /* the other axis' map the histograms are for (n_other) */
    int have, own;
} cl_axis;

/* Scratch of one _lloyd call, sized for the larger axis. */
typedef struct {
    int32_t *row;       /* 4 * wmax, zeroed */
    i64 *base, *moved;  /* max(nr, nc) */
    double *tab, *lens, *t; /* k x w tables and their code lengths; w */
    i64 *labels;        /* max(nr, nc): a pass' new map */
    cl_cost_scratch cost;
} cl_lloyd_scratch;

/* _axis_hist: bring ax's histograms to the other axis' map ``other`` (k_other clusters). */
static void cl_axis_hist(cl_axis *ax, int isz, const i64 *other, i64 k_other, i64 alpha,
                         const double *shared, cl_lloyd_scratch *sc) {
    size_t bytes = (size_t)(ax->n * ax->w) * sizeof(double);
    if (ax->have) {
        i64 moved = 0;
        for (i64 j = 0; j < ax->n_other; j++) moved += ax->map[j] != other[j];
        if (moved == 0) return;
        if (2 * moved < ax->n_other) {
            i64 m = 0;
            for (i64 j = 0; j < ax->n_other; j++)
                if (ax->map[j] != other[j]) sc->moved[m++] = j;
            if (!ax->own && bytes > 0) memcpy(ax->buf, ax->h, bytes);
            cl_hist_move(ax->mat, isz, ax->n, ax->n_other, ax->buf, ax->w, sc->moved, m, ax->map,
                         other, alpha);
            memcpy(ax->map, other, (size_t)ax->n_other * sizeof(i64));
            ax->h = ax->buf;
            ax->own = 1;
            return;
        }
    }
    memcpy(ax->map, other, (size_t)ax->n_other * sizeof(i64));
    if (k_other == 1) {
        ax->h = shared;
        ax->own = 0;
        return;
    }
    cl_hist(ax->mat, isz, ax->n, ax->n_other, other, alpha, ax->w, ax->buf, sc->row, sc->base);
    ax->h = ax->buf;
    ax->own = 1;
}

/* _reassign: labels (ax->n) to the cheapest of k clusters whose tables sum the lines'
 * histograms by their current labels. -1: ZeroDivisionError (cl_code_lengths). */
static int cl_reassign(const cl_axis *ax, i64 *labels, i64 k, cl_lloyd_scratch *sc) {
    i64 w = ax->w;
    memset(sc->tab, 0, (size_t)(k * w) * sizeof(double));
    for (i64 i = 0; i < ax->n; i++) { /* _sum_rows */
        double *o = sc->tab + labels[i] * w;
        const double *h = ax->h + i * w;
        for (i64 b = 0; b < w; b++) o[b] += h[b];
    }
    if (cl_code_lengths(sc->tab, k, w, sc->t, sc->lens) < 0) return -1;
    cl_argmin_cost(ax->h, ax->n, w, sc->lens, k, sc->labels, &sc->cost);
    memcpy(labels, sc->labels, (size_t)ax->n * sizeof(i64));
    return 0;
}

/* _lloyd: rows (nr) and cols (nc) updated in place. sym (nr x nc) and sym_t (nc x nr);
 * shared_rows (nr x alpha) / shared_cols (nc x alpha): NULL unless the glue found them
 * needed; first_rows (nr x kc * alpha) or NULL. 0, -1 (ZeroDivisionError), -2 (no memory). */
static int cl_lloyd(const void *sym, const void *sym_t, int isz, i64 nr, i64 nc, i64 alpha,
                    i64 kr, i64 kc, i64 *rows, i64 *cols, const double *shared_rows,
                    const double *shared_cols, const double *first_rows, i64 iterations) {
    i64 nmax = nr > nc ? nr : nc, w0 = kc * alpha, w1 = kr * alpha;
    i64 wmax = w0 > w1 ? w0 : w1, kmax = kr > kc ? kr : kc;
    cl_axis ax0 = {sym, nr, nc, w0, first_rows ? first_rows : shared_rows, NULL, NULL,
                   first_rows != NULL, 0};
    cl_axis ax1 = {sym_t, nc, nr, w1, shared_cols, NULL, NULL, 0, 0};
    cl_lloyd_scratch sc = {0};
    i64 *prev_rows = malloc((size_t)(nr + 1) * sizeof(i64));
    i64 *prev_cols = malloc((size_t)(nc + 1) * sizeof(i64));
    ax0.map = malloc((size_t)(nc + 1) * sizeof(i64));
    ax1.map = malloc((size_t)(nr + 1) * sizeof(i64));
    ax0.buf = kr > 1 ? malloc((size_t)(nr * w0 + 1) * sizeof(double)) : NULL;
    ax1.buf = kc > 1 ? malloc((size_t)(nc * w1 + 1) * sizeof(double)) : NULL;
    sc.row = calloc((size_t)(4 * wmax + 1), sizeof(int32_t));
    sc.base = malloc((size_t)(nmax + 1) * sizeof(i64));
    sc.moved = malloc((size_t)(nmax + 1) * sizeof(i64));
    sc.labels = malloc((size_t)(nmax + 1) * sizeof(i64));
    sc.tab = malloc((size_t)(kmax * wmax + 1) * sizeof(double));
    sc.lens = malloc((size_t)(kmax * wmax + 1) * sizeof(double));
    sc.t = malloc((size_t)(wmax + 1) * sizeof(double));
    int rc = -2;
    if (!prev_rows || !prev_cols || !ax0.map || !ax1.map || (kr > 1 && !ax0.buf) ||
        (kc > 1 && !ax1.buf) || !sc.row || !sc.base || !sc.moved || !sc.labels || !sc.tab ||
        !sc.lens || !sc.t || cl_cost_alloc(&sc.cost, wmax, cl_pad(kmax)) < 0)
        goto done;
    memcpy(ax0.map, cols, (size_t)nc * sizeof(i64));
    memcpy(ax1.map, rows, (size_t)nr * sizeof(i64));
    rc = 0;
    for (i64 it = 0; it < iterations; it++) {
        memcpy(prev_rows, rows, (size_t)nr * sizeof(i64));
        memcpy(prev_cols, cols, (size_t)nc * sizeof(i64));
        if (kr > 1) {
            cl_axis_hist(&ax0, isz, cols, kc, alpha, shared_rows, &sc);
            ax0.have = 1;
            if ((rc = cl_reassign(&ax0, rows, kr, &sc)) < 0) goto done;
        }
        if (kc > 1) {
            cl_axis_hist(&ax1, isz, rows, kr, alpha, shared_cols, &sc);
            ax1.have = 1;
            if ((rc = cl_reassign(&ax1, cols, kc, &sc)) < 0) goto done;
        }
        if (memcmp(prev_rows, rows, (size_t)nr * sizeof(i64)) == 0 &&
            memcmp(prev_cols, cols, (size_t)nc * sizeof(i64)) == 0)
            break;
    }
done:
    free(prev_rows);
    free(prev_cols);
    free(ax0.map);
    free(ax1.map);
    free(ax0.buf);
    free(ax1.buf);
    free(sc.row);
    free(sc.base);
    free(sc.moved);
    free(sc.labels);
    free(sc.tab);
    free(sc.lens);
    free(sc.t);
    cl_cost_free(&sc.cost);
    return rc;
}

#endif
