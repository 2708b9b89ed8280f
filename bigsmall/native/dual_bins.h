/* The .bsd INT4 bins as key ranges (codecs/dual_lookup.py: group_bins, the reference), shared by
 * the exact-chunk decoders. A group's 16 bins ``lo + (q -+ 1/2) s`` (the end bins only s/32
 * beyond) in integer arithmetic: fp16 scales and minimums in units of 2^-30 (every value and
 * s/32 exact there), edges rounded onto the dtype's grid by bit length, so every machine gets
 * the same ranges. Why a header: both 3.0's (_dual.c) and 5.0's (_cells.c) decoders need
 * exactly the reference's arithmetic. */
#ifndef BIGSMALL_NATIVE_DUAL_BINS_H
#define BIGSMALL_NATIVE_DUAL_BINS_H

#include <stdint.h>

#define DB_U 30
static const int64_t db_width[3] = {16, 16, 32}, db_mb[3] = {7, 10, 23}, db_bias[3] = {127, 15, 127},
                     db_emax[3] = {127, 15, 127}, db_emin[3] = {-126, -14, -126};

static inline int64_t db_fp16_units(uint16_t b) { /* units of 2^-24 */
    int64_t e = (b >> 10) & 31, m = b & 1023;
    int64_t v = e == 0 ? m : (m + 1024) << (e - 1);
    return (b & 0x8000) ? -v : v;
}

static inline int64_t db_top(int dt) { /* the largest finite magnitude's bits */
    return ((db_emax[dt] + db_bias[dt]) << db_mb[dt]) | (((int64_t)1 << db_mb[dt]) - 1);
}

/* Magnitude bits of the dtype value nearest x 2^-U (x >= 0) from below, unclipped; *inexact: x
 * is not a dtype value (rounding up adds one). */
static inline int64_t db_mag_floor(int64_t x, int dt, int *inexact) {
    const int64_t mb = db_mb[dt];
    *inexact = 0;
    if (x <= 0) return 0;
    int64_t ln = 63 - __builtin_clzll((unsigned long long)x), e = ln - DB_U, sh, mag;
    if (e < db_emin[dt]) { /* below the normal range: the subnormals' grid (fp16 only reaches it) */
        sh = DB_U + db_emin[dt] - mb;
        mag = x >> sh;
    } else {
        sh = ln - mb;
        mag = ((e + db_bias[dt]) << mb) + ((sh >= 0 ? x >> sh : x << (-sh)) - ((int64_t)1 << mb));
    }
    *inexact = sh > 0 && (x & (((int64_t)1 << sh) - 1)) != 0;
    return mag;
}

/* Magnitude bits of the dtype value nearest x 2^-U (x >= 0) from below (up: above), clipped. */
static inline int64_t db_mag(int64_t x, int dt, int up) {
    int inexact;
    int64_t mag = db_mag_floor(x, dt, &inexact) + (up && inexact), top = db_top(dt);
    return mag < top ? mag : top;
}

/* Ordered key of the first dtype value >= a 2^-U (up) or the last <= it. */
static inline int64_t db_edge(int64_t a, int dt, int up) {
    int64_t sign = (int64_t)1 << (db_width[dt] - 1);
    if (a >= 0) return sign + db_mag(a, dt, up);
    return sign - 1 - db_mag(-a, dt, !up);
}

/* The 17 edges of a group's bins as ordered keys (db_group_bins with each edge rounded once:
 * bin q's upper edge is bin q+1's lower one, the same value rounded down for one and up for the
 * other): ka[q] = lower[q], kb[q] = upper[q + 1]. */
static inline void db_edges(int64_t s, int64_t lo, int dt, int64_t *lower, int64_t *upper) {
    const int64_t sign = (int64_t)1 << (db_width[dt] - 1), top = db_top(dt);
    const int sh16 = dt == 2 ? 16 : 0;
    for (int i = 0; i <= 16; i++) {
        int64_t x = i == 0 ? lo - (s >> 5) : (i == 16 ? lo + 15 * s + (s >> 5) : lo + (2 * i - 1) * (s >> 1));
        int neg = x < 0, nz;
        int64_t md = db_mag_floor(neg ? -x : x, dt, &nz);
        int64_t mup = md + nz < top ? md + nz : top, mdn = md < top ? md : top;
        /* as a lower edge (up) and as an upper edge (down); negative: mirrored */
        lower[i] = (neg ? sign - 1 - mdn : sign + mup) >> sh16;
        upper[i] = (neg ? sign - 1 - mup : sign + mdn) >> sh16;
    }
}

/* The group's bins [ka, kb] (fp32: of the keys' top halves). */
static inline void db_group_bins(uint16_t sb, uint16_t lb, int dt, int64_t *ka, int64_t *kb) {
    int64_t lower[17], upper[17];
    db_edges(db_fp16_units(sb) << (DB_U - 24), db_fp16_units(lb) << (DB_U - 24), dt, lower, upper);
    for (int q = 0; q < 16; q++) {
        ka[q] = lower[q];
        kb[q] = upper[q + 1];
    }
}

#endif
