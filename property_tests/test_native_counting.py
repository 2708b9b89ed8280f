"""The clustering search's one-pass counting kernels (issue 17: ``_symbol_counts`` and
``_lookup`` with their range checks inside the pass, ``_lookup`` per table width,
``_line_counts`` per axis) return exactly what their numba references return, on any
unsigned matrix and table width; a symbol outside the table is refused, not read."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .test_native_encode import SETTINGS, _both, _eq


@SETTINGS
@given(nr=st.integers(0, 40), nc=st.integers(1, 40), width=st.sampled_from([1, 2, 4, 8]),
       tw=st.sampled_from([1, 2, 4, 8]), alpha=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_counting_kernels_match_numba(nr: int, nc: int, width: int, tw: int, alpha: int,
                                      seed: int) -> None:
    from bigsmall.codecs import counting

    rng = np.random.default_rng(seed)
    dt = np.dtype(f"u{width}")
    alpha = min(alpha, 1 << (8 * width))
    sym = rng.integers(0, alpha, (nr, nc), dtype=np.uint64).astype(dt)
    table = rng.integers(0, 1 << min(8 * tw, 62), alpha, dtype=np.uint64).astype(f"u{tw}")
    _eq(*_both(counting._symbol_counts, sym, alpha))
    _eq(*_both(counting._lookup, sym, table))
    for axis in (0, 1):
        _eq(*_both(counting._line_counts, sym, axis, alpha))
    if sym.size:  # one symbol outside: an empty count (as numba's), a refused lookup
        bad = sym.copy()
        bad.flat[int(rng.integers(0, sym.size))] = alpha if alpha < (1 << (8 * width)) else 0
        if int(bad.max()) >= alpha:
            _eq(*_both(counting._symbol_counts, bad, alpha))
            assert counting._symbol_counts(bad, alpha).size == 0
            with pytest.raises(ValueError):
                counting._lookup(bad, table)


@SETTINGS
@given(nr=st.integers(1, 30), nc=st.integers(1, 30), width=st.sampled_from([1, 2, 8]),
       signed=st.booleans(), kr=st.integers(1, 4), kc=st.integers(1, 4), alpha=st.integers(1, 40),
       seed=st.integers(0, 2**32 - 1))
def test_ctx_table_checks_symbols_while_counting(nr: int, nc: int, width: int, signed: bool,
                                                 kr: int, kc: int, alpha: int, seed: int) -> None:
    """The four-sub-table count equals numba's two; a symbol out of range (negative, or
    >= alpha) anywhere is refused."""
    from bigsmall.codecs import counting

    rng = np.random.default_rng(seed)
    dt = np.dtype(f"{'i' if signed else 'u'}{width}")
    alpha = min(alpha, 127)
    sym = rng.integers(0, alpha, (nr, nc)).astype(dt)
    rows = rng.integers(0, kr, nr).astype(np.int64)
    cols = rng.integers(0, kc, nc).astype(np.int64)
    _eq(*_both(counting._ctx_table, sym, rows, cols, kc, kr * kc, alpha))
    bad = sym.copy()
    bad[int(rng.integers(0, nr)), int(rng.integers(0, nc))] = -1 if signed else alpha
    with pytest.raises(ValueError):
        counting._ctx_table(bad, rows, cols, kc, kr * kc, alpha)
