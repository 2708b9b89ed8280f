/* The encoder's clustering search (codecs/context.py): C ports of codecs/lloyd.py (_hist,
 * _hist_move, _sum_rows, _argmin_cost / _argmin_cost_any / _best_cluster, _assign_rows,
 * _axis_hist, _reassign, _lloyd) and codecs/numpy_exact.py (_code_lengths_kernel,
 * _entropy_rows, _quantiles / _quantile_map with decode_tables.stable_order, _line_means).
 *
 * Why: these were the last numba kernels of a default-level compress (23 compiles, ~12 s on a
 * fresh install: benchmarks/first_run.py) and ~58 % of its CPU. They must choose exactly the
 * clusterings numba chooses (the golden vectors pin the encoder's bytes), so every float64 is
 * computed with the same operations in the same order: numpy's pairwise summation
 * (ec_pairwise_sum), negation as numba negates (cl_neg), products and sums rounded one at a time (built with -ffp-contract=off:
 * no fused multiply-add, as numba, which sets no fast-math flag), and the C library's log2,
 * which numba's np.log2 calls (llvm.log2 lowers to libm). Histograms stay float64 where numba
 * keeps them in float64 (_lloyd's, which its callers may hand in), so even non-integer inputs
 * give numba's results; property_tests/test_native_cluster.py compares them.
 *
 * Symbol matrices are uint8 or uint16 (context.choose's compact alphabet; enc.py hands other
 * types to numba); every symbol and cluster index is range-checked by the glue
 * (enc_glue_cluster.h) before a kernel runs, so the unchecked indexing here stays in bounds.
 */
#ifndef BIGSMALL_NATIVE_ENC_CLUSTER_H
#define BIGSMALL_NATIVE_ENC_CLUSTER_H

#include <math.h>
#include <stdlib.h>

#include "enc_count.h"

#define CL_KMAX 8 /* lloyd.KMAX: clusters the unrolled path handles (padded to 1, 2, 4 or 8) */

/* numba's float negation: ``-x`` is ``fsub -0.0, x`` there (numba's mathimpl.negate_real), which
 * keeps a NaN's sign (the hardware returns the NaN operand) where C's ``-x`` flips it. The
 * volatile keeps the compiler from folding the subtraction into a sign flip. */
static inline double cl_neg(double x) {
    volatile double z = -0.0;
    return z - x;
}

/* Run the body with T the element type of a uint8 (isz 1) or uint16 (isz 2) symbol matrix. */
#define CL_TYPED(isz, ...)                                                                     \
    do {                                                                                       \
        if ((isz) == 1) {                                                                      \
            typedef uint8_t T;                                                                 \
            __VA_ARGS__;                                                                       \
        } else {                                                                               \
            typedef uint16_t T;                                                                \
            __VA_ARGS__;                                                                       \
        }                                                                                      \
    } while (0)

/* The largest symbol of a matrix (-1 if empty): the glue checks it against alpha. */
static i64 cl_max_sym(const void *sym, int isz, i64 n) {
    i64 mx = -1;
    CL_TYPED(isz, {
        const T *s = sym;
        T m = 0;
        for (i64 t = 0; t < n; t++) m = s[t] > m ? s[t] : m;
        if (n > 0) mx = (i64)m;
    });
    return mx;
}

/* row[base[j] + s[j]] += 1 for j < nc, four at a time (independent counters: j % 4 picks the
 * sub-histogram, so the stores of one step never wait for each other). */
#define CL_COUNT_ROW(T)                                                                        \
    BS_INLINE void cl_count_row_##T(const T *s, i64 nc, const i64 *base, int32_t *row) {       \
        i64 j = 0;                                                                             \
        for (; j + 4 <= nc; j += 4) {                                                          \
            row[base[j] + s[j]] += 1;                                                          \
            row[base[j + 1] + s[j + 1]] += 1;                                                  \
            row[base[j + 2] + s[j + 2]] += 1;                                                  \
            row[base[j + 3] + s[j + 3]] += 1;                                                  \
        }                                                                                      \
        for (; j < nc; j++) row[base[j] + s[j]] += 1;                                          \
    }
CL_COUNT_ROW(uint8_t)
CL_COUNT_ROW(uint16_t)
#define cl_count_row(s, nc, base, row)                                                         \
    _Generic((s), const uint8_t *: cl_count_row_uint8_t, const uint16_t *: cl_count_row_uint16_t)( \
        s, nc, base, row)

/* lloyd._hist: out (nr x w, w = k_other * alpha) = per-row counts of other[j] * alpha +
 * sym[i, j], as float64; four int32 sub-histograms (one per j % 4) summed at the row's end.
 * row: 4 * w int32, zeroed (left zeroed); base: nc. */
static void cl_hist(const void *sym, int isz, i64 nr, i64 nc, const i64 *other, i64 alpha,
                    i64 w, double *out, int32_t *row, i64 *base) {
    for (i64 j = 0; j < nc; j++) base[j] = other[j] * alpha + (j & 3) * w;
    CL_TYPED(isz, {
        for (i64 i = 0; i < nr; i++) {
            cl_count_row((const T *)sym + i * nc, nc, base, row);
            double *o = out + i * w;
            for (i64 b = 0; b < w; b++) /* counts <= nc < 2**31: int32 sums are exact */
                o[b] = (double)(row[b] + row[w + b] + row[2 * w + b] + row[3 * w + b]);
            memset(row, 0, (size_t)(4 * w) * sizeof(int32_t));
        }
    });
}

/* lloyd._hist_move: the lines moved[0..nm) of the other axis go from cluster old[j] to
 * new[j]: per row, subtract 1.0 from the old bin and add 1.0 to the new one (in that order). */
static void cl_hist_move(const void *sym, int isz, i64 nr, i64 nc, double *hist, i64 w,
                         const i64 *moved, i64 nm, const i64 *old, const i64 *new_, i64 alpha) {
    CL_TYPED(isz, {
        for (i64 i = 0; i < nr; i++) {
            const T *s = (const T *)sym + i * nc;
            double *h = hist + i * w;
            for (i64 t = 0; t < nm; t++) {
                i64 j = moved[t], v = (i64)s[j];
                h[old[j] * alpha + v] -= 1.0;
                h[new_[j] * alpha + v] += 1.0;
            }
        }
    });
}

/* numpy_exact._code_lengths_kernel on a float64 table (k x w): out = -log2(t / s) with
 * t = table + 0.05 and s = 0.0 + t's pairwise sum. t: w scratch. -1 where numba raises
 * ZeroDivisionError (s == 0.0 with w > 0: only a table of -0.05s can do it). */
static int cl_code_lengths(const double *table, i64 k, i64 w, double *t, double *out) {
    for (i64 r = 0; r < k; r++) {
        for (i64 b = 0; b < w; b++) t[b] = table[r * w + b] + 0.05;
        double s = 0.0 + ec_pairwise_sum(t, w);
        if (w > 0 && s == 0.0) return -1;
        for (i64 b = 0; b < w; b++) out[r * w + b] = cl_neg(log2(t[b] / s));
    }
    return 0;
}

/* Clusters padded for the unrolled sums: 1, 2, 4 or 8 (k > 8: k itself). */
static i64 cl_pad(i64 k) {
    return k <= 1 ? 1 : k <= 2 ? 2 : k <= 4 ? 4 : k <= CL_KMAX ? CL_KMAX : k;
}

/* lloyd._padded_lengths: lt[b * kp + c] = lengths[c, b], zeros for c >= k. */
static void cl_transpose(const double *lengths, i64 k, i64 w, i64 kp, double *lt) {
    memset(lt, 0, (size_t)(w * kp) * sizeof(double));
    for (i64 c = 0; c < k; c++)
        for (i64 b = 0; b < w; b++) lt[b * kp + c] = lengths[c * w + b];
}

/* lloyd._best_cluster (and _argmin_cost_any's inner loop, which adds the same terms in the same
 * order): the first c < k minimising sum_t val[t] * lt[idx[t], c], each sum from 0.0 in
 * ascending t. KP is a constant in each caller below, so the sums stay in registers. */
BS_INLINE i64 cl_pick_kp(const i64 *idx, const double *val, i64 m, const double *lt, i64 k,
                         const i64 KP, double *s) {
    for (i64 c = 0; c < KP; c++) s[c] = 0.0;
    for (i64 t = 0; t < m; t++) {
        double v = val[t];
        const double *l = lt + idx[t] * KP;
        for (i64 c = 0; c < KP; c++) s[c] += v * l[c];
    }
    double best = INFINITY;
    i64 out = 0;
    for (i64 c = 0; c < k; c++) {
        if (s[c] < best) {
            best = s[c];
            out = c;
        }
    }
    return out;
}

/* cl_pick_kp for kp = cl_pad(k); s: kp scratch (used when kp > 8). */
static i64 cl_pick(const i64 *idx, const double *val, i64 m, const double *lt, i64 k, i64 kp,
                   double *s) {
    double r[CL_KMAX];
    switch (kp) {
    case 1: return cl_pick_kp(idx, val, m, lt, k, 1, r);
    case 2: return cl_pick_kp(idx, val, m, lt, k, 2, r);
    case 4: return cl_pick_kp(idx, val, m, lt, k, 4, r);
    case CL_KMAX: return cl_pick_kp(idx, val, m, lt, k, CL_KMAX, r);
    default: return cl_pick_kp(idx, val, m, lt, k, kp, s);
    }
}

/* Scratch of the cost passes: idx, val (w + 1), lt (w x kp), s (kp). */
typedef struct {
    i64 *idx;
    double *val, *lt, *s;
} cl_cost_scratch;

static int cl_cost_alloc(cl_cost_scratch *c, i64 w, i64 kp) {
    c->idx = malloc((size_t)(w + 1) * sizeof(i64));
    c->val = malloc((size_t)(w + 1) * sizeof(double));
    c->lt = malloc((size_t)(w * kp + 1) * sizeof(double));
    c->s = malloc((size_t)(kp + 1) * sizeof(double));
    return c->idx && c->val && c->lt && c->s ? 0 : -1;
}

static void cl_cost_free(cl_cost_scratch *c) {
    free(c->idx);
    free(c->val);
    free(c->lt);
    free(c->s);
}

/* lloyd._argmin_cost (k <= 8) / _argmin_cost_any: every row of hist (nr x w) to its
 * cheapest cluster of lengths (k x w); the non-zero bins gathered first (NaN counts as
 * non-zero, as ``h != 0.0``). */
static void cl_argmin_cost(const double *hist, i64 nr, i64 w, const double *lengths, i64 k,
                           i64 *out, cl_cost_scratch *sc) {
    i64 kp = cl_pad(k);
    cl_transpose(lengths, k, w, kp, sc->lt);
    i64 *restrict idx = sc->idx;
    double *restrict val = sc->val;
    for (i64 i = 0; i < nr; i++) {
        const double *h = hist + i * w;
        i64 m = 0;
        for (i64 b = 0; b < w; b++) { /* branch-free: whether a bin is empty is a coin toss */
            idx[m] = b;
            val[m] = h[b];
            m += h[b] != 0.0;
        }
        out[i] = cl_pick(idx, val, m, sc->lt, k, kp, sc->s);
    }
}

/* lloyd._assign_rows: ``_argmin_cost(_hist(sym, other, k_other, alpha), lengths)`` a row at a
 * time (the same integer counts, the same sums). row: 4 * w int32 zeroed; tot: w; base: nc. */
static void cl_assign_rows(const void *sym, int isz, i64 nr, i64 nc, const i64 *other,
                           i64 alpha, i64 w, const double *lengths, i64 k, i64 *out,
                           int32_t *row, int32_t *tot, i64 *base, cl_cost_scratch *sc) {
    i64 kp = cl_pad(k);
    cl_transpose(lengths, k, w, kp, sc->lt);
    for (i64 j = 0; j < nc; j++) base[j] = other[j] * alpha + (j & 3) * w;
    i64 *restrict idx = sc->idx;
    double *restrict val = sc->val;
    CL_TYPED(isz, {
        for (i64 i = 0; i < nr; i++) {
            cl_count_row((const T *)sym + i * nc, nc, base, row);
            for (i64 b = 0; b < w; b++) tot[b] = row[b] + row[w + b] + row[2 * w + b] + row[3 * w + b];
            memset(row, 0, (size_t)(4 * w) * sizeof(int32_t));
            i64 m = 0;
            for (i64 b = 0; b < w; b++) {
                idx[m] = b;
                val[m] = (double)tot[b];
                m += tot[b] != 0;
            }
            out[i] = cl_pick(idx, val, m, sc->lt, k, kp, sc->s);
        }
    });
}

/* numpy_exact._entropy_rows: (sum over rows of -(0.0 + pairwise(c * log2(c / s)))) over each
 * row's positive counts c, s = 0.0 + pairwise(c); rows added from 0.0 in order) and the number
 * of positive entries. c, terms: w scratch. */
static void cl_entropy_rows(const i64 *table, i64 k, i64 w, double *c, double *terms,
                            double *total, i64 *present) {
    double tot = 0.0;
    i64 pres = 0;
    for (i64 r = 0; r < k; r++) {
        i64 m = 0;
        for (i64 b = 0; b < w; b++) {
            i64 v = table[r * w + b];
            if (v > 0) c[m++] = (double)v;
        }
        pres += m;
        if (m == 0) continue;
        double s = 0.0 + ec_pairwise_sum(c, m);
        for (i64 t = 0; t < m; t++) terms[t] = c[t] * log2(c[t] / s);
        tot += cl_neg(0.0 + ec_pairwise_sum(terms, m));
    }
    *total = tot;
    *present = pres;
}

/* decode_tables.stable_order(values, arange(n)) for float64 values: the same bottom-up merge
 * sort (so NaNs land where numba puts them). a, b: n scratch; returns the one holding it. */
static i64 *cl_stable_order(const double *w, i64 n, i64 *a, i64 *b) {
    for (i64 t = 0; t < n; t++) a[t] = t;
    for (i64 width = 1; width < n; width *= 2) {
        for (i64 lo = 0; lo < n;) {
            i64 mid = lo + width < n ? lo + width : n;
            i64 hi = lo + 2 * width < n ? lo + 2 * width : n;
            i64 x = lo, y = mid;
            for (i64 k = lo; k < hi; k++) {
                if (x < mid && (y >= hi || w[a[x]] <= w[a[y]]))
                    b[k] = a[x++];
                else
                    b[k] = a[y++];
            }
            lo = hi;
        }
        i64 *t = a;
        a = b;
        b = t;
    }
    return a;
}

/* numpy_exact._quantile_map: searchsorted(quantile(values, qs), values) (side "left").
 * n > 0 and no qs NaN (the glue checks). a, b: n scratch; srt: n; q: nq. */
static void cl_quantile_map(const double *values, i64 n, const double *qs, i64 nq, i64 *out,
                            i64 *a, i64 *b, double *srt, double *q) {
    const i64 *order = cl_stable_order(values, n, a, b);
    for (i64 t = 0; t < n; t++) srt[t] = values[order[t]];
    for (i64 t = 0; t < nq; t++) {
        double v = (double)(n - 1) * qs[t];
        double prev = floor(v);
        double gamma = v - prev, lo, hi;
        if (v >= (double)(n - 1)) {
            lo = hi = srt[n - 1];
        } else if (v < 0) {
            lo = hi = srt[0];
        } else {
            lo = srt[(i64)prev];
            hi = srt[(i64)prev + 1];
        }
        double d = hi - lo;
        q[t] = gamma >= 0.5 ? hi - d * (1.0 - gamma) : lo + d * gamma;
    }
    for (i64 i = 0; i < n; i++) {
        i64 c = 0;
        for (i64 t = 0; t < nq; t++) c += q[t] < values[i];
        out[i] = c;
    }
}

/* numpy_exact._line_means: sym.mean(axis) with exact int64 sums, one division each (nr and nc
 * > 0 on the reduced axis: the glue hands empty ones to numba). acc: the output's length. */
static void cl_line_means(const void *sym, int isz, i64 nr, i64 nc, int axis, i64 *acc,
                          double *out) {
    i64 nout = axis == 0 ? nc : nr;
    memset(acc, 0, (size_t)nout * sizeof(i64));
    CL_TYPED(isz, {
        const T *s = sym;
        for (i64 i = 0; i < nr; i++) {
            if (axis == 0) {
                for (i64 j = 0; j < nc; j++) acc[j] += s[i * nc + j];
            } else {
                i64 r = 0;
                for (i64 j = 0; j < nc; j++) r += s[i * nc + j];
                acc[i] += r;
            }
        }
    });
    double n = (double)(axis == 0 ? nr : nc);
    for (i64 t = 0; t < nout; t++) out[t] = (double)acc[t] / n;
}

#include "enc_lloyd.h"

#endif
