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

/* Magnitude bits of the dtype value nearest x 2^-U (x >= 0) from below (up: above), clipped. */
static inline int64_t db_mag(int64_t x, int dt, int up) {
    int64_t mb = db_mb[dt];
    int64_t top = ((db_emax[dt] + db_bias[dt]) << mb) | (((int64_t)1 << mb) - 1);
    if (x <= 0) return 0;
    int64_t ln = 63 - __builtin_clzll((unsigned long long)x);
    int64_t e = ln - DB_U, m, rem, mag;
    if (e < db_emin[dt]) {
        int64_t sh = DB_U + db_emin[dt] - mb;
        m = x >> sh;
        rem = x & (((int64_t)1 << sh) - 1);
        mag = m;
    } else {
        int64_t sh = ln - mb;
        if (sh >= 0) {
            m = x >> sh;
            rem = x & (((int64_t)1 << sh) - 1);
        } else {
            m = x << (-sh);
            rem = 0;
        }
        mag = ((e + db_bias[dt]) << mb) + (m - ((int64_t)1 << mb));
    }
    if (up && rem != 0) mag += 1;
    return mag < top ? mag : top;
}

/* Ordered key of the first dtype value >= a 2^-U (up) or the last <= it. */
static inline int64_t db_edge(int64_t a, int dt, int up) {
    int64_t sign = (int64_t)1 << (db_width[dt] - 1);
    if (a >= 0) return sign + db_mag(a, dt, up);
    return sign - 1 - db_mag(-a, dt, !up);
}

/* The group's bins [ka, kb] (fp32: of the keys' top halves). */
static inline void db_group_bins(uint16_t sb, uint16_t lb, int dt, int64_t *ka, int64_t *kb) {
    int64_t s = db_fp16_units(sb) << (DB_U - 24), lo = db_fp16_units(lb) << (DB_U - 24);
    int wide = db_width[dt] == 32;
    for (int q = 0; q < 16; q++) {
        int64_t a = q == 0 ? lo - (s >> 5) : lo + (2 * q - 1) * (s >> 1);
        int64_t b = q == 15 ? lo + 15 * s + (s >> 5) : lo + (2 * q + 1) * (s >> 1);
        int64_t x = db_edge(a, dt, 1), y = db_edge(b, dt, 0);
        if (wide) {
            x >>= 16;
            y >>= 16;
        }
        ka[q] = x;
        kb[q] = y;
    }
}

#endif
