"""``_enc.encodep_flat`` (issue 17: fieldp's chunk encoder for one context and no row shifts)
writes exactly the bytes of the numba kernel ``_generated.encodep.encode_chunk`` (and of the
general C port), for any unit width, layout, chunk length and code table; a symbol without a
code gives b"" as theirs do."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bigsmall.codecs._generated.encodep import code_entries, encode_chunk

from .test_native_encode import SETTINGS


@pytest.fixture(params=["scalar", "bmi2"], autouse=True)
def isa(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Every test here runs with each build of the encoders (``_enc._set_isa``): the plain
    one and the BMI2 one the machine picks when it can (the same bytes either way)."""
    from bigsmall.native import _enc

    if request.param == "bmi2":
        try:
            _enc._set_isa("bmi2")
        except ValueError:
            pytest.skip("this CPU has no BMI2")
    else:
        _enc._set_isa("scalar")
    yield request.param
    try:
        _enc._set_isa("bmi2")  # back to what the machine picks
    except ValueError:
        _enc._set_isa("scalar")


def _case(rng: np.random.Generator, width: int, p_low: int, c: int, n: int,
          hole: bool) -> tuple[int, np.ndarray, np.ndarray]:
    """(p, values, code table) for ``n`` random units of ``width`` bytes with the field of
    ``c`` bits at a random p >= ``p_low``. Any table: lengths 0..15 (0: a context's only
    symbol), codes below 2**length; a hole: one symbol of the chunk without a code."""
    p = int(rng.integers(p_low, 8 * width - c + 1))
    values = rng.integers(0, 1 << (8 * width), n, dtype=np.uint64).astype(f"u{width}")
    nsym = 1 << c
    lens = rng.integers(0, 16, (1, nsym)).astype(np.int64)
    codes = (rng.integers(0, 1 << 15, (1, nsym)) & ((1 << lens) - 1)).astype(np.int64)
    w = np.ones((1, nsym), np.int64)
    if hole and n:
        w[0, (int(values[int(rng.integers(0, n))]) >> p) & (nsym - 1)] = 0
    return p, values, code_entries(w, lens, codes)


def _numba(values: np.ndarray, tab: np.ndarray, p: int, eb: int, mb: int, k0: int = 0,
           ncols: int | None = None, rshift: np.ndarray | None = None) -> bytes:
    """The numba reference's chunk for one context (``encode_chunk``)."""
    n = values.shape[0]
    ncols = ncols or max(n, 1)
    rows = (k0 + max(n, 1) - 1) // ncols + 1
    rshift = np.zeros(rows, np.int64) if rshift is None else rshift
    return bytes(encode_chunk(values, k0, ncols, np.zeros(rows, np.int64),
                              np.zeros(ncols, np.int64), tab, 1 << (eb + mb), p, eb, mb,
                              rshift).tobytes())


@SETTINGS
@given(width=st.sampled_from([1, 2, 4]), eb=st.integers(1, 8), mb=st.integers(0, 3),
       n=st.integers(0, 700), seed=st.integers(0, 2**32 - 1), hole=st.booleans())
def test_flat_encoder_matches_numba(width: int, eb: int, mb: int, n: int, seed: int,
                                    hole: bool) -> None:
    from bigsmall.native import _enc, kernels

    if eb + mb > 8 * width:
        mb = 0
        eb = min(eb, 8 * width)
    c = eb + mb
    p, values, tab = _case(np.random.default_rng(seed), width, 0, c, n, hole)
    nsym = 1 << c
    got = _enc.encodep_flat(values, tab, nsym, p, eb, mb)
    assert got == _numba(values, tab, p, eb, mb)
    native = kernels("fieldp")
    if native is not None:
        z = np.zeros(1, np.int64)
        assert got == native.encodep_chunk(values, 0, max(n, 1), z, np.zeros(max(n, 1), np.int64),
                                           tab, nsym, p, eb, mb, z)


@SETTINGS
@given(eb=st.integers(1, 8), mb=st.integers(0, 3), n=st.integers(0, 700),
       seed=st.integers(0, 2**32 - 1), hole=st.booleans())
def test_flat16_encoder_matches_numba(eb: int, mb: int, n: int, seed: int, hole: bool) -> None:
    """``encodep_flat16`` through ``encodep_table16``'s table: the numba kernel's bytes (and
    ``encodep_flat``'s) for any 16-bit layout, code table and values (b"" for a symbol without
    a code, as theirs)."""
    from bigsmall.native import _enc

    p, values, tab = _case(np.random.default_rng(seed), 2, 0, eb + mb, n, hole)
    got = _enc.encodep_flat16(values, _enc.encodep_table16(tab, 1 << (eb + mb), p, eb, mb))
    assert got == _numba(values, tab, p, eb, mb)
    assert got == _enc.encodep_flat(values, tab, 1 << (eb + mb), p, eb, mb)


def test_flat16_refuses_a_bad_table_or_layout() -> None:
    """A table of the wrong size, a layout beyond 16 bits, signed or non-16-bit units: refused
    with an error (never a read outside the table), and a table entry claiming more than 30
    bits is refused like a missing code (a lane never outgrows its region)."""
    from bigsmall.native import _enc

    tab = np.zeros(1 << 11, np.int64)
    with pytest.raises(ValueError):
        _enc.encodep_table16(tab, 1 << 11, 6, 8, 3)  # 6 + 11 > 16 bits
    t16 = bytearray(_enc.encodep_table16(tab, 1 << 11, 4, 8, 3))
    v = np.arange(100, dtype=np.uint16)
    with pytest.raises(ValueError):
        _enc.encodep_flat16(v, bytes(t16[:-8]))
    with pytest.raises((ValueError, TypeError)):
        _enc.encodep_flat16(v.astype(np.int16), bytes(t16))
    with pytest.raises((ValueError, TypeError)):
        _enc.encodep_flat16(v.astype(np.uint32), bytes(t16))
    big = np.frombuffer(t16, np.int64).copy()
    big[3] = (31 << 32) | 1
    assert _enc.encodep_flat16(v, big.tobytes()) == b""


@SETTINGS
@given(eb=st.integers(1, 8), mb=st.integers(0, 3), n=st.integers(0, 700),
       ncols=st.integers(1, 90), k0=st.integers(0, 300), seed=st.integers(0, 2**32 - 1),
       hole=st.booleans(), shifts=st.booleans())
def test_rows32_encoder_matches_numba(eb: int, mb: int, n: int, ncols: int, k0: int, seed: int,
                                      hole: bool, shifts: bool) -> None:
    """``encodep_rows32`` through ``encodep_table32h``'s table: the numba kernel's bytes for one
    context, 32-bit units with the field in the high half, any row shifts (0 .. raw bits), any
    start unit and row length (b"" for a symbol without a code, as it)."""
    from bigsmall.native import _enc

    c = eb + mb
    rng = np.random.default_rng(seed)
    p, values, tab = _case(rng, 4, 16, c, n, hole)
    rows = (k0 + max(n, 1) - 1) // ncols + 1
    rshift = (rng.integers(0, 32 - c + 1, rows) if shifts else np.zeros(rows)).astype(np.int64)
    ref = _numba(values, tab, p, eb, mb, k0, ncols, rshift)
    t32 = _enc.encodep_table32h(tab, 1 << c, p, eb, mb)
    assert _enc.encodep_rows32(values, t32, k0, ncols, rshift, p, eb, mb) == ref


def test_rows32_refuses_bad_arguments() -> None:
    """Row shifts beyond the raw bits or missing for a row the units reach, a field below bit
    16, a table of the wrong size: refused with an error, never a write outside the lanes."""
    from bigsmall.native import _enc

    tab = np.zeros(1 << 11, np.int64)
    t32 = _enc.encodep_table32h(tab, 1 << 11, 20, 8, 3)
    v = np.arange(100, dtype=np.uint32)
    assert _enc.encodep_rows32(v, t32, 0, 10, np.zeros(10, np.int64), 20, 8, 3)
    for bad in (np.zeros(9, np.int64), np.full(10, 22, np.int64), np.full(10, -1, np.int64)):
        with pytest.raises(ValueError):
            _enc.encodep_rows32(v, t32, 0, 10, bad, 20, 8, 3)
    with pytest.raises(ValueError):
        _enc.encodep_table32h(tab, 1 << 11, 15, 8, 3)
    with pytest.raises(ValueError):
        _enc.encodep_rows32(v, t32[:-8], 0, 10, np.zeros(10, np.int64), 20, 8, 3)
    with pytest.raises(ValueError):
        _enc.encodep_rows32(v, t32, 0, 0, np.zeros(10, np.int64), 20, 8, 3)
