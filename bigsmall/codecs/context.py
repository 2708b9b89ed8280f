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

import attrs
import numpy as np
from numba import njit

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
    reason as in ``_hist``."""
    acc = np.zeros((2 * nctx, alpha), dtype=np.int64)
    nr, nc = sym.shape
    cb = np.empty(nc, dtype=np.int64)
    for j in range(nc):
        cb[j] = cols[j] + (j & 1) * nctx
    for i in range(nr):
        base = rows[i] * kc
        for j in range(nc):
            acc[base + cb[j], sym[i, j]] += 1
    return acc[:nctx] + acc[nctx:]


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
def _argmin_cost(hist, lengths):
    """argmin over clusters c of hist[i] . lengths[c], for every row i (first minimum wins).

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


def _entropy_bits(counts: np.ndarray) -> float:
    c = counts[counts > 0].astype(np.float64)
    if c.size == 0:
        return 0.0
    return float(-(c * np.log2(c / c.sum())).sum())


def _code_lengths(table: np.ndarray) -> np.ndarray:
    t = table.astype(np.float64) + 0.05  # smoothed so unseen symbols cost finitely
    return -np.log2(t / t.sum(axis=-1, keepdims=True))


def _init_map(values: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return np.zeros(values.shape[0], np.int64)
    qs = np.quantile(values, np.linspace(0.0, 1.0, k + 1)[1:-1])
    return np.searchsorted(qs, values).astype(np.int64)


def _sum_by(hist: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Sum the histogram rows of each cluster: [k, hist columns].

    numba loops, not ``np.eye(k)[labels].T @ hist``: BLAS calls this small, from the encoder's
    worker threads, spent most of their time in BLAS' own thread start-up and spinning."""
    return _sum_rows(hist, labels.astype(np.int64), k)


def _fit(sym: np.ndarray, alpha: int, kr: int, kc: int,
         memo: dict[tuple[int, int, bytes], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
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
    sym_t = memo.get((-1, 0, b""))
    if sym_t is None:
        sym_t = memo[(-1, 0, b"")] = np.ascontiguousarray(sym.T)
    last: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def hist(axis: int, other: np.ndarray, k_other: int) -> np.ndarray:
        mat = sym if axis == 0 else sym_t
        if axis in last:
            prev_map, prev_h = last[axis]
            moved = np.flatnonzero(prev_map != other)
            if moved.size == 0:
                return prev_h
            if 2 * moved.size < other.size:  # few lines changed cluster: move their counts
                h = _hist_move(mat, prev_h.copy(), moved, prev_map, other, alpha)
                last[axis] = (other.copy(), h)
                return h
        key = other.tobytes()
        h = memo.get((axis, k_other, key)) if k_other == 1 else None
        if h is None:
            h = _hist(mat, other, k_other, alpha)
            if k_other == 1:
                memo[(axis, k_other, key)] = h
        last[axis] = (other.copy(), h)
        return h

    rows = _init_map(sym.mean(axis=1), kr)
    cols = _init_map(sym.mean(axis=0), kc)
    for _ in range(ITERATIONS):
        prev = (rows.copy(), cols.copy())
        if kr > 1:
            h = hist(0, cols, kc)  # [rows, kc * alpha]
            table = _sum_by(h, rows, kr)  # the context tables, from the same histograms
            rows = _argmin_cost(h, _code_lengths(table))
        if kc > 1:
            h = hist(1, rows, kr)  # [cols, kr * alpha]
            table = _sum_by(h, cols, kc)
            cols = _argmin_cost(h, _code_lengths(table))
        if np.array_equal(prev[0], rows) and np.array_equal(prev[1], cols):
            break
    return rows, cols


def _assign(sym: np.ndarray, alpha: int, other: np.ndarray, k_other: int, lengths: np.ndarray) -> np.ndarray:
    """Assign every row of ``sym`` given the other axis' map and per-cluster code lengths."""
    return _argmin_cost(_hist(sym, other, k_other, alpha), lengths)


def context_cost_bits(sym: np.ndarray, alpha: int, cl: Clustering, row_step: int = 1) -> float:
    """Estimated coded size of ``sym`` under ``cl``: entropy + tables + maps, in bits.

    With ``row_step`` > 1 the entropy is measured on every row_step-th row and scaled up.
    """
    sub = sym[::row_step]
    table = _ctx_table(sub, cl.row_map[::row_step].astype(np.int64), cl.col_map.astype(np.int64),
                       cl.kc, cl.n_contexts, alpha)
    bits = sum(_entropy_bits(t) for t in table) * (sym.shape[0] / max(sub.shape[0], 1))
    side = float((table > 0).sum()) * TABLE_ENTRY_BITS
    if cl.kr > 1:
        side += sym.shape[0] * np.log2(cl.kr)
    if cl.kc > 1:
        side += sym.shape[1] * np.log2(cl.kc)
    return bits + side


def choose(sym: np.ndarray, alpha: int, max_contexts: int = 64) -> Clustering:
    """Pick the cheapest clustering of the symbol matrix ``sym`` (int64[nrows, ncols]).

    Greedy over the grid: from 1x1, keep doubling the row or column cluster count, whichever
    lowers the estimated size more, until neither does.
    """
    nr, nc = sym.shape
    best = trivial(nr, nc)
    if sym.size < 4096:
        return best
    # compact the alphabet to the symbols present: histograms get several times smaller
    present = np.flatnonzero(np.bincount(sym.ravel(), minlength=alpha))
    remap = np.zeros(alpha, np.uint8 if present.size <= 256 else np.uint16)
    remap[present] = np.arange(present.size)
    sym = remap[sym]  # a small-typed lookup: no int64 copy of the matrix
    alpha = max(int(present.size), 1)
    cost_step = max(1, sym.size // COST_SAMPLE)
    best_cost = context_cost_bits(sym, alpha, best, cost_step)
    rstep = max(1, nr // SAMPLE_SIDE)
    cstep = max(1, nc // SAMPLE_SIDE)
    small = np.uint8 if alpha <= 256 else np.uint16
    sample = np.ascontiguousarray(sym[::rstep, ::cstep], dtype=small)
    tried: dict[tuple[int, int], float] = {}
    memo: dict[tuple[int, int, bytes], np.ndarray] = {}
    kr0, kc0 = 1, 1
    while True:
        moves = [(kr0 * 2, kc0), (kr0, kc0 * 2)]
        improved = False
        for kr, kc in moves:
            if (kr, kc) in tried or kr * kc > max_contexts or kr > nr or kc > nc or max(kr, kc) > 8:
                continue
            cl, cost = _fit_full(sym, sample, alpha, kr, kc, rstep, cstep, cost_step, memo)
            tried[(kr, kc)] = cost
            if cost < best_cost:
                best, best_cost, improved = cl, cost, True
        if not improved:
            return best
        kr0, kc0 = best.kr, best.kc


def _fit_full(
    sym: np.ndarray, sample: np.ndarray, alpha: int, kr: int, kc: int, rstep: int, cstep: int,
    cost_step: int, memo: dict[tuple[int, int, bytes], np.ndarray] | None = None,
) -> tuple[Clustering, float]:
    """Fit on the sample, extend the maps to the whole matrix, return it with its cost."""
    nr, nc = sym.shape
    srows, scols = _fit(sample, alpha, kr, kc, memo)
    # extend the sample's maps to the full matrix: columns from the sampled rows, then rows
    if kc > 1:
        if cstep == 1:
            cols = scols
        else:
            table = _ctx_table(sample, srows, scols, kc, kr * kc, alpha)
            lengths = _code_lengths(
                table.reshape(kr, kc, alpha).transpose(1, 0, 2).reshape(kc, kr * alpha)
            )
            cols = _assign(sym[::rstep].T, alpha, srows, kr, lengths)
    else:
        cols = np.zeros(nc, np.int64)
    if kr > 1:
        if rstep == 1 and cstep == 1:
            rows = srows
        else:
            table = _ctx_table(sample, srows, scols, kc, kr * kc, alpha)
            lengths = _code_lengths(table.reshape(kr, kc * alpha))
            rows = _assign(sym[:, ::cstep], alpha, cols[::cstep], kc, lengths)
    else:
        rows = np.zeros(nr, np.int64)
    cl = Clustering(kr, kc, rows.astype(np.uint8), cols.astype(np.uint8))
    return cl, context_cost_bits(sym, alpha, cl, cost_step)
