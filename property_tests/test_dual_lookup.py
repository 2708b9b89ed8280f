"""Property: the ``.bsd`` 3.0 exact code (``codecs/dual_lookup.py``) restores every bit, and its
C decoder (``bigsmall.native._dual.decode_lookup``) equals the numba reference byte for byte.

Beyond the quantizable matrices ``dual`` feeds it, the codec is driven with *arbitrary* inputs:
any bit patterns (NaN payloads, infinities, -0, subnormals), any INT4 codes and any fp16 scale and
minimum bit patterns (negative, infinite, NaN scales a file could carry), empty blocks and odd
widths: the bins then hold nothing and weights escape, but every bit must come back, and damaged
streams must fail the same way in C and numba, never crash."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigsmall.codecs import dual as code
from bigsmall.codecs import dual_lookup as lookup
from bigsmall.codecs import dual_trunc as trunc

from .strategies import SPECIAL16, SPECIAL32
from .test_dual import matrices

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WIDTH = {"BF16": 16, "F16": 16, "F32": 32}


@st.composite
def arbitrary(draw: st.DrawFn) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dtype, bits, codes, scales, minimums): every part drawn independently."""
    dtype = draw(st.sampled_from(sorted(WIDTH)))
    rows, cols = draw(st.integers(0, 12)), draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    width = WIDTH[dtype]
    n = rows * cols
    bits = rng.integers(0, 1 << width, n, dtype=np.uint64)
    special = np.array(SPECIAL16 if width == 16 else SPECIAL32, dtype=np.uint64)
    k = draw(st.integers(0, n))
    bits[rng.integers(0, max(n, 1), k)[:n]] = rng.choice(special, min(k, n))
    groups = -(-cols // 128)
    side = draw(st.sampled_from(["bits", "real"]))
    if side == "real" and rows:  # a real fast code of weights near these
        w = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
        q, s16, lo16 = code.quantize_block(w)
    else:
        q = rng.integers(0, 16, (rows, cols), dtype=np.uint8)
        s16 = rng.integers(0, 1 << 16, (rows, groups), dtype=np.uint16).view(np.float16)
        lo16 = rng.integers(0, 1 << 16, (rows, groups), dtype=np.uint16).view(np.float16)
    arr = bits.astype(np.uint16 if width == 16 else np.uint32).reshape(rows, cols)
    return dtype, arr, q, s16, lo16


def _kernel_args(ex: bytes, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray, dtype: str) -> list:
    """The decode kernel's arguments but the output, as ``dual_lookup.decode_exact`` builds them."""
    return list(lookup.kernel_args(ex, q, s16, lo16, dtype)[0])


@SETTINGS
@given(matrices(finite=True))
def test_v3_codec_restores_every_bit(m: tuple[str, np.ndarray]) -> None:
    dtype, bits = m
    q, s16, lo16 = code.quantize_block(code.as_float32(bits, dtype).reshape(bits.shape))
    ex = lookup.encode_exact(bits, q, s16, lo16, dtype)
    back = lookup.decode_exact(ex, q, s16, lo16, dtype)
    assert back.dtype == bits.dtype and np.array_equal(back, bits.ravel())


@SETTINGS
@given(arbitrary(), st.integers(0, 2**32 - 1))
def test_v3_arbitrary_inputs_and_native_equals_numba(case: tuple, seed: int) -> None:
    """Any bits under any fast code come back; C == numba on the intact stream and on damaged
    ones (a flipped word, a lost word, other codes): same return code, same keys."""
    from bigsmall.native import dual as native_dual

    dtype, bits, q, s16, lo16 = case
    ex = lookup.encode_exact(bits, q, s16, lo16, dtype)
    back = lookup.decode_exact(ex, q, s16, lo16, dtype)
    assert back.dtype == bits.dtype and np.array_equal(back, bits.ravel())
    nat = native_dual()
    if nat is None:
        pytest.skip("bigsmall.native._dual is not built")
    args = _kernel_args(ex, q, s16, lo16, dtype)
    rng = np.random.default_rng(seed)
    words, counts = args[1], args[2]
    variants = [(words, counts)]
    if words.size:
        flip = words.copy()
        flip[rng.integers(0, words.size)] ^= np.uint32(1 << int(rng.integers(0, 32)))
        lane = int(np.flatnonzero(counts)[0])
        short = counts.copy()
        short[lane] -= 1  # a lane one word short, the streams one word shorter
        variants += [(flip, counts), (np.delete(words, int(counts[:lane + 1].sum()) - 1), short)]
    variants.append((words, counts[::-1].copy()))  # the lanes' streams cut elsewhere
    for w, cnt in variants:
        for qq in (args[4], rng.integers(0, 16, args[4].size, dtype=np.uint8)):
            a = np.zeros(q.size, np.int32)
            b = np.zeros(q.size, np.int32)
            call = [args[0], w, cnt, args[3], qq, *args[5:]]
            ra = lookup.decode_keys(*call, a)
            rb = nat.decode_lookup(*call, b)
            assert ra == rb
            if ra == 0:  # a damaged stream may stop at another weight of its run of four
                assert np.array_equal(a, b)


def test_v3_native_refuses_bad_arguments() -> None:
    from bigsmall.native import dual as native_dual

    nat = native_dual()
    if nat is None:
        pytest.skip("bigsmall.native._dual is not built")
    bits = np.arange(256, dtype=np.uint16).reshape(1, 256)
    q, s16, lo16 = code.quantize_block(code.as_float32(bits, "BF16").reshape(1, 256))
    args = _kernel_args(lookup.encode_exact(bits, q, s16, lo16, "BF16"), q, s16, lo16, "BF16")
    out = np.zeros(256, np.int32)
    assert nat.decode_lookup(*args, out) == 0 and np.array_equal(out, trunc._keys16(bits.ravel(), False)[0])
    for i, bad in ((0, args[0][:3]), (2, args[2][:3]), (4, args[4][:-1]), (5, args[5][:1].copy()), (7, 3),
                   (8, args[8][:-1]), (9, 0), (10, 1), (11, 8)):
        call = list(args)
        call[i] = bad
        with pytest.raises((ValueError, TypeError)):
            nat.decode_lookup(*call, out)
    with pytest.raises((ValueError, TypeError)):
        nat.decode_lookup(*args, np.zeros(256, np.int64))
