"""The clustering search's C ports (``_enc``: native/enc_cluster.h, enc_lloyd.h) against numba.

Why: the encoder's clusterings follow from float64 code lengths, entropies and quantiles; the
C kernels must produce exactly the numba kernels' bits (same sums in the same order, the same
log2), or a default-level compress would choose other contexts and write another file (the
golden vectors pin its bytes). Each test runs a kernel both ways on the same arguments and
compares the results byte for byte (floats by their bits, NaN included): histograms and row
assignments (ties, non-finite code lengths, more than 8 clusters), whole Lloyd fits (memo
shared across candidates, histograms handed in, non-integer histograms), ``context.choose``
end to end on uint8 and uint16 alphabets, the cost kernels (pairwise sums past 128 and 1024
terms, the division by zero numba raises) and the start maps (quantiles of values with
duplicates, NaN, infinities). Arguments outside what a kernel can index raise, never crash.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigsmall.native as native
from bigsmall.codecs import context, lloyd, numpy_exact

from .test_native_encode import _numba  # the reference forced for one block

E = native.enc_kernels()
pytestmark = pytest.mark.skipif(E is None, reason="native extension not built (or BIGSMALL_NATIVE=0)")

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(0, 2**32 - 1)


def _both(fn: Any, *args: Any) -> tuple[Any, Any]:
    """``fn(*args)`` with the C kernels, then with numba; each result or its exception type."""
    def run() -> Any:
        try:
            return fn(*args)
        except (ZeroDivisionError, ValueError) as exc:
            return type(exc)

    got = run()
    with _numba():
        ref = run()
    return got, ref


def _same(got: Any, ref: Any) -> None:
    """Equal values, arrays and floats compared by their bytes (test_native_encode's ``_eq``
    compares arrays by value, where NaN != NaN)."""
    if isinstance(ref, tuple):
        assert isinstance(got, tuple) and len(got) == len(ref)
        for g, r in zip(got, ref, strict=True):
            _same(g, r)
    elif isinstance(ref, np.ndarray):
        assert isinstance(got, np.ndarray), got
        assert got.dtype == ref.dtype and got.shape == ref.shape
        assert got.tobytes() == ref.tobytes()  # floats by their bits: NaN, -0.0 too
    elif isinstance(ref, float):
        assert isinstance(got, float) and np.float64(got).tobytes() == np.float64(ref).tobytes()
    else:
        assert got == ref and type(got) is type(ref)


def _matrix(rng: np.random.Generator, nr: int, nc: int, alpha: int, dtype: Any) -> np.ndarray:
    """Symbols with row and column structure (so that clusters pay) plus noise, < alpha."""
    rs = rng.integers(0, 4, nr)
    cs = rng.integers(0, 3, nc)
    step = max(alpha // 8, 1)
    m = (rs[:, None] + cs[None, :]) * step + rng.integers(0, max(alpha // 3, 1), (nr, nc))
    return np.clip(m, 0, alpha - 1).astype(dtype)


def _lengths(rng: np.random.Generator, k: int, w: int, kind: str) -> np.ndarray:
    if kind == "code":  # what the encoder hands in
        return numpy_exact._code_lengths(rng.integers(0, 60, (k, w)))
    if kind == "ties":  # small integers: equal sums, the first minimum must win
        return rng.integers(0, 3, (k, w)).astype(np.float64)
    out = rng.random((k, w)) * 8
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e300, 5e-324])
    mask = rng.random((k, w)) < 0.05
    out[mask] = rng.choice(special, int(mask.sum()))
    return out


@SETTINGS
@given(seed=SEEDS, nr=st.integers(1, 300), nc=st.integers(1, 300), k_other=st.integers(1, 9),
       k=st.sampled_from([0, 1, 2, 3, 4, 5, 8, 9, 12]), alpha=st.integers(1, 300),
       dtype=st.sampled_from([np.uint8, np.uint16]),
       kind=st.sampled_from(["code", "ties", "special"]))
def test_hist_and_assign_rows_match_numba(seed, nr, nc, k_other, k, alpha, dtype, kind):
    rng = np.random.default_rng(seed)
    alpha = min(alpha, 256) if dtype == np.uint8 else alpha
    sym = _matrix(rng, nr, nc, alpha, dtype)
    other = rng.integers(0, k_other, nc)
    _same(*_both(lloyd._hist_first, sym, other, k_other, alpha))
    lengths = _lengths(rng, k, k_other * alpha, kind)
    got, ref = _both(lloyd._assign, sym, alpha, other, k_other, lengths)
    _same(got, ref)
    assert E.assign_rows(sym, other, k_other, alpha, lengths) is not NotImplemented


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=SEEDS, nr=st.integers(2, 200), nc=st.integers(2, 200), alpha=st.integers(2, 40),
       dtype=st.sampled_from([np.uint8, np.uint16]))
def test_fits_match_numba(seed, nr, nc, alpha, dtype):
    """``_fit`` for every candidate grid ``choose`` may try, in its order, with one memo per
    mode (the shared one-cluster and first-pass histograms are handed to ``_lloyd``)."""
    rng = np.random.default_rng(seed)
    sym = _matrix(rng, nr, nc, alpha, dtype)
    grids = [(kr, kc) for kr in (1, 2, 4, 8) for kc in (1, 2, 4, 8) if kr <= nr and kc <= nc]
    memo: lloyd.Memo = {}
    got = [lloyd._fit(sym, alpha, kr, kc, memo) for kr, kc in grids]
    with _numba():
        memo = {}
        ref = [lloyd._fit(sym, alpha, kr, kc, memo) for kr, kc in grids]
    for g, r in zip(got, ref, strict=True):
        _same(tuple(g), tuple(r))


@SETTINGS
@given(seed=SEEDS, nr=st.integers(1, 120), nc=st.integers(1, 120), alpha=st.integers(1, 30),
       kr=st.integers(1, 10), kc=st.integers(1, 10), iterations=st.integers(0, 8),
       hists=st.sampled_from(["true", "noisy"]))
def test_lloyd_matches_numba_on_any_start(seed, nr, nc, alpha, kr, kc, iterations, hists):
    """``_lloyd`` from random start maps, with the histograms a caller may hand in (exact, or
    with non-integer noise: the C port keeps numba's float64 arithmetic on them too)."""
    rng = np.random.default_rng(seed)
    sym = _matrix(rng, nr, nc, alpha, np.uint8)
    sym_t = np.ascontiguousarray(sym.T)
    rows = rng.integers(0, kr, nr)
    cols = rng.integers(0, kc, nc)
    none = np.zeros((0, 0))

    def h(mat: np.ndarray, other: np.ndarray, k: int) -> np.ndarray:
        out = lloyd._hist(mat, other, k, alpha)
        return out + rng.random(out.shape) * 3 if hists == "noisy" else out

    shared_rows = h(sym, np.zeros(nc, np.int64), 1) if kr > 1 and kc == 1 else none
    shared_cols = h(sym_t, np.zeros(nr, np.int64), 1) if kc > 1 and kr == 1 else none
    first = h(sym, cols, kc) if kr > 1 and kc > 1 and rng.random() < 0.5 else none
    args = (sym, sym_t, alpha, kr, kc, rows, cols, shared_rows, shared_cols, first, iterations)
    kept = [a.copy() for a in args if isinstance(a, np.ndarray)]
    got = E.lloyd(*args)
    for a, b in zip([a for a in args if isinstance(a, np.ndarray)], kept, strict=True):
        assert a.tobytes() == b.tobytes()  # the caller's memo is never written
    ref = lloyd._lloyd.kernel(*args)
    _same(tuple(got), tuple(ref))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=SEEDS, nr=st.integers(64, 1800), nc=st.integers(64, 1800),
       alpha=st.sampled_from([3, 12, 40, 256, 300, 700]))
def test_choose_matches_numba(seed, nr, nc, alpha):
    """``context.choose`` end to end: the same grid and maps (samples, row assignment of the
    winner, costs); alphabets past 256 symbols run the uint16 kernels."""
    rng = np.random.default_rng(seed)
    sym = _matrix(rng, nr, nc, alpha, np.int64)
    got, ref = _both(context.choose, sym, alpha)
    assert (got.kr, got.kc) == (ref.kr, ref.kc)
    _same((got.row_map, got.col_map), (ref.row_map, ref.col_map))


@SETTINGS
@given(seed=SEEDS, k=st.integers(0, 9), w=st.sampled_from([0, 1, 7, 8, 9, 127, 128, 129, 300, 1030,
                                                           2100]),
       density=st.floats(0.0, 1.0), big=st.booleans())
def test_cost_kernels_match_numba(seed, k, w, density, big):
    rng = np.random.default_rng(seed)
    hi = 2**40 if big else 1000
    ints = rng.integers(0, hi, (k, w)) * (rng.random((k, w)) < density)
    signed = ints - rng.integers(0, 3, (k, w)) * (rng.random((k, w)) < 0.1)
    floats = ints + rng.random((k, w))
    for table in (ints, signed, floats):
        _same(*_both(numpy_exact._code_lengths, table))
    for table in (ints, signed):
        _same(*_both(numpy_exact._entropy_rows, np.ascontiguousarray(table)))
    if k and w:  # a row of -0.05s: numba divides by zero (ZeroDivisionError), so must C
        zero = np.full((k, w), -0.05)
        got, ref = _both(numpy_exact._code_lengths, zero)
        assert got is ref is ZeroDivisionError


@SETTINGS
@given(seed=SEEDS, nr=st.integers(1, 300), nc=st.integers(1, 300),
       dtype=st.sampled_from([np.uint8, np.uint16]), k=st.integers(1, 9),
       kind=st.sampled_from(["means", "dups", "special"]))
def test_start_maps_match_numba(seed, nr, nc, dtype, k, kind):
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, np.iinfo(dtype).max + 1, (nr, nc)).astype(dtype)
    for axis in (0, 1):
        _same(*_both(numpy_exact._line_means, sym, axis))
    values = numpy_exact._line_means(sym, 1)
    if kind == "dups":
        values = rng.choice(values[:3], values.shape[0])
    elif kind == "special":
        values = values.copy()
        values[rng.random(values.shape[0]) < 0.2] = rng.choice([np.nan, np.inf, -np.inf, -0.0])
    for qs in (np.linspace(0.0, 1.0, k + 1)[1:-1], rng.random(k) * 2 - 0.5):
        _same(*_both(numpy_exact._quantile_map, values, qs))


def test_refuses_arguments_it_cannot_index():
    ext = E.ext
    sym = np.zeros((4, 5), np.uint8)
    sym[1, 2] = 9
    other = np.zeros(5, np.int64)
    z = np.zeros((0, 0))
    lens = np.zeros((2, 10))
    bad = [
        lambda: ext.hist(sym, other, 1, 9),  # a symbol not below alpha
        lambda: ext.hist(sym, np.full(5, 3, np.int64), 2, 10),  # a cluster not below k_other
        lambda: ext.hist(sym, np.zeros(4, np.int64), 1, 10),  # other shorter than the row
        lambda: ext.hist(sym, other, 0, 10),
        lambda: ext.hist(sym, other, 1, 1 << 20),
        lambda: ext.assign_rows(sym, other, 1, 10, np.zeros((2, 11))),  # lengths too wide
        lambda: ext.lloyd(sym, sym, 10, 2, 2, np.zeros(4, np.int64), other, z, z, z, 3),
        lambda: ext.lloyd(sym, sym.T.copy(), 10, 2, 1, np.zeros(4, np.int64), other, z, z, z,
                          3),  # the shared row histograms are needed (kc == 1)
        lambda: ext.lloyd(sym, sym.T.copy(), 10, 2, 2, np.full(4, 2, np.int64), other, z, z, z,
                          3),  # a row cluster not below kr
        lambda: ext.lloyd(sym, sym.T.copy(), 10, 2, 2, np.zeros(4, np.int64), other, z, z,
                          np.zeros((4, 7)), 3),  # first-pass histograms of the wrong width
        lambda: ext.quantile_map(np.zeros(0), np.zeros(1)),
        lambda: ext.quantile_map(np.zeros(3), np.array([np.nan])),
        lambda: ext.line_means(np.zeros((0, 3), np.uint8), 0),
        lambda: ext.line_means(sym, 2),
    ]
    for call in bad:
        with pytest.raises(ValueError):
            call()
    for call in (lambda: ext.hist(sym.astype(np.int32), other, 1, 10),
                 lambda: ext.assign_rows(sym, other, 1, 10, lens.astype(np.float32)),
                 lambda: ext.entropy_rows(np.zeros((2, 2), np.float64)),
                 lambda: ext.code_lengths(np.zeros((2, 2), np.int32))):
        with pytest.raises(TypeError):
            call()


def test_other_types_fall_back_to_numba():
    """Types the C kernels do not take (int64 symbols, float32 tables) run numba: the same
    results, no error."""
    rng = np.random.default_rng(7)
    sym = rng.integers(0, 6, (40, 30))
    assert E.hist(sym, np.zeros(30, np.int64), 1, 6) is NotImplemented
    _same(*_both(lloyd._hist_first, sym, np.zeros(30, np.int64), 1, 6))
    _same(*_both(numpy_exact._line_means, sym, 0))
    _same(*_both(numpy_exact._code_lengths, rng.random((3, 5)).astype(np.float32)))
