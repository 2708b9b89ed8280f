"""Context modelling: group rows and columns of a weight matrix by their symbol statistics.

Why: a weight matrix's exponents are not identically distributed — output channels (rows) and
input channels (columns) have their own scales. Coding each element with the table of its
(row cluster, column cluster) beats the single per-tensor table (the order-0 floor) as long as
the side information (cluster maps and extra tables) costs less than it saves. The encoder
measures that trade-off and picks the cheapest grid, including "no clustering".

The clustering is Lloyd's algorithm with code length as the distance: assign each row to the
cluster whose table codes it in the fewest bits, re-estimate tables, repeat; alternately for
columns. Fitting runs on a strided sample of the matrix so its cost stays bounded on huge
tensors; the final tables are always counted on every element.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import numpy as np
from numba import njit

from .decode_tables import stable_order
from .loads import ld, st

SAMPLE_SIDE = 768  # rows/columns kept in the fitting sample
COST_SAMPLE = 1 << 21  # elements (about) on which candidate clusterings are compared
ITERATIONS = 6
TABLE_ENTRY_BITS = 8.0  # side information per present (context, symbol) pair, see tables.py


@attrs.frozen
class Clustering:
    """Row and column cluster maps; contexts are ``row_map[i] * kc + col_map[j]``."""

    kr: int
    kc: int
    row_map: np.ndarray  # uint8[nrows]
    col_map: np.ndarray  # uint8[ncols]

    @property
    def n_contexts(self) -> int:
        return self.kr * self.kc

    def row_ctx(self) -> np.ndarray:
        return self.row_map.astype(np.int64) * self.kc

    def col_ctx(self) -> np.ndarray:
        return self.col_map.astype(np.int64)


def trivial(nrows: int, ncols: int) -> Clustering:
    return Clustering(1, 1, np.zeros(nrows, np.uint8), np.zeros(ncols, np.uint8))


@njit(nogil=True, cache=True)
def _hist(sym, other, k_other, alpha):
    """hist[i, other[j] * alpha + sym[i, j]] += 1: per-row histograms split by the other axis.

    Counted in int32 and copied out as float64 (the callers' type): integer counts are exact in
    either type, so the result is the same. Four sub-histograms, one per ``j % 4``, summed at
    the end of the row: exponents are concentrated on a few values, and consecutive increments
    of one counter wait for each other's store; four counters let them overlap (~2x).
    """
    nr, nc = sym.shape
    w = k_other * alpha
    out = np.empty((nr, w), dtype=np.float64)
    base = np.empty(nc, dtype=np.int64)
    for j in range(nc):
        base[j] = other[j] * alpha + (j & 3) * w
    row = np.zeros(4 * w, dtype=np.int32)
    for i in range(nr):
        for j in range(nc):
            row[base[j] + sym[i, j]] += 1
        for b in range(w):
            out[i, b] = row[b] + row[w + b] + row[2 * w + b] + row[3 * w + b]
            row[b] = 0
            row[w + b] = 0
            row[2 * w + b] = 0
            row[3 * w + b] = 0
    return out


@njit(nogil=True, cache=True)
def _hist_move(sym, hist, moved, old, new, alpha):
    """Update ``_hist(sym, old, ...)`` in place to ``_hist(sym, new, ...)`` when only the lines
    ``moved`` of the other axis changed cluster: subtract their counts from the old cluster's
    bins and add them to the new one's (exact: integer counts in float64)."""
    for i in range(sym.shape[0]):
        for t in range(moved.shape[0]):
            j = moved[t]
            s = sym[i, j]
            hist[i, old[j] * alpha + s] -= 1.0
            hist[i, new[j] * alpha + s] += 1.0
    return hist


@njit(nogil=True, cache=True)
def _ctx_table(sym, rows, cols, kc, nctx, alpha):
    """Counts per (context, symbol); two sub-tables (even and odd columns) for the same
    reason as in ``_hist``. One flat table with the column's offset precomputed: a single
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


@njit(nogil=True, cache=True)
def _sum_rows(hist, labels, k):
    """out[c] = sum of the rows i of ``hist`` with labels[i] == c (exact: integer counts)."""
    out = np.zeros((k, hist.shape[1]), dtype=np.float64)
    for i in range(hist.shape[0]):
        c = labels[i]
        for b in range(hist.shape[1]):
            out[c, b] += hist[i, b]
    return out


@njit(nogil=True, cache=True)
def _argmin_cost_any(hist, lengths):
    """``_argmin_cost`` for any number of clusters (``_argmin_cost`` handles up to ``KMAX``).

    argmin over clusters c of hist[i] . lengths[c], for every row i (first minimum wins).

    Each row's non-zero bins are gathered once, and the clusters' sums advance together over
    them: every sum still adds the same terms in the same (ascending) order as a dense loop
    that skips zeros, so the sums, and the chosen clusters, are bit-for-bit those of the dense
    loop, but the k additions of one step are independent, which lets the CPU overlap them
    (one cluster at a time, each addition waits for the previous one).
    """
    nr, w = hist.shape
    k = lengths.shape[0]
    out = np.zeros(nr, dtype=np.int64)
    idx = np.empty(w, dtype=np.int64)
    val = np.empty(w, dtype=np.float64)
    lt = np.ascontiguousarray(lengths.T)  # [bin, cluster]: one step's k lengths side by side
    s = np.empty(k, dtype=np.float64)
    for i in range(nr):
        m = 0
        for b in range(w):
            h = hist[i, b]
            if h != 0.0:
                idx[m] = b
                val[m] = h
                m += 1
        s[:] = 0.0
        for t in range(m):
            v = val[t]
            b = idx[t]
            for c in range(k):
                s[c] += v * lt[b, c]
        best = np.inf
        for c in range(k):
            if s[c] < best:
                best = s[c]
                out[i] = c
    return out


KMAX = 8  # clusters per axis that the unrolled kernels handle (``choose`` never tries more)


@njit(nogil=True, cache=True)
def _padded_lengths(lengths):
    """``lengths.T`` padded with zeros to ``KMAX`` clusters: one step's lengths side by side."""
    k, w = lengths.shape
    lt = np.zeros((w, KMAX), dtype=np.float64)
    for c in range(k):
        for b in range(w):
            lt[b, c] = lengths[c, b]
    return lt


@njit(nogil=True, cache=True)
def _argmin_cost(hist, lengths):
    """argmin over clusters c of hist[i] . lengths[c], for every row i (first minimum wins).

    Each row's non-zero bins are gathered once (branch-free: whether a bin is empty is a coin
    toss for the branch predictor), and the clusters' sums advance together over them, as
    eight scalar accumulators (padding clusters have zero lengths and are never compared):
    every sum still adds the same terms in the same (ascending) order as a dense loop that
    skips zeros, so the sums, and the chosen clusters, are bit-for-bit those of the dense loop
    (``_argmin_cost_any``), but the additions of one step are independent and sit in
    registers, which lets the CPU overlap (and vectorise) them.
    """
    k = lengths.shape[0]
    if k > KMAX:
        return _argmin_cost_any(hist, lengths)
    nr, w = hist.shape
    out = np.zeros(nr, dtype=np.int64)
    idx = np.empty(w + 1, dtype=np.int64)
    val = np.empty(w + 1, dtype=np.float64)
    lt = _padded_lengths(lengths)
    for i in range(nr):
        m = 0
        for b in range(w):
            h = hist[i, b]
            idx[m] = b
            val[m] = h
            m += h != 0.0
        out[i] = _best_cluster(idx, val, m, lt, k)
    return out


@njit(nogil=True, cache=True, inline="always")
def _best_cluster(idx, val, m, lt, k):
    """First c < k minimising sum_t val[t] * lt[idx[t], c] (see ``_argmin_cost``)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for t in range(m):
        v = val[t]
        b = idx[t]
        s0 += v * lt[b, 0]
        s1 += v * lt[b, 1]
        s2 += v * lt[b, 2]
        s3 += v * lt[b, 3]
        s4 += v * lt[b, 4]
        s5 += v * lt[b, 5]
        s6 += v * lt[b, 6]
        s7 += v * lt[b, 7]
    s = (s0, s1, s2, s3, s4, s5, s6, s7)
    best = np.inf
    out = 0
    for c in range(k):
        if s[c] < best:
            best = s[c]
            out = c
    return out


@njit(nogil=True, cache=True)
def _assign_rows(sym, other, k_other, alpha, lengths):
    """``_argmin_cost(_hist(sym, other, k_other, alpha), lengths)`` without the histogram matrix.

    Why: on a whole matrix (``_assign``) that float64 matrix is rows x (clusters x alphabet),
    tens of MB for MiniLM's embedding, written once and read once; here each row's histogram is
    counted (same four sub-histograms as ``_hist``), gathered and costed while it is in L1.
    Same integer counts, same sums in the same order: the same clusters.
    """
    k = lengths.shape[0]
    if k > KMAX:
        return _argmin_cost_any(_hist(sym, other, k_other, alpha), lengths)
    nr, nc = sym.shape
    w = k_other * alpha
    out = np.zeros(nr, dtype=np.int64)
    base = np.empty(nc, dtype=np.int64)
    for j in range(nc):
        base[j] = other[j] * alpha + (j & 3) * w
    row = np.zeros(4 * w, dtype=np.int32)
    tot = np.empty(w, dtype=np.int32)
    idx = np.empty(w + 1, dtype=np.int64)
    val = np.empty(w + 1, dtype=np.float64)
    lt = _padded_lengths(lengths)
    for i in range(nr):
        for j in range(nc):  # unchecked loads/stores (~15 %): ``other < k_other``, ``sym < alpha``
            b = ld(base, j) + sym[i, j]
            st(row, b, ld(row, b) + 1)
        # sum and clear in plain loops (vectorised), then gather: ~20 % faster than one loop
        for b in range(w):
            tot[b] = row[b] + row[w + b] + row[2 * w + b] + row[3 * w + b]
        row[:] = 0
        m = 0
        for b in range(w):
            h = tot[b]
            idx[m] = b
            val[m] = h
            m += h != 0
        out[i] = _best_cluster(idx, val, m, lt, k)
    return out


@njit(nogil=True, cache=True)
def _bit_field(values, shift, bits):
    """``((values >> shift) & (2**bits - 1)).astype(np.uint16)`` in one pass (``bits <= 16``),
    for ``field``: numpy makes two temporaries of the tensor and a copy."""
    n = values.shape[0]
    out = np.empty(n, dtype=np.uint16)
    mask = (1 << bits) - 1
    for t in range(n):
        out[t] = np.uint16((np.int64(values[t]) >> shift) & mask)
    return out


@njit(nogil=True, cache=True)
def _field_counts(values, shift, bits):
    """``np.bincount((values >> shift) & (2**bits - 1), minlength=2**bits)`` without numpy's
    int64 copy of the keys (four sub-counts, as in ``_hist``)."""
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


@njit(nogil=True, cache=True)
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


@njit(nogil=True, cache=True)
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


@njit(nogil=True, cache=True)
def _symbol_counts(sym, alpha):
    """``np.bincount(sym.ravel(), minlength=alpha)`` of a 2-d unsigned matrix, without numpy's
    int64 copy of the matrix (four sub-counts, as in ``_hist``); an empty result if a symbol
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


@njit(nogil=True, cache=True)
def _lookup(sym, table):
    """``table[sym]`` for a 2-d matrix of indices (numpy would first copy them to int64)."""
    nr, nc = sym.shape
    out = np.empty((nr, nc), dtype=table.dtype)
    for i in range(nr):
        for j in range(nc):
            out[i, j] = table[sym[i, j]]
    return out


@njit(nogil=True, cache=True)
def _line_counts(sym, axis, alpha):
    """Symbol counts of every row (``axis`` 0) or column (1) of ``sym``: int64[lines, alpha]."""
    nr, nc = sym.shape
    out = np.zeros((nr if axis == 0 else nc, alpha), dtype=np.int64)
    for i in range(nr):
        for j in range(nc):
            out[i if axis == 0 else j, sym[i, j]] += 1
    return out


@njit(nogil=True, cache=True)
def _sum_lines(counts, labels, k):
    """out[c] = sum of the rows i of ``counts`` with labels[i] == c (int64)."""
    out = np.zeros((k, counts.shape[1]), dtype=np.int64)
    for i in range(counts.shape[0]):
        c = labels[i]
        for b in range(counts.shape[1]):
            out[c, b] += counts[i, b]
    return out


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


@njit(nogil=True, cache=True)
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


@njit(nogil=True, cache=True)
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


@njit(nogil=True, cache=True)
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


@njit(nogil=True, cache=True)
def _reassign(hist, labels, k):
    """One Lloyd step on one axis: the clusters' tables from the lines' histograms, their code
    lengths, every line to its cheapest cluster (``_argmin_cost``); one call, no GIL held."""
    return _argmin_cost(hist, _code_lengths_kernel(_sum_rows(hist, labels, k)))


def _code_lengths(table: np.ndarray) -> np.ndarray:
    """Code lengths (bits) of every symbol in every row of a count table, smoothed so unseen
    symbols cost finitely: ``-log2(t / t.sum(axis=-1))`` with ``t = table + 0.05``."""
    return _code_lengths_kernel(np.ascontiguousarray(table))


def _init_map(values: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return np.zeros(values.shape[0], np.int64)
    return _quantile_map(values, np.linspace(0.0, 1.0, k + 1)[1:-1])


Memo = dict[tuple[int, ...], np.ndarray]
"""What one matrix's candidates share (``choose``), keyed (tag, parameters...): -1 / -2
transposes, -7 strided copies (column step, row step), -3 / -4 start maps, -5 / -6 line
counts, 0 / 1 one-cluster histograms, 2 first row passes (column clusters)."""


def _memo(memo: Memo | None, key: tuple[int, ...], make: Callable[[], np.ndarray]) -> np.ndarray:
    """``memo[key]``, made by ``make()`` on first use (always made without a memo)."""
    if memo is None:
        return make()
    out = memo.get(key)
    if out is None:
        out = memo[key] = make()
    return out


def _start_map(sym: np.ndarray, axis: int, k: int,
               memo: Memo) -> np.ndarray:
    """``_init_map(sym.mean(axis=axis), k)``, kept in ``memo``: every candidate with ``k``
    clusters on that axis starts from the same map (a copy: ``_fit`` may not change it)."""
    if k == 1:
        return np.zeros(sym.shape[1 - axis], np.int64)
    return _memo(memo, (-3 - axis, k), lambda: _init_map(_line_means(sym, axis), k)).copy()


@njit(nogil=True, cache=True)
def _axis_hist(mat, other, k_other, alpha, shared, have, prev_map, prev_h, own):
    """The histograms of one axis' lines for the other axis' map ``other`` (``_fit``'s pass),
    from the last pass' state (``have``: there is one; ``prev_map``/``prev_h``: its map and
    histograms; ``own``: they may be updated in place). Returns (histograms, their map, own).

    Unchanged map: the last histograms. Fewer than half the lines moved: their counts move
    (integer counts in float64: exactly a recount). One cluster: ``shared`` (every candidate
    with one cluster on the other axis has these; never updated in place). Else count."""
    if have:
        moved = 0
        for j in range(other.shape[0]):
            moved += prev_map[j] != other[j]
        if moved == 0:
            return prev_h, prev_map, own
        if 2 * moved < other.shape[0]:
            idx = np.empty(moved, dtype=np.int64)
            m = 0
            for j in range(other.shape[0]):
                if prev_map[j] != other[j]:
                    idx[m] = j
                    m += 1
            h = _hist_move(mat, prev_h if own else prev_h.copy(), idx, prev_map, other, alpha)
            return h, other.copy(), True
    if k_other == 1:
        return shared, other.copy(), False
    return _hist(mat, other, k_other, alpha), other.copy(), True


@njit(nogil=True, cache=True)
def _lloyd(sym, sym_t, alpha, kr, kc, rows, cols, shared_rows, shared_cols, first_rows,
           iterations):
    """Lloyd iterations from the start maps ``rows``/``cols``: rows to their cheapest row
    cluster given the column map, then columns given the row map, until neither changes or
    ``iterations`` rounds; one compiled call, so the encoder's threads do not wait for the
    GIL between the steps. ``shared_*``: the one-cluster histograms (``_hist`` with the other
    axis all in cluster 0), used when that axis has one cluster; ``first_rows`` (unless
    empty): the rows' histograms for the start column map, which candidates with the same
    column count share (the first row pass then finds its map unchanged and reuses them)."""
    have0 = first_rows.shape[0] > 0
    have1 = False
    map0 = cols.copy()
    map1 = rows.copy()
    h0 = first_rows if have0 else shared_rows
    h1 = shared_cols
    own0 = False
    own1 = False
    for _ in range(iterations):
        prev_rows = rows.copy()
        prev_cols = cols.copy()
        if kr > 1:
            h0, map0, own0 = _axis_hist(sym, cols, kc, alpha, shared_rows, have0, map0, h0, own0)
            have0 = True
            rows = _reassign(h0, rows, kr)
        if kc > 1:
            h1, map1, own1 = _axis_hist(sym_t, rows, kr, alpha, shared_cols, have1, map1, h1,
                                        own1)
            have1 = True
            cols = _reassign(h1, cols, kc)
        same = True
        for i in range(rows.shape[0]):
            if rows[i] != prev_rows[i]:
                same = False
        for j in range(cols.shape[0]):
            if cols[j] != prev_cols[j]:
                same = False
        if same:
            break
    return rows, cols


def _fit(sym: np.ndarray, alpha: int, kr: int, kc: int,
         memo: Memo | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd iterations on a (sample) symbol matrix; returns (row map, col map).

    ``sym`` should be small and C-contiguous; the column pass works on a contiguous transpose so
    both histogram passes stream through memory. A pass whose other axis' map did not change
    since the last pass reuses that pass' histograms instead of counting again (and when only a
    few lines changed cluster, moves just their counts: after the first iterations few do, and
    the counts are integers, so the result is exactly a recount), and ``memo``
    (one per matrix) keeps the transpose and the histograms of the one-cluster maps, which
    every candidate with one row or column cluster shares; the results are the same."""
    if memo is None:
        memo = {}
    sym_t = _memo(memo, (-1, 0), lambda: np.ascontiguousarray(sym.T))

    def one_cluster(mat: np.ndarray) -> np.ndarray:  # the other axis all in cluster 0
        return _hist(mat, np.zeros(mat.shape[1], np.int64), 1, alpha)

    none = np.zeros((0, 0), np.float64)
    shared_rows = shared_cols = none
    if kr > 1 and kc == 1:
        shared_rows = _memo(memo, (0, 1), lambda: one_cluster(sym))
    if kc > 1 and kr == 1:
        shared_cols = _memo(memo, (1, 1), lambda: one_cluster(sym_t))
    rows = _start_map(sym, 1, kr, memo)
    cols = _start_map(sym, 0, kc, memo)
    first = none
    if kr > 1 and kc > 1:  # the first row pass: the same for every candidate with kc columns
        first = _memo(memo, (2, kc), lambda: _hist(sym, cols, kc, alpha))
    return _lloyd(sym, sym_t, alpha, kr, kc, rows, cols, shared_rows, shared_cols, first,
                  ITERATIONS)


def _assign(sym: np.ndarray, alpha: int, other: np.ndarray, k_other: int, lengths: np.ndarray) -> np.ndarray:
    """Assign every row of ``sym`` given the other axis' map and per-cluster code lengths."""
    return _assign_rows(sym, other, k_other, alpha, lengths)


def context_cost_bits(sym: np.ndarray, alpha: int, cl: Clustering, row_step: int = 1,
                      memo: Memo | None = None) -> float:
    """Estimated coded size of ``sym`` under ``cl``: entropy + tables + maps, in bits.

    With ``row_step`` > 1 the entropy is measured on every row_step-th row and scaled up.
    With ``memo`` (one per matrix), a clustering with one column (row) cluster sums per-row
    (per-column) symbol counts that every such candidate shares, instead of counting the
    matrix again: the same integer table.
    """
    return _cost_bits(sym, alpha, cl.kr, cl.kc, cl.row_map[::row_step], cl.col_map, row_step,
                      memo)


def _cost_bits(sym: np.ndarray, alpha: int, kr: int, kc: int, sub_rows: np.ndarray,
               cols: np.ndarray, row_step: int,
               memo: Memo | None) -> float:
    """``context_cost_bits`` from the row map of the measured rows only (``sub_rows``: the
    clusters of rows 0, row_step, 2 row_step, ...): all that the estimate reads, so a
    candidate need not assign the other rows (``choose``)."""
    sub = sym[::row_step]
    nctx = kr * kc
    if memo is not None and (kr == 1 or kc == 1):
        axis = 0 if kc == 1 else 1
        counts = _memo(memo, (-5 - axis, row_step), lambda: _line_counts(sub, axis, alpha))
        labels = sub_rows if axis == 0 else cols
        table = _sum_lines(counts, labels.astype(np.int64), nctx)
    else:
        table = _ctx_table(sub, sub_rows.astype(np.int64), cols.astype(np.int64), kc, nctx,
                           alpha)
    ent, present = _entropy_rows(table)
    bits = ent * (sym.shape[0] / max(sub.shape[0], 1))
    side = float(present) * TABLE_ENTRY_BITS
    if kr > 1:
        side += sym.shape[0] * np.log2(kr)
    if kc > 1:
        side += sym.shape[1] * np.log2(kc)
    return bits + side


def choose(sym: np.ndarray, alpha: int, max_contexts: int = 64) -> Clustering:
    """Pick the cheapest clustering of the symbol matrix ``sym`` (int64[nrows, ncols]).

    Greedy over the grid: from 1x1, keep doubling the row or column cluster count, whichever
    lowers the estimated size more, until neither does. A candidate assigns only the rows that
    its cost estimate reads (every ``cost_step``-th); the winner's other rows are assigned at
    the end. Rows are assigned independently of each other, so the maps and the choice are
    those of assigning every row of every candidate, at a fraction of the cost on large
    matrices (the losing candidates' full-matrix row passes are skipped: MiniLM's embedding
    0.29 -> 0.20 s CPU).
    """
    nr, nc = sym.shape
    best = trivial(nr, nc)
    if sym.size < 4096:
        return best
    # compact the alphabet to the symbols present: histograms get several times smaller
    counts = _symbol_counts(sym, alpha)
    if counts.shape[0] != alpha:  # a symbol outside the alphabet (not from ``field``)
        counts = np.bincount(sym.ravel(), minlength=alpha)
    present = np.flatnonzero(counts)
    remap = np.zeros(counts.shape[0], np.uint8 if present.size <= 256 else np.uint16)
    remap[present] = np.arange(present.size)
    sym = _lookup(sym, remap)  # a small-typed lookup: no int64 copy of the matrix
    alpha = max(int(present.size), 1)
    cost_step = max(1, sym.size // COST_SAMPLE)
    memo: Memo = {}
    best_cost = context_cost_bits(sym, alpha, best, cost_step, memo)
    best_fit: _Candidate | None = None
    rstep = max(1, nr // SAMPLE_SIDE)
    cstep = max(1, nc // SAMPLE_SIDE)
    small = np.uint8 if alpha <= 256 else np.uint16
    sample = np.ascontiguousarray(sym[::rstep, ::cstep], dtype=small)
    tried: dict[tuple[int, int], float] = {}
    kr0, kc0 = 1, 1
    while True:
        moves = [(kr0 * 2, kc0), (kr0, kc0 * 2)]
        improved = False
        for kr, kc in moves:
            if (kr, kc) in tried or kr * kc > max_contexts or kr > nr or kc > nc or max(kr, kc) > 8:
                continue
            fit = _fit_candidate(sym, sample, alpha, kr, kc, rstep, cstep, cost_step, memo)
            tried[(kr, kc)] = fit.cost
            if fit.cost < best_cost:
                best_fit, best_cost, improved = fit, fit.cost, True
        if best_fit is None:
            return best
        if not improved:
            return _complete(sym, alpha, best_fit, cstep)
        kr0, kc0 = best_fit.kr, best_fit.kc


@attrs.frozen
class _Candidate:
    """A fitted clustering whose row map covers only the rows its cost reads (``rows``: the
    clusters of rows 0, step, 2 step, ...; every row when ``step`` is 1); ``lengths``: the
    code lengths that assign the others (``_complete``)."""

    kr: int
    kc: int
    rows: np.ndarray
    step: int
    cols: np.ndarray
    lengths: np.ndarray | None
    cost: float


def _complete(sym: np.ndarray, alpha: int, fit: _Candidate, cstep: int) -> Clustering:
    """The winner's full clustering: its rows not yet assigned get their clusters now."""
    rows = fit.rows
    if fit.step > 1:
        if fit.lengths is None:  # one row cluster: every row is in it
            rows = np.zeros(sym.shape[0], np.int64)
        else:
            rows = _assign(sym[:, ::cstep], alpha, fit.cols[::cstep], fit.kc, fit.lengths)
    return Clustering(fit.kr, fit.kc, rows.astype(np.uint8), fit.cols.astype(np.uint8))


def _fit_candidate(
    sym: np.ndarray, sample: np.ndarray, alpha: int, kr: int, kc: int, rstep: int, cstep: int,
    cost_step: int, memo: Memo | None = None,
) -> _Candidate:
    """Fit on the sample, extend the column map to the whole matrix and the row map to the
    rows the cost estimate reads (every ``cost_step``-th), and cost it."""
    nr, nc = sym.shape
    srows, scols = _fit(sample, alpha, kr, kc, memo)
    # the sample's context table, for both extensions below (counted once)
    table = None
    if kr * kc > 1 and (rstep > 1 or cstep > 1):
        table = _ctx_table(sample, srows, scols, kc, kr * kc, alpha)
    # extend the sample's maps to the full matrix: columns from the sampled rows, then rows
    if kc > 1:
        if cstep == 1:
            cols = scols
        else:
            assert table is not None
            lengths = _code_lengths(
                table.reshape(kr, kc, alpha).transpose(1, 0, 2).reshape(kc, kr * alpha)
            )
            # the sampled rows' transpose, contiguous: the same for every candidate, and
            # counting a strided view costs more than copying it once
            sub_t = _memo(memo, (-2, rstep), lambda: np.ascontiguousarray(sym[::rstep].T))
            cols = _assign(sub_t, alpha, srows, kr, lengths)
    else:
        cols = np.zeros(nc, np.int64)
    row_lengths = None
    step = cost_step
    if kr > 1:
        if rstep == 1 and cstep == 1:
            rows = srows
            step = 1
        else:
            assert table is not None
            row_lengths = _code_lengths(table.reshape(kr, kc * alpha))
            # the rows the cost reads, on the sampled columns: the same for every candidate
            sub = _memo(memo, (-7, cstep, cost_step),
                        lambda: np.ascontiguousarray(sym[::cost_step, ::cstep]))
            rows = _assign(sub, alpha, cols[::cstep], kc, row_lengths)
    else:
        rows = np.zeros(-(-nr // cost_step), np.int64)
    sub_rows = rows[::cost_step] if step == 1 else rows
    cost = _cost_bits(sym, alpha, kr, kc, sub_rows.astype(np.uint8), cols.astype(np.uint8),
                      cost_step, memo)
    return _Candidate(kr, kc, rows, step, cols, row_lengths, cost)
