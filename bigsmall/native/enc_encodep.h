/* encodep_flat: the fieldp chunk encoder (native/encodep.h, numba: _generated/encodep.py
 * encode_chunk) for a tensor of one context and no row shifts (every ``--level fast`` tensor
 * whose low bits are not all zero, and every default-level tensor the context search leaves
 * whole): the same bytes, without the per-element row/column walk (the context is 0 and the
 * raw width fixed) and with a unit's code and raw bits added to its lane in one step. The
 * caller (codecs/fieldp.py) checks the one context and the zero shifts; here the layout,
 * the table's size and every code length are checked. property_tests/test_native_fieldp_flat.py
 * compares it with the numba kernel.
 */
#ifndef BIGSMALL_NATIVE_ENC_ENCODEP_H
#define BIGSMALL_NATIVE_ENC_ENCODEP_H

#define EF_LANES 4
#define EF_MAXCODE 15

/* Lane L takes BITS bits X (X < 2^BITS, at most 46 bits): added above its pending bits, the
 * whole bytes stored (one 8-byte store, the lane's region has room) and dropped. */
#define EF_PUT(L, X, BITS)                                                                     \
    do {                                                                                       \
        a[L] |= (X) << b[L];                                                                   \
        b[L] += (BITS);                                                                        \
        uint64_t w_ = (uint64_t)a[L];                                                          \
        memcpy(tmp + q[L], &w_, 8);                                                            \
        q[L] += b[L] >> 3;                                                                     \
        a[L] >>= b[L] & ~(i64)7;                                                               \
        b[L] &= 7;                                                                             \
    } while (0)

/* The four lanes over units 0 .. n - 1 (unit t to lane t % 4) with STEP(L) coding unit t + L,
 * then each lane's byte length in size[]; the body's return value (0). */
#define EF_LANES_RUN(STEP)                                                                     \
    i64 a[EF_LANES] = {0, 0, 0, 0}, b[EF_LANES] = {0, 0, 0, 0};                                \
    i64 q[EF_LANES] = {0, cap, 2 * cap, 3 * cap};                                              \
    i64 t = 0;                                                                                 \
    for (; t + EF_LANES <= n; t += EF_LANES) {                                                 \
        STEP(0);                                                                               \
        STEP(1);                                                                               \
        STEP(2);                                                                               \
        STEP(3);                                                                               \
    }                                                                                          \
    if (t < n) STEP(0);                                                                        \
    if (t + 1 < n) STEP(1);                                                                    \
    if (t + 2 < n) STEP(2);                                                                    \
    for (int l = 0; l < EF_LANES; l++) size[l] = q[l] - l * cap + (b[l] > 0 ? 1 : 0);          \
    return 0

#define EF_STEP(L)                                                                             \
    do {                                                                                       \
        i64 v_ = (i64)vals[t + (L)];                                                           \
        i64 e_ = tab[(v_ >> p) & smask];                                                       \
        if (e_ < 0 || (e_ >> 32) > EF_MAXCODE) return -1;                                     \
        i64 raw_ = (v_ & lowmask) | ((v_ >> hishift) << p);                                    \
        EF_PUT(L, (e_ & 0xFFFFFFFF) | (raw_ << (e_ >> 32)), (e_ >> 32) + rbits);               \
    } while (0)

/* Each kernel below is compiled twice: as is, and for CPUs with BMI2 (shlx/shrx/sarx: a
 * variable shift in any register, where the plain build moves every count through cl, which
 * spilled the lanes' state to the stack: encodep_rows32 2.09 -> see docs/performance.md),
 * picked at run time (ef_bmi2; _set_isa("scalar") forces the plain build for the tests). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EF_HAVE_BMI2 1
#define EF_BMI2_ATTR __attribute__((target("bmi,bmi2")))
#else
#define EF_HAVE_BMI2 0
#define EF_BMI2_ATTR
#endif
static int ef_use_bmi2 = -1; /* -1: not checked yet (a benign race: every thread finds the same) */

static int ef_bmi2(void) {
    if (ef_use_bmi2 < 0) {
#if EF_HAVE_BMI2
        __builtin_cpu_init();
        ef_use_bmi2 = __builtin_cpu_supports("bmi2") ? 1 : 0;
#else
        ef_use_bmi2 = 0;
#endif
    }
    return ef_use_bmi2;
}

/* NAME(PARAMS): NAME##_body compiled plain and with BMI2, the build picked per call. */
#define EF_VARIANTS(NAME, PARAMS, ARGS)                                                        \
    __attribute__((noinline)) static int NAME##_plain PARAMS { return NAME##_body ARGS; }     \
    EF_BMI2_ATTR __attribute__((noinline)) static int NAME##_bmi2 PARAMS {                    \
        return NAME##_body ARGS;                                                               \
    }                                                                                          \
    static int NAME PARAMS { return (EF_HAVE_BMI2 && ef_bmi2()) ? NAME##_bmi2 ARGS : NAME##_plain ARGS; }

#define EF_KERNEL(T)                                                                           \
    BS_INLINE int ef_kernel_##T##_body(const void *values, i64 n, const i64 *tab, i64 p, i64 c, \
                                       i64 rbits, uint8_t *tmp, i64 cap, i64 *size) {          \
        const i64 smask = ((i64)1 << c) - 1, lowmask = ((i64)1 << p) - 1, hishift = p + c;    \
        const T *vals = (const T *)values;                                                     \
        EF_LANES_RUN(EF_STEP);                                                                 \
    }                                                                                          \
    EF_VARIANTS(ef_kernel_##T, (const void *values, i64 n, const i64 *tab, i64 p, i64 c,       \
                                i64 rbits, uint8_t *tmp, i64 cap, i64 *size),                  \
                (values, n, tab, p, c, rbits, tmp, cap, size))
EF_KERNEL(uint8_t)
EF_KERNEL(uint16_t)
EF_KERNEL(uint32_t)

/* The chunk's bytes from the lanes in tmp (rc != 0: b"", a symbol without a code): u32 lane
 * lengths, then the lanes. The copy runs without the GIL: with the encoders' pool threads
 * busy it was ~4 % of the time a thread held the GIL in a --level fast compress (py-spy). */
static PyObject *ef_pack(int rc, const uint8_t *tmp, i64 cap, const i64 *size) {
    if (rc != 0) return PyBytes_FromStringAndSize(NULL, 0);
    i64 total = 4 * EF_LANES;
    for (int l = 0; l < EF_LANES; l++) total += size[l];
    PyObject *res = PyBytes_FromStringAndSize(NULL, total);
    if (res) {
        uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(res), *pos = dst + 16;
        Py_BEGIN_ALLOW_THREADS
        for (int l = 0; l < EF_LANES; l++) {
            for (int z = 0; z < 4; z++) dst[4 * l + z] = (size[l] >> (8 * z)) & 0xFF;
            memcpy(pos, tmp + l * cap, (size_t)size[l]);
            pos += size[l];
        }
        Py_END_ALLOW_THREADS
    }
    return res;
}

/* A chunk's bytes for n units of at most UNIT_BITS coded bits each: the empty chunk's 16 zero
 * bytes for n == 0, else CALL (a kernel call writing the lanes into tmp, cap bytes apart, and
 * their lengths into size) run without the GIL on scratch it cannot outgrow, then ef_pack.
 * RES: the result (NULL with the error set). */
#define EF_ENCODE(RES, N, UNIT_BITS, CALL)                                                     \
    do {                                                                                       \
        if ((N) == 0) {                                                                        \
            RES = PyBytes_FromStringAndSize(NULL, 4 * EF_LANES);                               \
            if (RES) memset(PyBytes_AS_STRING(RES), 0, 4 * EF_LANES);                          \
            break;                                                                             \
        }                                                                                      \
        i64 cap = ((((N) + EF_LANES - 1) / EF_LANES) * (UNIT_BITS) + 7) / 8 + 8;               \
        i64 size[EF_LANES];                                                                    \
        uint8_t *tmp = malloc((size_t)(EF_LANES * cap));                                       \
        if (!tmp) {                                                                            \
            PyErr_NoMemory();                                                                  \
            break;                                                                             \
        }                                                                                      \
        int rc_;                                                                               \
        Py_BEGIN_ALLOW_THREADS                                                                 \
        rc_ = (CALL);                                                                          \
        Py_END_ALLOW_THREADS                                                                   \
        RES = ef_pack(rc_, tmp, cap, size);                                                    \
        free(tmp);                                                                             \
    } while (0)

/* same_bytes(a, b) -> bool: whether two byte buffers are equal (memcmp, without the GIL):
 * compress's verify pass compares every decoded tensor with its input, and numpy's
 * array_equal builds a bool array and holds the GIL around its pieces. */
static PyObject *py_same_bytes(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *oa, *ob;
    if (!PyArg_ParseTuple(args, "OO", &oa, &ob)) return NULL;
    Py_buffer a, b;
    if (PyObject_GetBuffer(oa, &a, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(ob, &b, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&a);
        return NULL;
    }
    int eq = a.len == b.len;
    if (eq && a.len > 0) {
        Py_BEGIN_ALLOW_THREADS
        eq = memcmp(a.buf, b.buf, (size_t)a.len) == 0;
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return PyBool_FromLong(eq);
}

/* encodep_flat(values, tab, nsym, p, eb, mb) -> bytes: encodep_chunk's bytes for a chunk of
 * one context (tab: that context's row of code entries, at least nsym >= 2**(eb + mb)) and
 * no row shifts; b"" for a symbol without a (sane) code, as encodep_chunk. */
static PyObject *py_encodep_flat(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ov, *ot;
    long long nsym, p, eb, mb;
    if (!PyArg_ParseTuple(args, "OOLLLL", &ov, &ot, &nsym, &p, &eb, &mb)) return NULL;
    Py_buffer v, t;
    if (ek_getbuf(ov, &v, 0, EK_INT, 1, 0, "values") < 0) return NULL;
    if (ek_getbuf(ot, &t, 8, EK_INT, -1, 0, "tab") < 0) {
        PyBuffer_Release(&v);
        return NULL;
    }
    PyObject *res = NULL;
    i64 w = (i64)v.itemsize, n = EK_NELEM(v), c = eb + mb;
    if (!(w == 1 || w == 2 || w == 4) || ek_signed(&v)) {
        ek_fail("encodep_flat: unsigned units of 1, 2 or 4 bytes");
    } else if (eb < 0 || mb < 0 || c < 1 || c > 16 || p < 0 || p + c > 8 * w ||
               nsym < ((i64)1 << c) || nsym > EK_NELEM(t)) {
        ek_fail("encodep_flat: layout within the unit, a code for every symbol of the field");
    } else {
        i64 rbits = 8 * w - c;
        EF_ENCODE(res, n, EF_MAXCODE + rbits,
                  w == 1   ? ef_kernel_uint8_t(v.buf, n, t.buf, p, c, rbits, tmp, cap, size)
                  : w == 2 ? ef_kernel_uint16_t(v.buf, n, t.buf, p, c, rbits, tmp, cap, size)
                           : ef_kernel_uint32_t(v.buf, n, t.buf, p, c, rbits, tmp, cap, size));
    }
    PyBuffer_Release(&v);
    PyBuffer_Release(&t);
    return res;
}

/* encodep_flat16: encodep_flat for 16-bit units through a table of every unit value's coded
 * bits (encodep_table16): the unit's code with its raw bits above it, and their total length.
 * Why: the symbol's mask and shift, the raw bits' three masks and shifts and the code-length
 * checks were most of encodep_flat's ~20 operations a unit; here a unit is one load from the
 * table and the accumulator steps. The table (65536 x 8 bytes) costs ~0.1 ms to build, so the
 * caller (codecs/fieldp.py) uses it on tensors of many units only. The same bytes as
 * encodep_flat (property_tests/test_native_fieldp_flat.py). */
#define EF16_STEP(L)                                                                           \
    do {                                                                                       \
        i64 e_ = tab16[values[t + (L)]];                                                       \
        /* -1 (no code) and any length beyond 30 bits: refused, so a lane never outgrows its \
         * region whatever the table holds */                                                  \
        if ((uint64_t)e_ > ((uint64_t)30 << 32 | 0xFFFFFFFFu)) return -1;                      \
        EF_PUT(L, e_ & 0xFFFFFFFF, e_ >> 32);                                                  \
    } while (0)

BS_INLINE int ef16_kernel_body(const uint16_t *values, i64 n, const i64 *tab16, uint8_t *tmp,
                               i64 cap, i64 *size) {
    EF_LANES_RUN(EF16_STEP);
}
EF_VARIANTS(ef16_kernel, (const uint16_t *values, i64 n, const i64 *tab16, uint8_t *tmp, i64 cap,
                          i64 *size), (values, n, tab16, tmp, cap, size))

/* encodep_table16(tab, nsym, p, eb, mb) -> bytes: int64[65536], per 16-bit unit value v its
 * code (tab's entry of v's symbol) | raw bits << code length in the low 32 bits and code
 * length + raw width in the high 32 (at most 15 + 15 bits: they fit), or -1 where the symbol
 * has no (sane) code, as encodep_flat refuses it. */
static PyObject *py_encodep_table16(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ot;
    long long nsym, p, eb, mb;
    if (!PyArg_ParseTuple(args, "OLLLL", &ot, &nsym, &p, &eb, &mb)) return NULL;
    Py_buffer t;
    if (ek_getbuf(ot, &t, 8, EK_INT, -1, 0, "tab") < 0) return NULL;
    PyObject *res = NULL;
    const i64 c = eb + mb;
    if (eb < 0 || mb < 0 || c < 1 || c > 16 || p < 0 || p + c > 16 || nsym < ((i64)1 << c) ||
        nsym > EK_NELEM(t)) {
        ek_fail("encodep_table16: a 16-bit layout, a code for every symbol of the field");
    } else if ((res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(8 << 16))) != NULL) {
        const i64 *tab = (const i64 *)t.buf;
        i64 *out = (i64 *)PyBytes_AS_STRING(res);
        const i64 smask = ((i64)1 << c) - 1, lowmask = ((i64)1 << p) - 1, hishift = p + c;
        const i64 rbits = 16 - c;
        Py_BEGIN_ALLOW_THREADS
        for (i64 v = 0; v < (1 << 16); v++) {
            i64 e = tab[(v >> p) & smask], len = e >> 32;
            if (e < 0 || len > EF_MAXCODE) {
                out[v] = -1;
                continue;
            }
            i64 raw = (v & lowmask) | ((v >> hishift) << p);
            out[v] = ((e & 0xFFFFFFFF) | (raw << len)) | ((len + rbits) << 32);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&t);
    return res;
}

/* encodep_flat16(values u16, table16) -> bytes: encodep_flat's bytes for the table's layout;
 * b"" for a unit whose symbol has no code. */
static PyObject *py_encodep_flat16(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ov, *ot;
    if (!PyArg_ParseTuple(args, "OO", &ov, &ot)) return NULL;
    Py_buffer v, t;
    if (ek_getbuf(ov, &v, 2, EK_INT, 1, 0, "values") < 0) return NULL;
    if (ek_getbuf(ot, &t, 1, 0, -1, 0, "table16") < 0) {
        PyBuffer_Release(&v);
        return NULL;
    }
    PyObject *res = NULL;
    i64 n = EK_NELEM(v);
    if (ek_signed(&v) || t.len != (Py_ssize_t)(8 << 16) || ((uintptr_t)t.buf & 7) != 0) {
        ek_fail("encodep_flat16: unsigned 16-bit units and an encodep_table16 table");
    } else {
        EF_ENCODE(res, n, 30, ef16_kernel(v.buf, n, t.buf, tmp, cap, size)); /* <= 30 bits a unit */
    }
    PyBuffer_Release(&v);
    PyBuffer_Release(&t);
    return res;
}

/* encodep_rows32: encodep_chunk for a tensor of one context (row shifts allowed) and 32-bit
 * units whose coded field sits in the high half (p >= 16: fp32), through a table of the high
 * half's values (encodep_table32h): its symbol's code, the raw bits it holds (in place) and
 * the code's length. The low half's 16 raw bits join them per unit. Why: the generic kernel
 * walks each unit's row and column contexts and builds its raw bits with three masks and
 * shifts; here a unit is one table load and a few operations (the same bytes:
 * property_tests/test_native_fieldp_flat.py). */
#define ER32_STEP(L)                                                                           \
    do {                                                                                       \
        uint32_t v_ = values[t + (L)];                                                         \
        i64 e_ = tab32[v_ >> 16];                                                              \
        /* -1 (no code) or anything but a length <= 15 and 32 bits of entry: refused */        \
        if ((uint64_t)e_ >= ((uint64_t)16 << 32)) return -1;                                   \
        i64 len_ = e_ >> 32;                                                                   \
        i64 raw_ = (i64)(((uint64_t)(v_ & 0xFFFFu) | ((uint64_t)e_ & 0xFFFF0000u)) >> h);      \
        EF_PUT(L, (e_ & 0x7FFF) | (raw_ << len_), len_ + bw);                                   \
        if (++j == ncols && t + (L) + 1 < n) {                                                 \
            j = 0;                                                                             \
            h = rshift[++i];                                                                   \
            bw = rbits - h;                                                                    \
        }                                                                                      \
    } while (0)

BS_INLINE int er32_kernel_body(const uint32_t *values, i64 n, i64 k0, i64 ncols,
                               const i64 *rshift, i64 rbits, const i64 *tab32, uint8_t *tmp,
                               i64 cap, i64 *size) {
    i64 i = k0 / ncols, j = k0 - i * ncols, h = rshift[i], bw = rbits - h;
    EF_LANES_RUN(ER32_STEP);
}
EF_VARIANTS(er32_kernel, (const uint32_t *values, i64 n, i64 k0, i64 ncols, const i64 *rshift,
                          i64 rbits, const i64 *tab32, uint8_t *tmp, i64 cap, i64 *size),
            (values, n, k0, ncols, rshift, rbits, tab32, tmp, cap, size))

/* encodep_table32h(tab, nsym, p, eb, mb) -> bytes: int64[65536], per value hv of a 32-bit
 * unit's high half: the code of its symbol (bits 0-14), the raw bits hv holds in their place
 * in the unit's raw value (bits 16-31) and the code's length (bits 32-35); -1 where the symbol
 * has no (sane) code. Needs 16 <= p and p + eb + mb <= 32. */
static PyObject *py_encodep_table32h(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ot;
    long long nsym, p, eb, mb;
    if (!PyArg_ParseTuple(args, "OLLLL", &ot, &nsym, &p, &eb, &mb)) return NULL;
    Py_buffer t;
    if (ek_getbuf(ot, &t, 8, EK_INT, -1, 0, "tab") < 0) return NULL;
    PyObject *res = NULL;
    const i64 c = eb + mb;
    if (eb < 0 || mb < 0 || c < 1 || c > 16 || p < 16 || p + c > 32 || nsym < ((i64)1 << c) ||
        nsym > EK_NELEM(t)) {
        ek_fail("encodep_table32h: a field in the high half, a code for every symbol");
    } else if ((res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(8 << 16))) != NULL) {
        const i64 *tab = (const i64 *)t.buf;
        i64 *out = (i64 *)PyBytes_AS_STRING(res);
        const i64 smask = ((i64)1 << c) - 1, lowmask = ((i64)1 << p) - 1, hishift = p + c;
        Py_BEGIN_ALLOW_THREADS
        for (i64 hv = 0; hv < (1 << 16); hv++) {
            i64 v = hv << 16;
            i64 e = tab[(v >> p) & smask], len = e >> 32;
            if (e < 0 || len > EF_MAXCODE) {
                out[hv] = -1;
                continue;
            }
            i64 raw = (v & lowmask) | ((v >> hishift) << p); /* low 16 bits: 0 */
            out[hv] = (e & 0x7FFF) | (raw & 0xFFFF0000) | (len << 32);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&t);
    return res;
}

/* encodep_rows32(values u32, table32h, k0, ncols, rshift, p, eb, mb) -> bytes: encodep_chunk's
 * bytes for one context (units k0 .. of a matrix of ncols columns, row shifts rshift); b"" for
 * a unit whose symbol has no code. */
static PyObject *py_encodep_rows32(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ov, *ot, *orr;
    long long k0, ncols, p, eb, mb;
    if (!PyArg_ParseTuple(args, "OOLLOLLL", &ov, &ot, &k0, &ncols, &orr, &p, &eb, &mb)) return NULL;
    Py_buffer v, t, r;
    if (ek_getbuf(ov, &v, 4, EK_INT, 1, 0, "values") < 0) return NULL;
    if (ek_getbuf(ot, &t, 1, 0, -1, 0, "table32h") < 0) {
        PyBuffer_Release(&v);
        return NULL;
    }
    if (ek_getbuf(orr, &r, 8, EK_INT, 1, 0, "rshift") < 0) {
        PyBuffer_Release(&v);
        PyBuffer_Release(&t);
        return NULL;
    }
    PyObject *res = NULL;
    const i64 n = EK_NELEM(v), c = eb + mb, rbits = 32 - c;
    const i64 *rs = (const i64 *)r.buf;
    int ok = !ek_signed(&v) && t.len == (Py_ssize_t)(8 << 16) && ((uintptr_t)t.buf & 7) == 0 &&
             eb >= 0 && mb >= 0 && c >= 1 && c <= 16 && p >= 16 && p + c <= 32 && ncols >= 1 &&
             k0 >= 0 && k0 <= ((i64)1 << 62) - n;
    if (ok && n > 0) { /* every row the units reach has a shift, each in [0, rbits] */
        i64 r0 = k0 / ncols, r1 = (k0 + n - 1) / ncols;
        ok = r1 < EK_NELEM(r);
        for (i64 i = r0; ok && i <= r1; i++) ok = rs[i] >= 0 && rs[i] <= rbits;
    }
    if (!ok) {
        ek_fail("encodep_rows32: unsigned 32-bit units, an encodep_table32h table, a field in "
                "the high half, row shifts in [0, raw bits] for every row");
    } else {
        EF_ENCODE(res, n, EF_MAXCODE + rbits,
                  er32_kernel(v.buf, n, k0, ncols, rs, rbits, t.buf, tmp, cap, size));
    }
    PyBuffer_Release(&v);
    PyBuffer_Release(&t);
    PyBuffer_Release(&r);
    return res;
}

/* _set_isa("scalar" | "bmi2"): which build of the kernels above runs (the tests run both);
 * isa() -> the name in use. */
static PyObject *py_ef_set_isa(PyObject *self, PyObject *args) {
    (void)self;
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    if (strcmp(name, "scalar") == 0) {
        ef_use_bmi2 = 0;
    } else if (strcmp(name, "bmi2") == 0) {
        ef_use_bmi2 = -1;
        if (!ef_bmi2()) {
            PyErr_SetString(PyExc_ValueError, "this CPU (or build) has no BMI2");
            return NULL;
        }
    } else {
        PyErr_SetString(PyExc_ValueError, "isa must be 'scalar' or 'bmi2'");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_ef_isa(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyUnicode_FromString(ef_bmi2() ? "bmi2" : "scalar");
}

#define EK_ENCODEP_METHODS                                                                     \
    {"_set_isa", py_ef_set_isa, METH_VARARGS, "the encoders' build: 'scalar' or 'bmi2' (tests)"}, \
    {"same_bytes", py_same_bytes, METH_VARARGS, "whether two contiguous buffers hold the same bytes"}, \
    {"isa", py_ef_isa, METH_NOARGS, "the encoders' build in use"},                             \
    {"encodep_table32h", py_encodep_table32h, METH_VARARGS,                                    \
     "encodep_rows32's table: per high half of a 32-bit unit, its code, raw bits and length"}, \
    {"encodep_rows32", py_encodep_rows32, METH_VARARGS,                                        \
     "encodep_chunk's bytes for one context and 32-bit units through encodep_table32h"},       \
    {"encodep_flat", py_encodep_flat, METH_VARARGS,                                            \
     "fieldp chunk of one context, no row shifts (encodep_chunk's bytes)"},                    \
    {"encodep_table16", py_encodep_table16, METH_VARARGS,                                      \
     "encodep_flat16's table: every 16-bit unit's coded bits and length"},                     \
    {"encodep_flat16", py_encodep_flat16, METH_VARARGS,                                        \
     "encodep_flat's bytes for 16-bit units through an encodep_table16 table"},

#endif
