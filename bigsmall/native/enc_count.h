/* Counting kernels of the encoder: C ports of codecs/counting.py (_bit_field, _field_counts,
 * _row_low_zeros, _more_distinct_than, _ctx_table) and of codecs/enc_tables.py (_quantize,
 * _pack, _normalize_rows, joint_code, estimate_bits) with numpy_exact._pairwise_sum.
 *
 * numba compiles the counting kernels once per element type; here one loop per type comes
 * from EK_TYPED (the element read as numba reads it: np.int64(v) sign-extends a signed type
 * and zero-extends an unsigned one; a uint64 wraps to int64). Floating point: the same float64
 * operations in the same order as numba (no contraction: built with -ffp-contract=off), and
 * log2 is the C library's, which numba's np.log2 calls too.
 */
#ifndef BIGSMALL_NATIVE_ENC_COUNT_H
#define BIGSMALL_NATIVE_ENC_COUNT_H

#include <math.h>

#include "enc_tables.h"

/* Run BODY with T the element type of an integer buffer (itemsize isz, signed if sgn). */
#define EK_TYPED(isz, sgn, BODY)                                                              \
    do {                                                                                      \
        switch ((isz) * 2 + ((sgn) ? 1 : 0)) {                                                \
        case 2: { typedef uint8_t T; BODY; } break;                                           \
        case 3: { typedef int8_t T; BODY; } break;                                            \
        case 4: { typedef uint16_t T; BODY; } break;                                          \
        case 5: { typedef int16_t T; BODY; } break;                                           \
        case 8: { typedef uint32_t T; BODY; } break;                                          \
        case 9: { typedef int32_t T; BODY; } break;                                           \
        case 16: { typedef uint64_t T; BODY; } break;                                         \
        default: { typedef int64_t T; BODY; } break;                                          \
        }                                                                                     \
    } while (0)

/* counting._bit_field: out[t] = (int64(v[t]) >> shift) & (2**bits - 1), as uint16. */
static void ec_bit_field(const void *v, i64 n, int isz, int sgn, i64 shift, i64 bits,
                         uint16_t *out) {
    i64 mask = ((i64)1 << bits) - 1;
    EK_TYPED(isz, sgn, {
        const T *x = v;
        for (i64 t = 0; t < n; t++) out[t] = (uint16_t)(((i64)x[t] >> shift) & mask);
    });
}

/* counting._field_counts: bincount of the bit field (2**bits counters, zeroed here). */
static void ec_field_counts(const void *v, i64 n, int isz, int sgn, i64 shift, i64 bits,
                            i64 *out, i64 *acc4) {
    i64 size = (i64)1 << bits, mask = size - 1;
    memset(acc4, 0, (size_t)(4 * size) * sizeof(i64));
    EK_TYPED(isz, sgn, {
        const T *x = v;
        for (i64 t = 0; t < n; t++) acc4[(t & 3) * size + (((i64)x[t] >> shift) & mask)] += 1;
    });
    for (i64 s = 0; s < size; s++)
        out[s] = acc4[s] + acc4[size + s] + acc4[2 * size + s] + acc4[3 * size + s];
}

/* counting._row_low_zeros (with _row_or): per row, the trailing zero bits (<= p) of the OR
 * of v & (2**p - 1) over the row's ncols elements. */
static void ec_row_low_zeros(const void *v, int isz, int sgn, i64 p, i64 nrows, i64 ncols,
                             i64 *out) {
    uint64_t m = (uint64_t)(((i64)1 << p) - 1);
    EK_TYPED(isz, sgn, {
        const T *x = v;
        for (i64 i = 0; i < nrows; i++) {
            uint64_t a = 0;
            for (i64 j = i * ncols; j < (i + 1) * ncols; j++) a |= (uint64_t)x[j] & m;
            i64 z = 0;
            while (z < p && ((a >> z) & 1) == 0) z++;
            out[i] = z;
        }
    });
}

/* counting._more_distinct_than: an open-addressing set of size slots (power of two), scratch
 * slots/used zeroed here. */
static int ec_more_distinct_than(const void *v, i64 n, int isz, int sgn, i64 limit,
                                 uint64_t *slots, uint8_t *used, i64 size) {
    memset(slots, 0, (size_t)size * sizeof(uint64_t));
    memset(used, 0, (size_t)size);
    i64 mask = size - 1, cnt = 0;
    EK_TYPED(isz, sgn, {
        const T *x = v;
        for (i64 t = 0; t < n; t++) {
            uint64_t u = (uint64_t)x[t];
            i64 h = (i64)(((u * 0x9E3779B97F4A7C15ull) >> 40) & (uint64_t)mask);
            while (used[h] && slots[h] != u) h = (h + 1) & mask;
            if (!used[h]) {
                used[h] = 1;
                slots[h] = u;
                cnt++;
                if (cnt > limit) return 1;
            }
        }
    });
    return 0;
}

/* counting._ctx_table: counts per (context, symbol) of sym (nr x nc, C order) with row
 * clusters rows and column clusters cols (checked by the caller: every index in range).
 * Symbols are checked here, in the counting pass: *bad = 1 if one is negative or >= alpha
 * (counted as 0 meanwhile, so nothing is written out of range; the caller then drops the
 * result). Four sub-tables (columns j & 3; acc: 4 * nctx * alpha) rather than numba's two:
 * fewer increments of one counter in a row wait on each other (the exponents of a weight
 * matrix sit in a few bins); the same integer sums. */
static void ec_ctx_table(const void *sym, int isz, int sgn, i64 nr, i64 nc, const i64 *rows,
                         const i64 *cols, i64 kc, i64 nctx, i64 alpha, i64 *acc, i64 *cb,
                         i64 *out, int *bad) {
    i64 w = nctx * alpha;
    uint64_t ua = (uint64_t)alpha;
    int b = 0;
    memset(acc, 0, (size_t)(4 * w) * sizeof(i64));
    for (i64 j = 0; j < nc; j++) cb[j] = (cols[j] + (j & 3) * nctx) * alpha;
    EK_TYPED(isz, sgn, {
        const T *x = sym;
        for (i64 i = 0; i < nr; i++) {
            i64 base = rows[i] * kc * alpha;
            const T *row = x + i * nc;
            for (i64 j = 0; j < nc; j++) {
                uint64_t u = (uint64_t)(i64)row[j];
                int o = u >= ua;
                b |= o;
                acc[base + cb[j] + (o ? 0 : (i64)u)] += 1;
            }
        }
    });
    *bad = b;
    for (i64 c = 0; c < nctx; c++)
        for (i64 a = 0; a < alpha; a++) {
            i64 k = c * alpha + a;
            out[k] = (acc[k] + acc[w + k]) + (acc[2 * w + k] + acc[3 * w + k]);
        }
}

/* enc_tables._quantize: tables.quantize_counts of a count table (int64, nr x a). */
static void ec_quantize(const i64 *counts, i64 nr, i64 a, const double *logw, i64 n, double top,
                        uint8_t *out) {
    for (i64 r = 0; r < nr; r++) {
        double peak = 0.0;
        for (i64 s = 0; s < a; s++) {
            double c = (double)counts[r * a + s];
            peak = peak > c ? peak : c; /* numba's max(peak, c): the first when equal */
        }
        if (peak == 0.0) peak = 1.0;
        for (i64 s = 0; s < a; s++) {
            double c = (double)counts[r * a + s];
            out[r * a + s] = 0;
            if (c <= 0.0) continue;
            double v = log2(c / peak * top);
            i64 lo = 0, hi = n;
            while (lo < hi) {
                i64 mid = (lo + hi) >> 1;
                if (logw[mid] < v) lo = mid + 1;
                else hi = mid;
            }
            i64 idx = lo < n - 1 ? lo : n - 1;
            i64 lower = idx - 1 > 0 ? idx - 1 : 0;
            if (fabs(v - logw[lower]) < fabs(logw[idx] - v)) idx = lower;
            out[r * a + s] = (uint8_t)(idx + 1);
        }
    }
}

/* enc_tables._pack: tables.pack_rows of q (nr x w) into out (nr * (4 + w)); bytes used. */
static i64 ec_pack(const uint8_t *q, i64 nr, i64 w, uint8_t *out) {
    i64 p = 0;
    for (i64 r = 0; r < nr; r++) {
        const uint8_t *row = q + r * w;
        i64 lo = 0, hi = w;
        while (lo < w && row[lo] == 0) lo++;
        while (hi > lo && row[hi - 1] == 0) hi--;
        if (lo == w) lo = hi = 0;
        i64 span = hi - lo;
        out[p] = (uint8_t)(lo & 255);
        out[p + 1] = (uint8_t)(lo >> 8);
        out[p + 2] = (uint8_t)(span & 255);
        out[p + 3] = (uint8_t)(span >> 8);
        p += 4;
        for (i64 s = lo; s < hi; s++) out[p++] = row[s];
    }
    return p;
}

/* enc_tables._normalize_rows: out (nr x a, zeroed by the caller); the error code (rows
 * before a failing one are filled, as in numba). */
static i64 ec_normalize_rows(const uint8_t *q, i64 nr, i64 a, i64 bits, i64 *out) {
    i64 f[256] = {0}, w[256], rem[256], key[256];
    for (i64 r = 0; r < nr; r++) {
        i64 err = et_normalize(q + r * a, a, bits, f, w, rem, key);
        if (err != 0) return err;
        memcpy(out + r * a, f, (size_t)a * sizeof(i64));
    }
    return 0;
}

/* numpy_exact._block_sum / _pairwise_sum: numpy's pairwise summation order. */
static double ec_block_sum(const double *a, i64 n) {
    if (n < 8) {
        double res = -0.0;
        for (i64 i = 0; i < n; i++) res += a[i];
        return res;
    }
    double r0 = a[0], r1 = a[1], r2 = a[2], r3 = a[3], r4 = a[4], r5 = a[5], r6 = a[6], r7 = a[7];
    i64 i = 8, end = n - n % 8;
    for (; i < end; i += 8) {
        r0 += a[i];
        r1 += a[i + 1];
        r2 += a[i + 2];
        r3 += a[i + 3];
        r4 += a[i + 4];
        r5 += a[i + 5];
        r6 += a[i + 6];
        r7 += a[i + 7];
    }
    double res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7));
    for (; i < n; i++) res += a[i];
    return res;
}

static double ec_pairwise_sum(const double *a, i64 n) {
    if (n <= 128) return ec_block_sum(a, n);
    i64 n2 = n / 2;
    n2 -= n2 % 8;
    double left = ec_pairwise_sum(a, n2); /* depth <= log2(n): no stack concern */
    return left + ec_pairwise_sum(a + n2, n - n2);
}

/* enc_tables.estimate_bits: *covered, *bits (float64), *plen; terms: scratch of nctx * a. */
static void ec_estimate_bits(const i64 *counts, const i64 *w, const i64 *lens, i64 n, i64 pbits,
                             double *terms, int *covered, double *bits, i64 *plen) {
    i64 m = 0, pl = 0;
    *covered = 0;
    *bits = 0.0;
    *plen = 0;
    for (i64 t = 0; t < n; t++) {
        i64 k = counts[t];
        pl += k * lens[t];
        if (k > 0) {
            if (w[t] <= 0) return;
            terms[m++] = (double)k * ((double)pbits - log2((double)w[t]));
        }
    }
    *covered = 1;
    *bits = 0.0 + ec_pairwise_sum(terms, m);
    *plen = pl;
}

/* enc_tables.joint_code's scatter: the joint symbols' weights, lengths and codes (nctx x na)
 * into w, lens, codes (nctx x nsym, zeroed by the caller). */
static void ec_scatter(const i64 *sym, const i64 *sub, const i64 *lc, const i64 *cc, i64 nctx,
                       i64 na, i64 nsym, i64 *w, i64 *lens, i64 *codes) {
    for (i64 c = 0; c < nctx; c++) {
        for (i64 t = 0; t < na; t++) {
            w[c * nsym + sym[t]] = sub[c * na + t];
            lens[c * nsym + sym[t]] = lc[c * na + t];
            codes[c * nsym + sym[t]] = cc[c * na + t];
        }
    }
}

#endif
