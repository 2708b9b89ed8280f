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

#: candidate (row clusters, column clusters) grids tried by the encoder
GRIDS: tuple[tuple[int, int], ...] = (
    (1, 1), (2, 1), (1, 2), (2, 2), (4, 1), (1, 4), (4, 2), (2, 4), (4, 4),
    (8, 2), (2, 8), (8, 4), (4, 8), (8, 8),
)
SAMPLE_SIDE = 768  # rows/columns kept in the fitting sample
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


def _fit(sym: np.ndarray, alpha: int, kr: int, kc: int) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd iterations on a (sample) symbol matrix; returns (row map, col map)."""
    nr, nc = sym.shape
    rows = _init_map(sym.mean(axis=1), kr)
    cols = _init_map(sym.mean(axis=0), kc)
    r_idx = np.arange(nr)[:, None]
    c_idx = np.arange(nc)[None, :]
    for _ in range(ITERATIONS):
        prev = (rows.copy(), cols.copy())
        if kr > 1:
            ctx = rows[:, None] * kc + cols[None, :]
            table = np.bincount((ctx * alpha + sym).ravel(), minlength=kr * kc * alpha)
            lengths = _code_lengths(table.reshape(kr, kc * alpha))
            hist = np.bincount(
                (r_idx * (kc * alpha) + cols[None, :] * alpha + sym).ravel(), minlength=nr * kc * alpha
            ).reshape(nr, kc * alpha)
            rows = (hist @ lengths.T).argmin(axis=1)
        if kc > 1:
            ctx = rows[:, None] * kc + cols[None, :]
            table = np.bincount((ctx * alpha + sym).ravel(), minlength=kr * kc * alpha)
            lengths = _code_lengths(table.reshape(kr, kc, alpha).transpose(1, 0, 2).reshape(kc, kr * alpha))
            hist = np.bincount(
                (c_idx * (kr * alpha) + rows[:, None] * alpha + sym).ravel(), minlength=nc * kr * alpha
            ).reshape(nc, kr * alpha)
            cols = (hist @ lengths.T).argmin(axis=1)
        if np.array_equal(prev[0], rows) and np.array_equal(prev[1], cols):
            break
    return rows, cols


def _assign(sym: np.ndarray, alpha: int, other: np.ndarray, k_other: int, lengths: np.ndarray) -> np.ndarray:
    """Assign every row of ``sym`` given the other axis' map and per-cluster code lengths."""
    n = sym.shape[0]
    hist = np.bincount(
        (np.arange(n)[:, None] * (k_other * alpha) + other[None, :] * alpha + sym).ravel(),
        minlength=n * k_other * alpha,
    ).reshape(n, k_other * alpha)
    return (hist @ lengths.T).argmin(axis=1)


def context_cost_bits(sym: np.ndarray, alpha: int, cl: Clustering) -> float:
    """Estimated coded size of ``sym`` under ``cl``: entropy + tables + maps, in bits."""
    ctx = cl.row_ctx()[:, None] + cl.col_ctx()[None, :]
    table = np.bincount((ctx * alpha + sym).ravel(), minlength=cl.n_contexts * alpha)
    table = table.reshape(cl.n_contexts, alpha)
    bits = sum(_entropy_bits(t) for t in table)
    side = float((table > 0).sum()) * TABLE_ENTRY_BITS
    if cl.kr > 1:
        side += sym.shape[0] * np.log2(cl.kr)
    if cl.kc > 1:
        side += sym.shape[1] * np.log2(cl.kc)
    return bits + side


def choose(sym: np.ndarray, alpha: int, max_contexts: int = 64) -> Clustering:
    """Pick the cheapest clustering of the symbol matrix ``sym`` (int64[nrows, ncols])."""
    nr, nc = sym.shape
    best = trivial(nr, nc)
    if sym.size < 4096:
        return best
    best_cost = context_cost_bits(sym, alpha, best)
    rstep = max(1, nr // SAMPLE_SIDE)
    cstep = max(1, nc // SAMPLE_SIDE)
    sample = sym[::rstep, ::cstep]
    for kr, kc in GRIDS:
        if kr * kc == 1 or kr * kc > max_contexts or kr > nr or kc > nc:
            continue
        srows, scols = _fit(sample, alpha, kr, kc)
        # extend the sample's maps to the full matrix: columns from the sampled rows, then rows
        if kc > 1:
            if cstep == 1:
                cols = scols
            else:
                ctx = srows[:, None] * kc + scols[None, :]
                table = np.bincount((ctx * alpha + sample).ravel(), minlength=kr * kc * alpha)
                lengths = _code_lengths(
                    table.reshape(kr, kc, alpha).transpose(1, 0, 2).reshape(kc, kr * alpha)
                )
                cols = _assign(sym[::rstep].T.copy(), alpha, srows, kr, lengths)
        else:
            cols = np.zeros(nc, np.int64)
        if kr > 1:
            if rstep == 1 and cstep == 1:
                rows = srows
            else:
                ctx = srows[:, None] * kc + scols[None, :]
                table = np.bincount((ctx * alpha + sample).ravel(), minlength=kr * kc * alpha)
                lengths = _code_lengths(table.reshape(kr, kc * alpha))
                rows = _assign(sym[:, ::cstep], alpha, cols[::cstep], kc, lengths)
        else:
            rows = np.zeros(nr, np.int64)
        cl = Clustering(kr, kc, rows.astype(np.uint8), cols.astype(np.uint8))
        cost = context_cost_bits(sym, alpha, cl)
        if cost < best_cost:
            best, best_cost = cl, cost
    return best
