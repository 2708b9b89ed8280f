"""numpy's float64 results, bit for bit, in numba: pairwise summation in numpy's order, code
lengths, entropies, quantiles and means.

Why exact: the encoder's choices (clusterings, table sizes) follow from these floats, and the
golden vectors (``spec/vectors``) pin its output bytes; compiled code that added the same terms
in another order could pick another clustering. Each kernel says which numpy expression it
reproduces; ``property_tests/test_encoder_kernels.py`` compares them. The kernels that Python
calls have C ports (``native/enc_cluster.h``, the same float64 bits:
``property_tests/test_native_cluster.py``), which serve them unless ``BIGSMALL_NATIVE=0``.
"""

from __future__ import annotations

import numpy as np

from ..native.jit import NativeFirst, njit  # numba imported on first use (native/jit.py)
from .decode_tables import stable_order


@njit(nogil=True, cache=True, inline="always")
def _block_sum(a, lo, n):
    """numpy's pairwise summation of ``a[lo:lo + n]`` for ``n <= 128``: plain below 8 terms,
    else eight interleaved accumulators combined as a tree, then the tail."""
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = lo + 8
    end = lo + n - n % 8
    while i < end:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < lo + n:
        res += a[i]
        i += 1
    return res


@njit(nogil=True, cache=True)
def _pairwise_sum(a, lo, n):
    """numpy's sum of the contiguous float64 ``a[lo:lo + n]``, in numpy's order (its pairwise
    summation: blocks of up to 128 terms, ``_block_sum``, and above that the sum of the two
    halves, the first a multiple of 8 long), without the leading ``0.0 +``: so that the
    compiled cost code adds exactly what ``ndarray.sum`` adds and the encoder keeps choosing
    the same clusterings (the golden vectors pin its bytes).

    The halving runs on an explicit stack: numba's cache cannot reload recursive functions
    (the process crashes)."""
    if n <= 128:
        return _block_sum(a, lo, n)
    # work items (lo, n, combine?) and a stack of finished sums; depth <= 3 log2(n) < 192
    w_lo = np.empty(192, dtype=np.int64)
    w_n = np.empty(192, dtype=np.int64)
    w_join = np.empty(192, dtype=np.bool_)
    vals = np.empty(192, dtype=np.float64)
    sp = 1
    vp = 0
    w_lo[0] = lo
    w_n[0] = n
    w_join[0] = False
    while sp > 0:
        sp -= 1
        l0 = w_lo[sp]
        m = w_n[sp]
        if w_join[sp]:  # both halves done: left + right, as numpy's recursion adds them
            vals[vp - 2] = vals[vp - 2] + vals[vp - 1]
            vp -= 1
        elif m <= 128:
            vals[vp] = _block_sum(a, l0, m)
            vp += 1
        else:
            n2 = m // 2
            n2 -= n2 % 8
            w_lo[sp] = l0
            w_n[sp] = m
            w_join[sp] = True
            w_lo[sp + 1] = l0 + n2  # the right half, done after the left
            w_n[sp + 1] = m - n2
            w_join[sp + 1] = False
            w_lo[sp + 2] = l0
            w_n[sp + 2] = n2
            w_join[sp + 2] = False
            sp += 3
    return vals[0]


@njit(nogil=True, cache=True)
def _code_lengths_kernel(table):
    """``-log2(t / t.sum(axis=-1, keepdims=True))`` with ``t = table + 0.05``, row by row,
    with numpy's summation order (``0.0 +`` its pairwise sum): the same float64 bits."""
    k, w = table.shape
    t = np.empty(w, dtype=np.float64)
    out = np.empty((k, w), dtype=np.float64)
    for r in range(k):
        for b in range(w):
            t[b] = np.float64(table[r, b]) + 0.05
        s = 0.0 + _pairwise_sum(t, 0, w)
        for b in range(w):
            out[r, b] = -np.log2(t[b] / s)
    return out


# the C port (native/enc_cluster.h) for calls from Python; ``_reassign`` (numba) calls the kernel
_code_lengths_first = NativeFirst("code_lengths", _code_lengths_kernel)


def _code_lengths(table: np.ndarray) -> np.ndarray:
    """Code lengths (bits) of every symbol in every row of a count table, smoothed so unseen
    symbols cost finitely: ``-log2(t / t.sum(axis=-1))`` with ``t = table + 0.05``."""
    return _code_lengths_first(np.ascontiguousarray(table))  # type: ignore[no-any-return]


@njit(nogil=True, cache=True, native="entropy_rows")  # C port: native/enc_cluster.h
def _entropy_rows(table):
    """(Σ over rows of the row's entropy times its count in bits, number of non-zero entries) of
    an integer count table: per row ``-(c * np.log2(c / c.sum())).sum()`` over its non-zero
    counts ``c`` (as float64), rows added left to right from 0.0 -- numpy's and Python's
    order of additions, so the same float64 as that numpy code."""
    k, w = table.shape
    c = np.empty(w, dtype=np.float64)
    terms = np.empty(w, dtype=np.float64)
    total = 0.0
    present = 0
    for r in range(k):
        m = 0
        for b in range(w):
            v = table[r, b]
            if v > 0:
                c[m] = np.float64(v)
                m += 1
        present += m
        if m == 0:
            continue  # an empty row adds 0.0
        s = 0.0 + _pairwise_sum(c, 0, m)  # integer counts: exact in any order anyway
        for t in range(m):
            terms[t] = c[t] * np.log2(c[t] / s)
        total += -(0.0 + _pairwise_sum(terms, 0, m))
    return total, present


@njit(nogil=True, cache=True)
def _quantiles(values, qs):
    """``np.quantile(values, qs)``, numpy's default ("linear") method computed as numpy
    computes it (virtual index ``(n - 1) q``, its two-sided interpolation), so the start maps,
    and what the encoder chooses from them, stay the same."""
    n = values.shape[0]
    order = stable_order(values, np.arange(n))  # not np.sort: ~2.5 s more of a first compile
    srt = np.empty(n, dtype=np.float64)
    for t in range(n):
        srt[t] = values[order[t]]
    q = np.empty(qs.shape[0], dtype=np.float64)
    for t in range(qs.shape[0]):
        v = (n - 1) * qs[t]
        prev = np.floor(v)
        gamma = v - prev
        if v >= n - 1:
            a = srt[n - 1]
            b = a
        elif v < 0:
            a = srt[0]
            b = a
        else:
            a = srt[int(prev)]
            b = srt[int(prev) + 1]
        d = b - a
        q[t] = b - d * (1 - gamma) if gamma >= 0.5 else a + d * gamma
    return q


@njit(nogil=True, cache=True, native="quantile_map")  # C port: native/enc_cluster.h
def _quantile_map(values, qs):
    """``np.searchsorted(np.quantile(values, qs), values)`` (side "left": the number of
    quantiles below each value)."""
    q = _quantiles(values, qs)
    out = np.empty(values.shape[0], dtype=np.int64)
    for i in range(values.shape[0]):
        c = 0
        for t in range(q.shape[0]):
            c += q[t] < values[i]
        out[i] = c
    return out


@njit(nogil=True, cache=True, native="line_means")  # C port: native/enc_cluster.h
def _line_means(sym, axis):
    """``sym.mean(axis=axis)`` of an unsigned integer matrix: sums are integers (exact in any
    order below 2**53), one division each, as numpy does."""
    nr, nc = sym.shape
    acc = np.zeros(nc if axis == 0 else nr, dtype=np.int64)
    for i in range(nr):
        for j in range(nc):
            acc[j if axis == 0 else i] += sym[i, j]
    out = np.empty(acc.shape[0], dtype=np.float64)
    n = nr if axis == 0 else nc
    for t in range(acc.shape[0]):
        out[t] = np.float64(acc[t]) / n
    return out
