"""Counting kernels over a tensor's bit fields and symbol matrices (numba): the (context,
symbol) count table the coders' tables are built from, and one-pass versions of numpy one-liners
(bit-field extraction, ``bincount``, ``table[sym]``, per-line counts) that skip numpy's
temporaries and int64 copies of the keys. Integer results: the same as the numpy they replace.
"""

from __future__ import annotations

import numpy as np

from ..native.jit import njit  # numba imported on first use (native/jit.py)
from .loads import ld, st


@njit(nogil=True, cache=True, native="ctx_table")  # C port: native/enc_count.h
def _ctx_table(sym, rows, cols, kc, nctx, alpha):
    """Counts per (context, symbol); two sub-tables (even and odd columns) for the same
    reason as in ``lloyd._hist``. One flat table with the column's offset precomputed: a single
    index computation per element (~15 % faster than the 2-d ``acc[ctx, s]``)."""
    nr, nc = sym.shape
    w = nctx * alpha
    acc = np.zeros(2 * w, dtype=np.int64)
    cb = np.empty(nc, dtype=np.int64)
    for j in range(nc):
        cb[j] = (cols[j] + (j & 1) * nctx) * alpha
    for i in range(nr):
        base = rows[i] * kc * alpha
        for j in range(nc):  # unchecked loads/stores: maps below their cluster counts, sym < alpha
            b = base + ld(cb, j) + sym[i, j]
            st(acc, b, ld(acc, b) + 1)
    out = np.empty((nctx, alpha), dtype=np.int64)
    for c in range(nctx):
        for a in range(alpha):
            out[c, a] = acc[c * alpha + a] + acc[w + c * alpha + a]
    return out


@njit(nogil=True, cache=True, native="bit_field")  # C port: native/enc_count.h
def _bit_field(values, shift, bits):
    """``((values >> shift) & (2**bits - 1)).astype(np.uint16)`` in one pass (``bits <= 16``),
    for ``field``: numpy makes two temporaries of the tensor and a copy."""
    n = values.shape[0]
    out = np.empty(n, dtype=np.uint16)
    mask = (1 << bits) - 1
    for t in range(n):
        out[t] = np.uint16((np.int64(values[t]) >> shift) & mask)
    return out


@njit(nogil=True, cache=True, native="field_counts")  # C port: native/enc_count.h
def _field_counts(values, shift, bits):
    """``np.bincount((values >> shift) & (2**bits - 1), minlength=2**bits)`` without numpy's
    int64 copy of the keys (four sub-counts, as in ``lloyd._hist``)."""
    size = 1 << bits
    mask = size - 1
    acc = np.zeros((4, size), dtype=np.int64)
    for t in range(values.shape[0]):
        acc[t & 3, (np.int64(values[t]) >> shift) & mask] += 1
    return acc[0] + acc[1] + acc[2] + acc[3]


@njit(nogil=True, cache=True)
def _row_or(values, mask, nrows, ncols):
    """Per row of the ``nrows x ncols`` matrix ``values``: OR of ``v & mask`` (uint64)."""
    out = np.zeros(nrows, dtype=np.uint64)
    m = np.uint64(mask)
    for i in range(nrows):
        acc = np.uint64(0)
        for j in range(i * ncols, (i + 1) * ncols):
            acc |= np.uint64(values[j]) & m
        out[i] = acc
    return out


@njit(nogil=True, cache=True, native="row_low_zeros")  # C port: native/enc_count.h
def _row_low_zeros(values, p, nrows, ncols):
    """Per row of the ``nrows x ncols`` matrix ``values``: how many of the low ``p`` bits are
    zero in every element (``p`` when all are): the trailing zeros of the OR of ``v & (2**p -
    1)`` over the row, capped at ``p`` (int64)."""
    acc = _row_or(values, (1 << p) - 1, nrows, ncols)
    out = np.empty(nrows, dtype=np.int64)
    for i in range(nrows):
        a = acc[i]
        z = 0
        while z < p and ((a >> np.uint64(z)) & np.uint64(1)) == 0:
            z += 1
        out[i] = z
    return out


@njit(nogil=True, cache=True, native="more_distinct_than")  # C port: native/enc_count.h
def _more_distinct_than(values, limit):
    """Whether ``values`` (unsigned integers) hold more than ``limit`` distinct values, i.e.
    ``np.unique(values).size > limit``, stopping at the first value past the limit (an open
    addressing set of at least 4 x limit slots)."""
    size = 16
    while size < 4 * (limit + 1):
        size *= 2
    slots = np.zeros(size, dtype=np.uint64)
    used = np.zeros(size, dtype=np.bool_)
    mask = size - 1
    n = 0
    for t in range(values.shape[0]):
        v = np.uint64(values[t])
        h = np.int64(((v * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & np.uint64(mask))
        while used[h] and slots[h] != v:
            h = (h + 1) & mask
        if not used[h]:
            used[h] = True
            slots[h] = v
            n += 1
            if n > limit:
                return True
    return False


@njit(nogil=True, cache=True, native="symbol_counts")  # C port: native/enc_glue.h
def _symbol_counts(sym, alpha):
    """``np.bincount(sym.ravel(), minlength=alpha)`` of a 2-d unsigned matrix, without numpy's
    int64 copy of the matrix (four sub-counts, as in ``lloyd._hist``); an empty result if a symbol
    is ``>= alpha``."""
    nr, nc = sym.shape
    acc = np.zeros((4, alpha), dtype=np.int64)
    bad = False
    for i in range(nr):
        for j in range(nc):
            s = sym[i, j]
            if s >= alpha:
                bad = True
            else:
                acc[j & 3, s] += 1
    if bad:
        return np.zeros(0, dtype=np.int64)
    return acc[0] + acc[1] + acc[2] + acc[3]


@njit(nogil=True, cache=True, native="lookup")  # C port: native/enc_glue.h
def _lookup(sym, table):
    """``table[sym]`` for a 2-d matrix of indices (numpy would first copy them to int64)."""
    nr, nc = sym.shape
    out = np.empty((nr, nc), dtype=table.dtype)
    for i in range(nr):
        for j in range(nc):
            out[i, j] = table[sym[i, j]]
    return out


@njit(nogil=True, cache=True, native="line_counts")  # C port: native/enc_glue.h
def _line_counts(sym, axis, alpha):
    """Symbol counts of every row (``axis`` 0) or column (1) of ``sym``: int64[lines, alpha]."""
    nr, nc = sym.shape
    out = np.zeros((nr if axis == 0 else nc, alpha), dtype=np.int64)
    for i in range(nr):
        for j in range(nc):
            out[i if axis == 0 else j, sym[i, j]] += 1
    return out


@njit(nogil=True, cache=True, native="sum_lines")  # C port: native/enc_glue.h
def _sum_lines(counts, labels, k):
    """out[c] = sum of the rows i of ``counts`` with labels[i] == c (int64)."""
    out = np.zeros((k, counts.shape[1]), dtype=np.int64)
    for i in range(counts.shape[0]):
        c = labels[i]
        for b in range(counts.shape[1]):
            out[c, b] += counts[i, b]
    return out
