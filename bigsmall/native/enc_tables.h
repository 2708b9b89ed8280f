/* Table builders of the field-model codecs: C ports of codecs/decode_tables.py (read_freqs,
 * build_tables) and codecs/prefix.py (joint_weights, code_lengths, canonical_codes,
 * code_table, build, decode_model), statement for statement, int64 with -fwrapv.
 *
 * No Python here: plain C over caller-owned arrays (the glue in _enc.c checks the arguments
 * and allocates). Functions that allocate scratch return -1 when malloc fails.
 */
#ifndef BIGSMALL_NATIVE_ENC_TABLES_H
#define BIGSMALL_NATIVE_ENC_TABLES_H

#include <stdlib.h>

#include "common.h"

#define ET_TRUNCATED 1   /* decode_tables.TRUNCATED */
#define ET_OUT_OF_RANGE 2
#define ET_TOO_MANY 3
#define ET_NO_CODE 16    /* prefix.NO_CODE */
#define ET_LMAX 15       /* prefix.LMAX */
#define ET_L1 10         /* prefix.L1 */
#define ET_SYM_BITS 12
#define ET_EMPTY 14
#define ET_LONG 15

/* decode_tables._row: one pack_rows row into q (length >= alpha); *pos moves as numba's. */
static i64 et_row(const uint8_t *raw, i64 rl, i64 *pos, i64 alpha, uint8_t *q) {
    i64 p = *pos;
    if (p + 4 > rl) return ET_TRUNCATED;
    i64 lo = (i64)raw[p] | ((i64)raw[p + 1] << 8);
    i64 span = (i64)raw[p + 2] | ((i64)raw[p + 3] << 8);
    p += 4;
    *pos = p;
    if (lo + span > alpha || p + span > rl) return ET_OUT_OF_RANGE;
    memset(q, 0, (size_t)alpha);
    memcpy(q + lo, raw + p, (size_t)span);
    *pos = p + span;
    return 0;
}

static int et_cmp_i64(const void *a, const void *b) {
    i64 x = *(const i64 *)a, y = *(const i64 *)b;
    return (x > y) - (x < y);
}

/* decode_tables._normalize (spec §14.4); w, rem, key: scratch of >= 256 entries. The sort
 * keys are unique (symbol in the low 8 bits), so any sort gives numba's order; the symbol is
 * the key's low byte. */
static i64 et_normalize(const uint8_t *q, i64 alpha, i64 bits, i64 *f, i64 *w, i64 *rem,
                        i64 *key) {
    i64 total = (i64)1 << bits;
    i64 wsum = 0, npres = 0;
    for (i64 s = 0; s < alpha; s++) {
        w[s] = 0;
        rem[s] = 0;
    }
    for (i64 s = 0; s < alpha; s++) {
        f[s] = 0;
        if (q[s] > 0) {
            i64 c = (i64)q[s] - 1;
            w[s] = (16 + (c & 15)) << (c >> 4);
            wsum += w[s];
            npres++;
        }
    }
    if (npres == 0) return 0;
    if (npres > total) return ET_TOO_MANY;
    i64 fsum = 0;
    for (i64 s = 0; s < alpha; s++) {
        if (w[s] > 0) {
            i64 v = (w[s] * total) / wsum;
            f[s] = v > 1 ? v : 1;
            rem[s] = (w[s] * total) % wsum;
            fsum += f[s];
        }
    }
    i64 diff = total - fsum;
    if (diff > 0) {
        i64 k = 0;
        for (i64 s = 0; s < alpha; s++)
            if (w[s] > 0) key[k++] = (wsum - rem[s]) * 256 + s;
        qsort(key, (size_t)npres, sizeof(i64), et_cmp_i64);
        for (i64 j = 0; j < diff; j++) f[key[j % npres] & 255] += 1;
    }
    while (diff < 0) {
        i64 k = 0;
        for (i64 s = 0; s < alpha; s++)
            if (w[s] > 0) key[k++] = (total + 1 - f[s]) * 256 + s;
        qsort(key, (size_t)npres, sizeof(i64), et_cmp_i64);
        for (i64 j = 0; j < npres; j++) {
            i64 s = key[j] & 255;
            if (diff == 0) break;
            if (f[s] > 1) {
                f[s] -= 1;
                diff += 1;
            }
        }
    }
    return 0;
}

/* decode_tables.read_freqs into fe (nctx x 2**eb) and fm ((2**eb if mb else 0) x 2**mb),
 * both zeroed by the caller; returns the error code, *pos as numba's. */
static i64 et_read_freqs(const uint8_t *raw, i64 rl, i64 *pos, i64 nctx, i64 eb, i64 mb,
                         i64 pbits, i64 mpbits, i64 *fe, i64 *fm) {
    uint8_t q[256] = {0};
    i64 f[256] = {0}, w[256], rem[256], key[256];
    i64 alpha = (i64)1 << eb, am = (i64)1 << mb;
    i64 rows[2] = {nctx, mb > 0 ? alpha : 0}, widths[2] = {alpha, am}, bits[2] = {pbits, mpbits};
    i64 *dst[2] = {fe, fm};
    for (int t = 0; t < 2; t++) {
        for (i64 r = 0; r < rows[t]; r++) {
            i64 err = et_row(raw, rl, pos, widths[t], q);
            if (err == 0) err = et_normalize(q, widths[t], bits[t], f, w, rem, key);
            if (err != 0) return err;
            memcpy(dst[t] + r * widths[t], f, (size_t)widths[t] * sizeof(i64));
        }
    }
    return 0;
}

/* decode_tables._fill: slot -> symbol and symbol -> freq | cum << 16 of one row (numba's
 * slice assignment clips at the table's end: so does this). */
static void et_fill(const i64 *f, i64 alpha, i64 row, i64 bits, i64 rowbits, uint8_t *tsym,
                    i64 nsym, uint32_t *tfc) {
    i64 cum = 0, base = row << bits;
    for (i64 s = 0; s < alpha; s++) {
        tfc[(row << rowbits) + s] = (uint32_t)(f[s] | (cum << 16));
        if (f[s] > 0) {
            i64 a = base + cum, z = base + cum + f[s];
            bs_slice(nsym, &a, &z);
            if (z > a) memset(tsym + a, (int)(uint8_t)s, (size_t)(z - a));
        }
        cum += f[s];
    }
}

/* decode_tables.present_symbols + stable_order: the symbols s < a with w[s] > 0 sorted by
 * w, equal weights by symbol (numba's bottom-up merge sort, written out the same way). */
static int et_sorted_present(const i64 *w, i64 a, i64 n, i64 *out) {
    i64 *b = malloc((size_t)(n > 0 ? n : 1) * sizeof(i64));
    if (b == NULL) return -1;
    i64 k = 0;
    for (i64 s = 0; s < a; s++)
        if (w[s] > 0) out[k++] = s;
    i64 *x0 = out, *y0 = b;
    for (i64 width = 1; width < n; width *= 2) {
        for (i64 lo = 0; lo < n;) {
            i64 mid = bs_min(lo + width, n), hi = bs_min(lo + 2 * width, n);
            i64 x = lo, y = mid;
            for (i64 j = lo; j < hi; j++) {
                if (x < mid && (y >= hi || w[x0[x]] <= w[x0[y]])) y0[j] = x0[x++];
                else y0[j] = x0[y++];
            }
            lo = hi;
        }
        i64 *t = x0;
        x0 = y0;
        y0 = t;
    }
    if (x0 != out) memcpy(out, x0, (size_t)n * sizeof(i64));
    free(b);
    return 0;
}

/* prefix.code_lengths: package-merge lengths (<= lmax) into out (zeroed here). */
static int et_code_lengths(const i64 *w, i64 a, i64 lmax, i64 *out) {
    memset(out, 0, (size_t)a * sizeof(i64));
    i64 n = 0;
    for (i64 s = 0; s < a; s++)
        if (w[s] > 0) n++;
    if (n <= 1) return 0;
    i64 cap = 2 * n;
    i64 *leaf = malloc((size_t)n * sizeof(i64));
    i64 *lw = malloc((size_t)(n + 1) * sizeof(i64));
    i64 *prev = malloc((size_t)(cap + 2) * sizeof(i64));
    i64 *cur = malloc((size_t)(cap + 2) * sizeof(i64));
    uint8_t *isleaf = malloc((size_t)(lmax * cap));
    i64 sel[64] = {0};
    int rc = -1;
    if (!leaf || !lw || !prev || !cur || !isleaf || lmax > 64 || et_sorted_present(w, a, n, leaf))
        goto done;
    i64 big = (i64)1 << 61;
    for (i64 r = 0; r < n; r++) lw[r] = w[leaf[r]];
    lw[n] = big;
    for (i64 r = 0; r < n; r++) prev[r] = lw[r];
    prev[n] = big;
    prev[n + 1] = big;
    i64 size = n;
    for (i64 j = 1; j < lmax; j++) {
        i64 npk = size / 2, x = 0, y = 0, base = j * cap;
        for (i64 k = 0; k < n + npk; k++) {
            i64 pw = prev[2 * y] + prev[2 * y + 1];
            i64 lv = lw[x];
            if (lv <= pw) {
                cur[k] = lv;
                isleaf[base + k] = 1;
                x++;
            } else {
                cur[k] = pw;
                isleaf[base + k] = 0;
                y++;
            }
        }
        size = n + npk;
        cur[size] = big;
        cur[size + 1] = big;
        i64 *t = prev;
        prev = cur;
        cur = t;
    }
    i64 k = 2 * n - 2;
    for (i64 j = lmax - 1; j > 0; j--) {
        i64 base = j * cap, leaves = 0;
        k = k < 0 ? 0 : (k > cap ? cap : k); /* never moves on a valid merge: bounds only */
        for (i64 z = 0; z < k; z++) leaves += isleaf[base + z];
        sel[j] = leaves;
        k = 2 * (k - leaves);
    }
    sel[0] = k;
    for (i64 r = 0; r < n; r++) {
        i64 c = 0;
        for (i64 j = 0; j < lmax; j++)
            if (r < sel[j]) c++;
        out[leaf[r]] = c;
    }
    rc = 0;
done:
    free(leaf);
    free(lw);
    free(prev);
    free(cur);
    free(isleaf);
    return rc;
}

/* prefix.canonical_codes: bit-reversed canonical codes of lens (each in [0, LMAX]). */
static void et_canonical_codes(const i64 *lens, i64 a, i64 *codes) {
    i64 count[ET_LMAX + 2] = {0}, nxt[ET_LMAX + 2] = {0};
    for (i64 s = 0; s < a; s++) count[lens[s]] += 1;
    count[0] = 0;
    i64 code = 0;
    for (i64 ln = 1; ln <= ET_LMAX; ln++) {
        code = (code + count[ln - 1]) << 1;
        nxt[ln] = code;
    }
    for (i64 s = 0; s < a; s++) {
        i64 ln = lens[s];
        codes[s] = 0;
        if (ln == 0) continue;
        i64 c = nxt[ln];
        nxt[ln] += 1;
        i64 rev = 0;
        for (i64 z = 0; z < ln; z++) rev |= ((c >> z) & 1) << (ln - 1 - z);
        codes[s] = rev;
    }
}

/* prefix.joint_weights: *sym (na) and *w (nctx x na), malloc'ed here (free them). */
static int et_joint_weights(const i64 *fe, i64 nctx, const i64 *fm, i64 eb, i64 mb, i64 **sym,
                            i64 **w, i64 *na_out) {
    i64 ae = (i64)1 << eb, am = (i64)1 << mb, na = 0;
    uint8_t used[256] = {0};
    for (i64 c = 0; c < nctx; c++)
        for (i64 e = 0; e < ae; e++)
            if (fe[c * ae + e]) used[e] = 1;
    for (i64 e = 0; e < ae; e++) {
        if (!used[e]) continue;
        if (mb == 0) na++;
        else
            for (i64 m = 0; m < am; m++)
                if (fm[e * am + m]) na++;
    }
    i64 *sy = malloc((size_t)(na + 1) * sizeof(i64)), *se = malloc((size_t)(na + 1) * sizeof(i64));
    i64 *sm = malloc((size_t)(na + 1) * sizeof(i64));
    i64 *ww = malloc((size_t)(nctx * na + 1) * sizeof(i64));
    if (!sy || !se || !sm || !ww) {
        free(sy);
        free(se);
        free(sm);
        free(ww);
        return -1;
    }
    i64 x = 0;
    for (i64 e = 0; e < ae; e++) {
        if (!used[e]) continue;
        if (mb == 0) {
            sy[x] = e;
            se[x] = e;
            sm[x] = 1;
            x++;
            continue;
        }
        for (i64 m = 0; m < am; m++) {
            i64 g = fm[e * am + m];
            if (g) {
                sy[x] = (e << mb) | m;
                se[x] = e;
                sm[x] = g;
                x++;
            }
        }
    }
    for (i64 c = 0; c < nctx; c++)
        for (x = 0; x < na; x++) ww[c * na + x] = fe[c * ae + se[x]] * sm[x];
    free(se);
    free(sm);
    *sym = sy;
    *w = ww;
    *na_out = na;
    return 0;
}

/* prefix.code_table: lens and codes (nctx x na, zeroed by the caller); *ok as numba's. */
static int et_code_table(const i64 *w, i64 nctx, i64 na, i64 *lens, i64 *codes, int *ok) {
    i64 *wc = malloc((size_t)(na + 1) * sizeof(i64)), *lc = malloc((size_t)(na + 1) * sizeof(i64));
    i64 *cc = malloc((size_t)(na + 1) * sizeof(i64));
    int rc = -1;
    *ok = 1;
    if (!wc || !lc || !cc) goto done;
    for (i64 c = 0; c < nctx; c++) {
        i64 npres = 0;
        for (i64 x = 0; x < na; x++) {
            wc[x] = w[c * na + x];
            if (wc[x] > 0) npres++;
        }
        if (npres <= 1) continue;
        if (et_code_lengths(wc, na, ET_LMAX, lc)) goto done;
        et_canonical_codes(lc, na, cc);
        i64 kraft = 0;
        for (i64 x = 0; x < na; x++)
            if (lc[x] > 0) kraft += (i64)1 << (ET_LMAX - lc[x]);
        if (kraft != (i64)1 << ET_LMAX) {
            *ok = 0;
            rc = 0;
            goto done;
        }
        memcpy(lens + c * na, lc, (size_t)na * sizeof(i64));
        memcpy(codes + c * na, cc, (size_t)na * sizeof(i64));
    }
    rc = 0;
done:
    free(wc);
    free(lc);
    free(cc);
    return rc;
}

/* prefix.build's decode tables: t1 and dirs (nctx << L1, zeroed by the caller), *t2 (malloc'ed
 * here, *nt2 = max(used, 1) entries); *ok as numba's (tables unfilled when 0). */
static int et_build(const i64 *sym, const i64 *w, i64 nctx, i64 na, uint16_t *t1, i64 *dirs,
                    uint16_t **t2out, i64 *nt2, int *ok) {
    i64 *lens = calloc((size_t)(nctx * na + 1), sizeof(i64));
    i64 *codes = calloc((size_t)(nctx * na + 1), sizeof(i64));
    i64 cap = 64, used = 0;
    uint16_t *t2 = calloc((size_t)cap, sizeof(uint16_t));
    i64 sub[1 << ET_L1] = {0};
    int rc = -1;
    *t2out = NULL;
    if (!lens || !codes || !t2 || et_code_table(w, nctx, na, lens, codes, ok)) goto done;
    if (!*ok) {
        *t2out = t2;
        *nt2 = 1;
        t2 = NULL;
        rc = 0;
        goto done;
    }
    const i64 mask = ((i64)1 << ET_L1) - 1;
    for (i64 c = 0; c < nctx; c++) {
        i64 base = c << ET_L1, npres = 0, single = 0;
        const i64 *wc = w + c * na, *lc = lens + c * na, *cc = codes + c * na;
        for (i64 x = 0; x < na; x++) {
            if (wc[x] > 0) {
                npres++;
                single = sym[x];
            }
        }
        if (npres <= 1) {
            uint16_t fill = (uint16_t)(npres == 0 ? ((i64)ET_EMPTY << ET_SYM_BITS) : single);
            for (i64 idx = base; idx < base + ((i64)1 << ET_L1); idx++) t1[idx] = fill;
            continue;
        }
        for (i64 x = 0; x < na; x++) {
            i64 ln = lc[x];
            if (ln == 0) continue;
            if (ln <= ET_L1) {
                uint16_t e = (uint16_t)(sym[x] | (ln << ET_SYM_BITS));
                for (i64 idx = cc[x]; idx < ((i64)1 << ET_L1); idx += (i64)1 << ln) t1[base + idx] = e;
            } else {
                i64 pre = cc[x] & mask;
                if (ln - ET_L1 > sub[pre]) sub[pre] = ln - ET_L1;
            }
        }
        for (i64 x = 0; x < na; x++) {
            if (lc[x] <= ET_L1) continue;
            i64 pre = cc[x] & mask;
            if (sub[pre] == 0) continue;
            i64 size = (i64)1 << sub[pre];
            while (used + size > cap) {
                uint16_t *g = calloc((size_t)(2 * cap), sizeof(uint16_t));
                if (g == NULL) goto done;
                memcpy(g, t2, (size_t)used * sizeof(uint16_t));
                free(t2);
                t2 = g;
                cap *= 2;
            }
            t1[base + pre] = (uint16_t)((i64)ET_LONG << ET_SYM_BITS);
            dirs[base + pre] = (used << 4) | sub[pre];
            used += size;
            sub[pre] = 0;
        }
        for (i64 x = 0; x < na; x++) {
            i64 ln = lc[x];
            if (ln <= ET_L1) continue;
            i64 d = dirs[base + (cc[x] & mask)], off = d >> 4;
            uint16_t e = (uint16_t)(sym[x] | (ln << ET_SYM_BITS));
            for (i64 idx = cc[x] >> ET_L1; idx < ((i64)1 << (d & 15)); idx += (i64)1 << (ln - ET_L1))
                t2[off + idx] = e;
        }
    }
    *nt2 = used > 1 ? used : 1;
    *t2out = t2;
    t2 = NULL;
    rc = 0;
done:
    free(lens);
    free(codes);
    free(t2);
    return rc;
}

#endif
