"""Context modelling: group rows and columns of a weight matrix by their symbol statistics.

Why: a weight matrix's exponents are not identically distributed — output channels (rows) and
input channels (columns) have their own scales. Coding each element with the table of its
(row cluster, column cluster) beats the single per-tensor table (the order-0 floor) as long as
the side information (cluster maps and extra tables) costs less than it saves. The encoder
measures that trade-off and picks the cheapest grid, including "no clustering".

The clustering is Lloyd's algorithm with code length as the distance (``lloyd.py``): assign each
row to the cluster whose table codes it in the fewest bits, re-estimate tables, repeat;
alternately for columns. Fitting runs on a strided sample of the matrix so its cost stays
bounded on huge tensors; the final tables are always counted on every element
(``counting.py``), and the cost estimates use numpy's float arithmetic exactly
(``numpy_exact.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

if TYPE_CHECKING:
    from .lloyd import Memo

# The kernels this module calls live in ``counting``, ``lloyd`` and ``numpy_exact`` (numba);
# each function imports the ones it calls, so that importing ``context`` for ``Clustering``
# (every field-model ``prepare``) imports no numba. ``field`` and the property tests also
# reach them as ``context.<name>`` (they lived here before this module was split):
# ``__getattr__`` below serves those names.
_MOVED = {
    "counting": ("_bit_field", "_ctx_table", "_field_counts", "_line_counts", "_lookup",
                 "_more_distinct_than", "_row_low_zeros", "_sum_lines", "_symbol_counts"),
    "lloyd": ("ITERATIONS", "Memo", "_argmin_cost", "_assign", "_fit", "_hist", "_init_map",
              "_memo"),
    "numpy_exact": ("_code_lengths", "_entropy_rows", "_line_means", "_pairwise_sum",
                    "_quantiles"),
}


def __getattr__(name: str) -> Any:
    import importlib

    for mod, names in _MOVED.items():
        if name in names:
            return getattr(importlib.import_module(f"{__package__}.{mod}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SAMPLE_SIDE = 768  # rows/columns kept in the fitting sample

COST_SAMPLE = 1 << 21  # elements (about) on which candidate clusterings are compared

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
    from .counting import _ctx_table, _line_counts, _sum_lines
    from .lloyd import _memo
    from .numpy_exact import _entropy_rows

    sub = sym[::row_step]
    if memo is not None and row_step > 1:  # the kernels take C order: copy the rows once
        sub = _memo(memo, (-8, row_step), lambda: np.ascontiguousarray(sym[::row_step]))
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


def choose(sym: np.ndarray, alpha: int, max_contexts: int = 64, max_axis: int = 8) -> Clustering:
    """Pick the cheapest clustering of the symbol matrix ``sym`` (int64[nrows, ncols]).

    Greedy over the grid: from 1x1, keep doubling the row or column cluster count, whichever
    lowers the estimated size more, until neither does. A candidate assigns only the rows that
    its cost estimate reads (every ``cost_step``-th); the winner's other rows are assigned at
    the end. Rows are assigned independently of each other, so the maps and the choice are
    those of assigning every row of every candidate, at a fraction of the cost on large
    matrices (the losing candidates' full-matrix row passes are skipped: MiniLM's embedding
    0.29 -> 0.20 s CPU).
    """
    from .counting import _lookup, _symbol_counts
    from .spread import map_pieces

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
        moves = [(kr, kc) for kr, kc in ((kr0 * 2, kc0), (kr0, kc0 * 2))
                 if not ((kr, kc) in tried or kr * kc > max_contexts or kr > nr or kc > nc
                         or max(kr, kc) > max_axis)]
        improved = False
        # the two fits are independent (the memo only caches what both would compute):
        # spread over a lent pool (spread.py), then judged in order as before
        fits = map_pieces(lambda m: _fit_candidate(sym, sample, alpha, m[0], m[1], rstep, cstep,
                                                   cost_step, memo), moves)
        for (kr, kc), fit in zip(moves, fits, strict=True):
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
    from .lloyd import _assign

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
    from .counting import _ctx_table
    from .lloyd import _assign, _fit, _memo
    from .numpy_exact import _code_lengths

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
