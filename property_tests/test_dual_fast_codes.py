"""Property: the C decoder of the ``.bsd`` fast chunk's INT4 codes (``native._dual.decode_codes``:
slot -> symbol tables for up to 64 contexts, a vectorised count over ``cum`` beyond) returns what
the numba reference returns (``codecs/dual.py: _decode``, ``codecs/dual_fast.py: _decode_up``),
codes and return value, on arbitrary symbol/context streams (skewed tables, a symbol holding the
whole mass, unused contexts) intact or with a flipped word; inconsistent tables are refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigsmall import native
from bigsmall.codecs import dual as code
from bigsmall.codecs import dual_fast as fastc

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _nat():  # type: ignore[no-untyped-def]
    nat = native.dual()
    if nat is None:
        pytest.skip("bigsmall.native._dual is not built")
    return nat


@st.composite
def streams(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(codes (rows, cols) u8, zero bins (rows, cols) i32, contexts flat, nctx, up)."""
    rows, cols = draw(st.integers(1, 30)), draw(st.integers(1, 200))
    mode = draw(st.sampled_from([0, 1, 2]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    skew = draw(st.sampled_from([0.0, 1.0, 4.0, 30.0]))
    p = rng.dirichlet(np.full(16, 0.3)) if skew else np.full(16, 1 / 16)
    if skew > 10:  # one code holds (nearly) everything
        p = np.zeros(16)
        p[int(rng.integers(0, 16))] = 1.0
    q = rng.choice(16, size=(rows, cols), p=p).astype(np.uint8)
    z = rng.integers(0, 16, size=(rows, 1)).repeat(cols, 1).astype(np.int32)
    if mode == 1:
        return q, z, fastc._up_ctx(q, z).ravel(), 64, 1
    if mode == 2:
        k = draw(st.sampled_from([16, 64]))
        cm = rng.integers(0, k, size=cols).astype(np.int32)
        return q, np.ascontiguousarray(z * k + cm[None, :]), (z * k + cm[None, :]).ravel(), 16 * k, 0
    return q, z, z.ravel(), 16, 0


@SETTINGS
@given(streams(), st.integers(0, 2**32 - 1))
def test_codes_native_matches_numba(s: tuple[np.ndarray, np.ndarray, np.ndarray, int, int], seed: int) -> None:
    nat = _nat()
    q, z, ctx, nctx, up = s
    stream = code.encode_stream(q.ravel(), ctx, fastc._NO_RAW, np.zeros(1, np.uint64), nctx, 16)
    words, _r, freq, cum, lut, ok = code._parse_stream(stream, nctx, 16)
    rng = np.random.default_rng(seed)
    for w in (words, words ^ (np.uint16(1) << rng.integers(0, 16, words.size)).astype(np.uint16)
              * (rng.random(words.size) < 2 / max(words.size, 1))):
        a = np.zeros(q.shape, np.uint8)
        b = np.zeros(q.shape, np.uint8)
        if up:
            ra = fastc._decode_up(w, z, freq, cum, lut, ok, a)
        else:
            sym = np.zeros(q.size, np.int32)
            ra = code._decode(w, np.zeros(0, np.uint8), ctx.astype(np.int32), fastc._NO_RAW[:nctx], freq, cum, lut,
                              ok, sym, np.zeros(q.size, np.uint64))
            a[:] = sym.reshape(q.shape)
        rb = nat.decode_codes(w, z if up else ctx.reshape(q.shape).astype(np.int32), freq, cum, lut, ok, b,
                              q.shape[1], up)
        assert ra == rb
        if w is words:
            assert ra == 0 and np.array_equal(b, q)
        if not ra:
            assert np.array_equal(a, b)


def test_codes_native_refuses_inconsistent_tables() -> None:
    nat = _nat()
    q = np.zeros((2, 8), np.uint8)
    z = np.zeros((2, 8), np.int32)
    stream = code.encode_stream(q.ravel(), z.ravel(), fastc._NO_RAW, np.zeros(1, np.uint64), 16, 16)
    words, _r, freq, cum, lut, ok = code._parse_stream(stream, 16, 16)
    assert nat.decode_codes(words, z, freq, cum, lut, ok, np.empty_like(q), 8, 0) == 0
    f = freq.copy()
    f[0, 0] += 1
    with pytest.raises(ValueError):
        nat.decode_codes(words, z, f, cum, lut, ok, np.empty_like(q), 8, 0)
    c = cum.copy()
    c[0, 3] += 1
    with pytest.raises(ValueError):
        nat.decode_codes(words, z, freq, c, lut, ok, np.empty_like(q), 8, 0)
