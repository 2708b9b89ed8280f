"""Lloyd's algorithm with code length as the distance: fit row and column cluster maps of a
symbol matrix for ``context.choose``.

Assign each row to the cluster whose table codes it in the fewest bits, re-estimate the tables,
repeat; alternately for columns. The histograms and the assignment are compiled (numba) and one
call runs every iteration, so the encoder's threads do not wait for the GIL between the steps.
The kernels that Python calls (``_hist``, ``_assign_rows``, ``_lloyd``) have C ports
(``native/enc_cluster.h``, ``enc_lloyd.h``: the same clusterings, bit for bit,
``property_tests/test_native_cluster.py``) that serve them unless ``BIGSMALL_NATIVE=0``: a
default-level compress then compiles no numba kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..native.jit import NativeFirst, njit  # numba imported on first use (native/jit.py)
from .loads import ld, st
from .numpy_exact import _code_lengths_kernel, _line_means, _quantile_map

ITERATIONS = 6  # Lloyd rounds at most (``_lloyd`` stops earlier when neither map changes)

KMAX = 8  # clusters per axis that the unrolled kernels handle (``context.choose`` never tries more)


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


# the C port (native/enc_cluster.h) for calls from Python; numba kernels call ``_hist`` itself
_hist_first = NativeFirst("hist", _hist)


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


@njit(nogil=True, cache=True, native="assign_rows")  # C port: native/enc_cluster.h
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
def _reassign(hist, labels, k):
    """One Lloyd step on one axis: the clusters' tables from the lines' histograms, their code
    lengths, every line to its cheapest cluster (``_argmin_cost``); one call, no GIL held."""
    return _argmin_cost(hist, _code_lengths_kernel(_sum_rows(hist, labels, k)))


def _init_map(values: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return np.zeros(values.shape[0], np.int64)
    return _quantile_map(values, np.linspace(0.0, 1.0, k + 1)[1:-1])


Memo = dict[tuple[int, ...], np.ndarray]
"""What one matrix's candidates share (``context.choose``), keyed (tag, parameters...): -1 / -2
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


@njit(nogil=True, cache=True, native="lloyd")  # C port: native/enc_cluster.h
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
        return _hist_first(mat, np.zeros(mat.shape[1], np.int64), 1, alpha)  # type: ignore[no-any-return]

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
        first = _memo(memo, (2, kc), lambda: _hist_first(sym, cols, kc, alpha))
    return _lloyd(sym, sym_t, alpha, kr, kc, rows, cols, shared_rows, shared_cols, first,
                  ITERATIONS)


def _assign(sym: np.ndarray, alpha: int, other: np.ndarray, k_other: int, lengths: np.ndarray) -> np.ndarray:
    """Assign every row of ``sym`` given the other axis' map and per-cluster code lengths."""
    return _assign_rows(sym, other, k_other, alpha, lengths)
