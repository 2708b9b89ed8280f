/* Argument buffers of the four extensions (_kernels, _enc, _delta, _dual): one checked
 * getter and one error helper instead of a copy in each.
 *
 * Why a header of its own: each extension is its own translation unit with its own model
 * types, so the getter cannot live in checks.h (which needs _kernels' types); it needs only
 * Python's headers.
 */
#ifndef BIGSMALL_NATIVE_PYBUF_H
#define BIGSMALL_NATIVE_PYBUF_H

#include <Python.h>
#include <string.h>

/* Format characters (numpy's last one) a caller accepts. */
#define PB_INTS "bBhHiIlLqQnN"        /* integers */
#define PB_INTS_BOOL "?bBhHiIlLqQnN"  /* integers or bool */
#define PB_FLOATS "dfe"               /* any float */
#define PB_DOUBLE "d"                 /* float64 only */

/* A C-contiguous buffer whose format ends in one of ``formats``, of ``isz``-byte elements
 * (0: 1, 2, 4 or 8) and ``ndim`` dimensions (-1: any). TypeError, and nothing held, else. */
static int pb_getbuf(PyObject *o, Py_buffer *v, Py_ssize_t isz, const char *formats, int ndim,
                     int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(o, v, flags) < 0) return -1;
    const char *f = v->format ? v->format : "B";
    size_t fl = strlen(f);
    int fmtok = fl > 0 && strchr(formats, f[fl - 1]) != NULL;
    Py_ssize_t s = v->itemsize;
    int sizeok = isz ? s == isz : (s == 1 || s == 2 || s == 4 || s == 8);
    if (!fmtok || !sizeok || (ndim >= 0 && v->ndim != ndim)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected a contiguous array (%d dimensions, -1: any) of %zd-byte "
                     "elements of format '%s'", name, ndim, isz, formats);
        PyBuffer_Release(v);
        return -1;
    }
    return 0;
}

static int pb_fail(const char *msg) {
    PyErr_SetString(PyExc_ValueError, msg);
    return -1;
}

#endif
