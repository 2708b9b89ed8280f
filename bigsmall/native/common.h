/* Shared helpers of the native decode kernels (see README.md in this folder).
 *
 * Every kernel mirrors its numba reference in bigsmall/codecs/_generated/ statement for
 * statement, with the same int64 arithmetic: all values are int64_t, the library is built with
 * -fwrapv (numba's integers wrap; C's signed overflow would be undefined), and >> on a signed
 * value is arithmetic in GCC and Clang, as in numba. Loads are unaligned little-endian (memcpy).
 */
#ifndef BIGSMALL_NATIVE_COMMON_H
#define BIGSMALL_NATIVE_COMMON_H

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bigsmall native kernels assume a little-endian host (the numba path serves others)"
#endif

typedef int64_t i64;

#define BS_INLINE static inline __attribute__((always_inline))

BS_INLINE i64 bs_ld32(const uint8_t *b, i64 i) {
    uint32_t v;
    memcpy(&v, b + i, 4);
    return (i64)v;
}

BS_INLINE i64 bs_ld64(const uint8_t *b, i64 i) {
    uint64_t v;
    memcpy(&v, b + i, 8);
    return (i64)v;
}

/* Up to 8 bytes from idx, zeros past either end (loads.tail64). */
static inline i64 bs_tail64(const uint8_t *b, i64 blen, i64 idx) {
    uint64_t a = 0;
    for (int z = 0; z < 8; z++) {
        if (idx + z >= 0 && idx + z < blen) a |= (uint64_t)b[idx + z] << (8 * z);
    }
    return (i64)a;
}

/* Python's floor division (numba's // on int64), for the few quotients that can be negative. */
BS_INLINE i64 bs_floordiv(i64 a, i64 b) {
    i64 q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

BS_INLINE i64 bs_min(i64 a, i64 b) { return a < b ? a : b; }

/* st(out, idx, val): val truncated to the element width W (bytes, a constant after inlining). */
BS_INLINE void bs_st(void *out, int W, i64 idx, i64 val) {
    switch (W) {
    case 1: ((uint8_t *)out)[idx] = (uint8_t)val; break;
    case 2: ((uint16_t *)out)[idx] = (uint16_t)val; break;
    case 4: ((uint32_t *)out)[idx] = (uint32_t)val; break;
    default: ((uint64_t *)out)[idx] = (uint64_t)val; break;
    }
}

/* Python slice bounds of a[s:e] for len L (numba slices the same way). */
BS_INLINE void bs_slice(i64 L, i64 *s, i64 *e) {
    i64 a = *s, z = *e;
    if (a < 0) { a += L; if (a < 0) a = 0; } else if (a > L) a = L;
    if (z < 0) { z += L; if (z < 0) z = 0; } else if (z > L) z = L;
    if (z < a) z = a;
    *s = a;
    *e = z;
}

#endif
