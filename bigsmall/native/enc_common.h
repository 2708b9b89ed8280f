/* Helpers of bigsmall.native._enc (_enc.c): argument buffers and new result arrays.
 *
 * Why not the numpy C API: the extension builds with nothing but a C compiler and Python's
 * headers (no numpy at build time); results come back as bytearrays that the Python wrapper
 * (bigsmall/native/enc.py) views as numpy arrays of the kernel's dtype, without a copy.
 */
#ifndef BIGSMALL_NATIVE_ENC_COMMON_H
#define BIGSMALL_NATIVE_ENC_COMMON_H

#include "common.h"
#include "pybuf.h"

/* Kinds of buffer element: any integer, or a float. */
enum { EK_INT = 0, EK_FLOAT = 1 };

/* A C-contiguous buffer of ``isz``-byte (0: 1, 2, 4 or 8) elements of kind ``kind`` with ``ndim`` dimensions
 * (-1: any). TypeError (and nothing held) otherwise. */
static int ek_getbuf(PyObject *o, Py_buffer *v, Py_ssize_t isz, int kind, int ndim, int writable,
                     const char *name) {
    return pb_getbuf(o, v, isz, kind == EK_INT ? PB_INTS_BOOL : PB_FLOATS, ndim, writable, name);
}

/* Whether an integer buffer's elements are signed (numpy's lower-case format characters). */
static int ek_signed(const Py_buffer *v) {
    const char *f = v->format ? v->format : "B";
    size_t fl = strlen(f);
    return fl > 0 && strchr("bhilqn", f[fl - 1]) != NULL;
}

#define ek_fail pb_fail

/* A zeroed bytearray of n elements of isz bytes (at least one byte: numpy views of empty
 * bytearrays are fine, but a NULL buffer is not), or NULL with MemoryError set. */
static PyObject *ek_zeros(i64 n, i64 isz, void **data) {
    if (n < 0 || n > ((i64)1 << 40) / (isz > 0 ? isz : 1)) {
        PyErr_SetString(PyExc_MemoryError, "result too large");
        return NULL;
    }
    PyObject *b = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(n * isz));
    if (b == NULL) return NULL;
    *data = PyByteArray_AS_STRING(b);
    if (n * isz > 0) memset(*data, 0, (size_t)(n * isz));
    return b;
}

/* ek_zeros without the zeroing: for a result the caller writes whole. */
static PyObject *ek_alloc(i64 n, i64 isz, void **data) {
    if (n < 0 || n > ((i64)1 << 40) / (isz > 0 ? isz : 1)) {
        PyErr_SetString(PyExc_MemoryError, "result too large");
        return NULL;
    }
    PyObject *b = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(n * isz));
    if (b == NULL) return NULL;
    *data = PyByteArray_AS_STRING(b);
    return b;
}

#endif
