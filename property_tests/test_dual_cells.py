"""Property: the ``.bsd`` 5.0 exact code (``codecs/dual_cells.py``) restores every bit, and its C
decoder (``bigsmall.native._cells.decode``, scalar and AVX2) equals the numba reference byte for
byte, on intact and damaged streams.

Beyond the quantizable matrices ``dual`` feeds it, the codec is driven with *arbitrary* inputs
(``test_dual_lookup.arbitrary``): any bit patterns (NaN payloads, infinities, -0, subnormals), any
INT4 codes, any fp16 scale and minimum bit patterns (negative, infinite, NaN scales a file could
carry), odd widths (the AVX2 step needs widths of a multiple of 16; others take the scalar step),
and columns of very different scales (the cell at 0 spans exponents: the side stream)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigsmall.codecs import dual as code
from bigsmall.codecs import dual_cells as cells

from .test_dual import matrices
from .test_dual_lookup import arbitrary

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _native():  # type: ignore[no-untyped-def]
    from bigsmall.native import cells as native_cells

    nat = native_cells()
    if nat is None:
        pytest.skip("bigsmall.native._cells is not built")
    return nat


def _isas(nat) -> list[str]:  # type: ignore[no-untyped-def]
    out = ["scalar"]
    try:
        nat._set_isa("avx2")
        out.append("avx2")
    except ValueError:  # no AVX2 here: the scalar step only
        pass
    return out


def _all_decoders(args: list, n: int) -> list[tuple[int, np.ndarray]]:
    """(return code, patterns) of the numba reference, then of C for each instruction set."""
    nat = _native()
    res = []
    o = np.zeros(n, np.uint16)
    res.append((cells.decode_ref(*args, o), o))
    for isa in _isas(nat):
        nat._set_isa(isa)
        o = np.zeros(n, np.uint16)
        res.append((nat.decode(*args, o), o))
    nat._set_isa("avx2" if "avx2" in _isas(nat) else "scalar")
    return res


@st.composite
def heterogeneous(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    """Real-looking weights whose columns carry scales decades apart (widths of a multiple of 16,
    so the AVX2 step runs): many keys in the cell at 0, escaped to the side stream."""
    dtype = draw(st.sampled_from(["BF16", "F16", "F32"]))
    rows, cols = draw(st.integers(1, 24)), 16 * draw(st.integers(1, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spread = draw(st.sampled_from([0.0, 1.0, 2.5, 6.0]))
    w = (rng.standard_normal((rows, cols)) * np.exp(rng.standard_normal(cols) * spread) * 0.01).astype(np.float32)
    w[rng.random((rows, cols)) < draw(st.sampled_from([0.0, 0.05]))] = 0.0
    w = np.clip(w, -code.MAX_ABS, code.MAX_ABS)
    if dtype == "BF16":
        return dtype, (w.view(np.uint32) >> 16).astype(np.uint16)
    if dtype == "F16":
        return dtype, w.astype(np.float16).view(np.uint16)
    return dtype, w.view(np.uint32).copy()


def _round_trip(dtype: str, bits: np.ndarray, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray) -> bytes:
    ex = cells.encode_exact(bits, q, s16, lo16, dtype)
    back = cells.decode_exact(ex, q, s16, lo16, dtype)
    assert back.dtype == bits.dtype and np.array_equal(back, bits.ravel())
    return ex


def _top(bits: np.ndarray, dtype: str) -> np.ndarray:
    return (bits.ravel() >> 16).astype(np.uint16) if dtype == "F32" else bits.ravel().astype(np.uint16)


@SETTINGS
@given(st.one_of(matrices(finite=True), heterogeneous()))
def test_v5_codec_restores_every_bit_every_decoder(m: tuple[str, np.ndarray]) -> None:
    dtype, bits = m
    q, s16, lo16 = code.quantize_block(code.as_float32(bits, dtype).reshape(bits.shape))
    ex = _round_trip(dtype, bits, q, s16, lo16)
    args = list(cells.kernel_args(ex, q, s16, lo16, dtype)[0])
    for rc, out in _all_decoders(args, q.size):
        assert rc == 0 and np.array_equal(out, _top(bits, dtype))


@SETTINGS
@given(st.one_of(arbitrary(), heterogeneous().map(lambda m: (m[0], m[1], *code.quantize_block(
    code.as_float32(m[1], m[0]).reshape(m[1].shape))))), st.integers(0, 2**32 - 1))
def test_v5_arbitrary_inputs_and_damage_same_in_c_and_numba(case: tuple, seed: int) -> None:
    """Any bits under any fast code come back; C (both isas) == numba on the intact streams and
    on damaged ones (a flipped word, a word lost, a side word flipped, other codes): the same
    return code, and the same patterns where it is 0."""
    dtype, bits, q, s16, lo16 = case
    ex = _round_trip(dtype, bits, q, s16, lo16)
    if not q.size:
        return
    args = list(cells.kernel_args(ex, q, s16, lo16, dtype)[0])
    rng = np.random.default_rng(seed)
    words, side = args[0], args[1]
    variants = [args]
    flip = words.copy()
    flip[rng.integers(0, words.size)] ^= np.uint16(1 << int(rng.integers(0, 16)))
    variants.append([flip, *args[1:]])
    lost = (np.delete(words, int(rng.integers(2 * cells.LANES, words.size)))
            if words.size > 2 * cells.LANES else words[:-1])
    variants.append([lost, *args[1:]])
    sflip = side.copy()
    sflip[rng.integers(0, side.size)] ^= np.uint16(1 << int(rng.integers(0, 16)))
    variants.append([words, sflip, *args[2:]])
    variants.append([*args[:3], args[3] + 1, *args[4:]])  # one escape more than the stream holds
    other = args[4].copy()
    other[rng.integers(0, other.size, max(1, other.size // 50))] = rng.integers(0, 16, max(1, other.size // 50))
    variants.append([*args[:4], other, *args[5:]])
    for call in variants:
        res = _all_decoders(call, q.size)
        assert len({rc for rc, _ in res}) == 1, [rc for rc, _ in res]
        if res[0][0] == 0:
            for _, out in res[1:]:
                assert np.array_equal(out, res[0][1])


def test_v5_native_refuses_bad_arguments() -> None:
    nat = _native()
    bits = np.arange(256, dtype=np.uint16).reshape(1, 256)
    q, s16, lo16 = code.quantize_block(code.as_float32(bits, "BF16").reshape(1, 256))
    args = list(cells.kernel_args(cells.encode_exact(bits, q, s16, lo16, "BF16"), q, s16, lo16, "BF16")[0])
    out = np.zeros(256, np.uint16)
    assert nat.decode(*args, out) == 0 and np.array_equal(out, bits.ravel())
    bad_dfreq = args[2].copy()
    bad_dfreq[0] = 1  # neither 0 nor 2^15 in all
    for i, bad in ((2, args[2][:3]), (2, bad_dfreq), (3, -1), (4, args[4][:-1]), (5, args[5][:0]),
                   (7, args[7][:2]), (8, 3), (9, 0), (10, 5), (11, 8)):
        call = list(args)
        call[i] = bad
        with pytest.raises((ValueError, TypeError)):
            nat.decode(*call, out)
    with pytest.raises((ValueError, TypeError)):
        nat.decode(*args, np.zeros(255, np.uint16))
