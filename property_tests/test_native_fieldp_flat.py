"""``_enc.encodep_flat`` (issue 17: fieldp's chunk encoder for one context and no row shifts)
writes exactly the bytes of the numba kernel ``_generated.encodep.encode_chunk`` (and of the
general C port), for any unit width, layout, chunk length and code table; a symbol without a
code gives b"" as theirs do."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bigsmall.codecs._generated.encodep import code_entries, encode_chunk

from .test_native_encode import SETTINGS


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
    rng = np.random.default_rng(seed)
    p = int(rng.integers(0, 8 * width - c + 1))
    values = rng.integers(0, 1 << (8 * width), n, dtype=np.uint64).astype(f"u{width}")
    nsym = 1 << c
    # any table: lengths 0..15 (0: a context's only symbol), codes below 2**length; a
    # hole: one symbol of the chunk without a code
    lens = rng.integers(0, 16, (1, nsym)).astype(np.int64)
    codes = (rng.integers(0, 1 << 15, (1, nsym)) & ((1 << lens) - 1)).astype(np.int64)
    w = np.ones((1, nsym), np.int64)
    if hole and n:
        sym = (int(values[int(rng.integers(0, n))]) >> p) & (nsym - 1)
        w[0, sym] = 0
    tab = code_entries(w, lens, codes)
    rowctx = np.zeros(1, np.int64)
    colctx = np.zeros(max(n, 1), np.int64)
    rshift = np.zeros(1, np.int64)
    ref = bytes(encode_chunk(values, 0, max(n, 1), rowctx, colctx, tab, nsym, p, eb, mb,
                             rshift).tobytes())
    got = _enc.encodep_flat(values, tab, nsym, p, eb, mb)
    assert got == ref
    native = kernels("fieldp")
    if native is not None:
        assert got == native.encodep_chunk(values, 0, max(n, 1), rowctx, colctx, tab, nsym, p,
                                           eb, mb, rshift)


@SETTINGS
@given(eb=st.integers(1, 8), mb=st.integers(0, 3), n=st.integers(0, 700),
       seed=st.integers(0, 2**32 - 1), hole=st.booleans())
def test_flat16_encoder_matches_flat(eb: int, mb: int, n: int, seed: int, hole: bool) -> None:
    """``encodep_flat16`` through ``encodep_table16``'s table: ``encodep_flat``'s bytes for any
    16-bit layout, code table and values (b"" for a symbol without a code, as it)."""
    from bigsmall.native import _enc

    c = eb + mb
    rng = np.random.default_rng(seed)
    p = int(rng.integers(0, 16 - c + 1))
    values = rng.integers(0, 1 << 16, n, dtype=np.uint64).astype(np.uint16)
    nsym = 1 << c
    lens = rng.integers(0, 16, (1, nsym)).astype(np.int64)
    codes = (rng.integers(0, 1 << 15, (1, nsym)) & ((1 << lens) - 1)).astype(np.int64)
    w = np.ones((1, nsym), np.int64)
    if hole and n:
        w[0, (int(values[int(rng.integers(0, n))]) >> p) & (nsym - 1)] = 0
    tab = code_entries(w, lens, codes)
    t16 = _enc.encodep_table16(tab, nsym, p, eb, mb)
    assert _enc.encodep_flat16(values, t16) == _enc.encodep_flat(values, tab, nsym, p, eb, mb)


def test_flat16_refuses_a_bad_table_or_layout() -> None:
    """A table of the wrong size, a layout beyond 16 bits, signed or non-16-bit units: refused
    with an error (never a read outside the table), and a table entry claiming more than 30
    bits is refused like a missing code (a lane never outgrows its region)."""
    import pytest

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
