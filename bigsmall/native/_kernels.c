/* bigsmall.native._kernels: C ports of the numba decode kernels (README.md in this folder).
 *
 * Each Python-facing function takes exactly the arguments of its numba reference, in the same
 * order, and returns the same value, so a codec swaps one for the other without other changes:
 *
 *   decode8_chunk(out, k0, ncols, rowctx, colctx, tsym, tfc, pbits, msym, mfc, mpbits,
 *                 p, eb, mb, rshift, buf) -> int                      (_generated/decode8.py)
 *   decode8_chunks(out, first, step, per, ncols, rowctx, colctx, tsym, tfc, pbits, msym, mfc,
 *                  mpbits, p, eb, mb, rshift, blob, offs) -> int
 *   decodep_chunk(out, k0, ncols, rowctx, colsh, t1, dirs, t2, p, eb, mb, rshift, buf) -> int
 *   decodep_chunks(out, first, step, per, ncols, rowctx, colsh, t1, dirs, t2, p, eb, mb,
 *                  rshift, blob, offs) -> int                         (_generated/decodep.py)
 *   encodep_chunk(values, k0, ncols, rowctx, colctx, tab, nsym, p, eb, mb, rshift) -> bytes
 *                                                        (_generated/encodep.encode_chunk)
 *
 * Unlike the numba kernels, which trust their caller (codecs' prepare), these functions check
 * everything a read or write depends on before decoding: buffer element sizes, parameter
 * ranges, that every row/column the call touches has its context, row shift and table rows
 * (so no index can leave a table), and they raise ValueError/TypeError when a check fails.
 * The chunk bytes themselves are checked inside the kernels exactly as the reference does.
 * The GIL is released while decoding.
 *
 * Two builds of every kernel: plain x86-64 (or whatever the compiler targets) and, on x86-64,
 * one compiled for AVX2 + BMI2 (shlx/shrx/bzhi on the bit-extraction path), picked at import
 * by __builtin_cpu_supports. Both come from the same C source, so their output is identical.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "decode8.h"
#include "decodep.h"
#include "encodep.h"

/* ------------------------------------------------------------------ kernel instantiations */

#define D8_ONE(SUF, ATTR, NAME, W, P, EB, MB, PB, MPB)                                       \
    ATTR __attribute__((noinline)) static int d8_one_##SUF##_##NAME(                         \
        const d8_model *m, void *out, i64 n, i64 k0, const uint8_t *buf, i64 blen) {         \
        return d8_kernel(m, out, W, n, k0, buf, blen, P, EB, MB, PB, MPB);                   \
    }
#define D8_GENERIC(SUF, ATTR, W) \
    D8_ONE(SUF, ATTR, g##W, W, m->p, m->eb, m->mb, m->pbits, m->mpbits)

/* field8's common layouts (bf16, fp16, fp32 with 0-3 coded mantissa bits) at the probability
 * bits every bigsmall writes (field.PROB_BITS = 12, MANT_PROB_BITS = 10): constants folded. */
#define D8_LAYOUTS(X, SUF, ATTR)                                                             \
    X(SUF, ATTR, b16_7_8_0, 2, 7, 8, 0, 12, 10) X(SUF, ATTR, b16_6_8_1, 2, 6, 8, 1, 12, 10)  \
    X(SUF, ATTR, b16_5_8_2, 2, 5, 8, 2, 12, 10) X(SUF, ATTR, b16_4_8_3, 2, 4, 8, 3, 12, 10)  \
    X(SUF, ATTR, h16_10_5_0, 2, 10, 5, 0, 12, 10) X(SUF, ATTR, h16_9_5_1, 2, 9, 5, 1, 12, 10) \
    X(SUF, ATTR, h16_8_5_2, 2, 8, 5, 2, 12, 10) X(SUF, ATTR, h16_7_5_3, 2, 7, 5, 3, 12, 10)  \
    X(SUF, ATTR, f32_22_8_1, 4, 22, 8, 1, 12, 10) X(SUF, ATTR, f32_21_8_2, 4, 21, 8, 2, 12, 10) \
    X(SUF, ATTR, f32_20_8_3, 4, 20, 8, 3, 12, 10)
#define D8_MATCH(SUF, ATTR, NAME, W, P, EB, MB, PB, MPB)                                     \
    if (w == W && m->p == P && m->eb == EB && m->mb == MB && m->pbits == PB &&               \
        m->mpbits == MPB)                                                                    \
        return d8_one_##SUF##_##NAME;

#define DP_ONE(SUF, ATTR, NAME, W, P, EB, MB)                                                \
    ATTR __attribute__((noinline)) static int dp_one_##SUF##_##NAME(                         \
        const dp_model *m, void *out, i64 n, i64 k0, const uint8_t *buf, i64 blen) {         \
        return dp_kernel(m, out, W, n, k0, buf, blen, P, EB, MB);                            \
    }

/* The layouts the numba path also specialises (gen_decodep.LAYOUTS), and fp16 with its sign
 * coded (field._sign_pays: [16, 10 - mb, 6, mb]; 55 % of Whisper tiny's bytes): constants
 * folded. */
#define DP_LAYOUTS(X, SUF, ATTR)                                                             \
    X(SUF, ATTR, b16_7_8_0, 2, 7, 8, 0) X(SUF, ATTR, b16_6_8_1, 2, 6, 8, 1)                 \
    X(SUF, ATTR, b16_5_8_2, 2, 5, 8, 2) X(SUF, ATTR, b16_4_8_3, 2, 4, 8, 3)                 \
    X(SUF, ATTR, h16_10_5_0, 2, 10, 5, 0) X(SUF, ATTR, h16_9_5_1, 2, 9, 5, 1)               \
    X(SUF, ATTR, h16_8_5_2, 2, 8, 5, 2) X(SUF, ATTR, h16_7_5_3, 2, 7, 5, 3)                 \
    X(SUF, ATTR, s16_10_6_0, 2, 10, 6, 0) X(SUF, ATTR, s16_9_6_1, 2, 9, 6, 1)               \
    X(SUF, ATTR, s16_8_6_2, 2, 8, 6, 2) X(SUF, ATTR, s16_7_6_3, 2, 7, 6, 3)                 \
    X(SUF, ATTR, f32_23_8_0, 4, 23, 8, 0) X(SUF, ATTR, f32_22_8_1, 4, 22, 8, 1)             \
    X(SUF, ATTR, f32_21_8_2, 4, 21, 8, 2) X(SUF, ATTR, f32_20_8_3, 4, 20, 8, 3)             \
    X(SUF, ATTR, u8_0_4_3, 1, 0, 4, 3) X(SUF, ATTR, u8_0_5_2, 1, 0, 5, 2)                   \
    X(SUF, ATTR, u8_0_8_0, 1, 0, 8, 0)

typedef int (*d8_fn)(const d8_model *, void *, i64, i64, const uint8_t *, i64);
typedef int (*dp_fn)(const dp_model *, void *, i64, i64, const uint8_t *, i64);

#define DP_GENERIC(SUF, ATTR, W) DP_ONE(SUF, ATTR, g##W, W, m->p, m->eb, m->mb)
#define DP_MATCH(SUF, ATTR, NAME, W, P, EB, MB)                                              \
    if (w == W && p == P && eb == EB && mb == MB) return dp_one_##SUF##_##NAME;

#define DEFINE_ISA(SUF, ATTR)                                                                \
    D8_GENERIC(SUF, ATTR, 1) D8_GENERIC(SUF, ATTR, 2) D8_GENERIC(SUF, ATTR, 4)               \
    D8_GENERIC(SUF, ATTR, 8) D8_LAYOUTS(D8_ONE, SUF, ATTR)                                   \
    DP_GENERIC(SUF, ATTR, 1) DP_GENERIC(SUF, ATTR, 2) DP_GENERIC(SUF, ATTR, 4)               \
    DP_GENERIC(SUF, ATTR, 8)                                                                 \
    DP_LAYOUTS(DP_ONE, SUF, ATTR)                                                            \
    static d8_fn d8_pick_##SUF(int w, const d8_model *m) {                                   \
        D8_LAYOUTS(D8_MATCH, SUF, ATTR)                                                      \
        switch (w) {                                                                         \
        case 1: return d8_one_##SUF##_g1;                                                    \
        case 2: return d8_one_##SUF##_g2;                                                    \
        case 4: return d8_one_##SUF##_g4;                                                    \
        default: return d8_one_##SUF##_g8;                                                   \
        }                                                                                    \
    }                                                                                        \
    static dp_fn dp_pick_##SUF(int w, i64 p, i64 eb, i64 mb) {                               \
        DP_LAYOUTS(DP_MATCH, SUF, ATTR)                                                      \
        switch (w) {                                                                         \
        case 1: return dp_one_##SUF##_g1;                                                    \
        case 2: return dp_one_##SUF##_g2;                                                    \
        case 4: return dp_one_##SUF##_g4;                                                    \
        default: return dp_one_##SUF##_g8;                                                   \
        }                                                                                    \
    }

DEFINE_ISA(scalar, )
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BS_HAVE_AVX2 1
DEFINE_ISA(avx2, __attribute__((target("avx2,bmi,bmi2"))))
#else
#define BS_HAVE_AVX2 0
#endif

static int use_avx2 = 0; /* set at import (and by _set_isa, for the tests) */

static d8_fn d8_pick(int w, const d8_model *m) {
#if BS_HAVE_AVX2
    if (use_avx2) return d8_pick_avx2(w, m);
#endif
    return d8_pick_scalar(w, m);
}

static dp_fn dp_pick(int w, i64 p, i64 eb, i64 mb) {
#if BS_HAVE_AVX2
    if (use_avx2) return dp_pick_avx2(w, p, eb, mb);
#endif
    return dp_pick_scalar(w, p, eb, mb);
}

/* ------------------------------------------------------------------ argument checks */

#include "checks.h"

/* ------------------------------------------------------------------ Python functions */

#include "glue.h"

static PyMethodDef methods[] = {
    {"decode8_chunk", py_decode8_chunk, METH_VARARGS, "field8: one chunk (see decode8.py)"},
    {"decode8_chunks", py_decode8_chunks, METH_VARARGS, "field8: chunks first, first+step, ..."},
    {"decodep_chunk", py_decodep_chunk, METH_VARARGS, "fieldp: one chunk (see decodep.py)"},
    {"decodep_chunks", py_decodep_chunks, METH_VARARGS, "fieldp: chunks first, first+step, ..."},
    {"encodep_chunk", py_encodep_chunk, METH_VARARGS, "fieldp: one chunk's bytes (encodep.py)"},
    {"isa", py_isa, METH_NOARGS, "the instruction set the kernels run with: 'avx2' or 'scalar'"},
    {"_set_isa", py_set_isa, METH_VARARGS, "tests only: force 'scalar' or 'avx2' (if supported)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT, "bigsmall.native._kernels",
    "C ports of bigsmall's numba decode kernels (byte-identical output).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) {
#if BS_HAVE_AVX2
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
#endif
    return PyModule_Create(&moddef);
}
