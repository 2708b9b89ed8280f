"""Property: the dual code restores its input bit for bit, whatever the weights (``codecs/dual.py``,
``codecs/dual_trunc.py``: the v1 and v2 exact members).

Two levels: the codec on quantizable matrices built from arbitrary finite bit patterns (so that
the bins, the escapes and the straddling-zero path all see hostile values: subnormals, -0, huge
outliers next to tiny weights, constant groups), and the whole ``.bsd`` file on arbitrary bit
patterns of every float dtype (NaN payloads and infinities fall back to the exact path)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigsmall.codecs import dual as code
from bigsmall.codecs import dual_fast as fastc
from bigsmall.codecs import dual_keyrun as keyrun
from bigsmall.codecs import dual_trunc as trunc
from bigsmall.io import dual
from bigsmall.testing.raw_safetensors import write_safetensors

from .strategies import SPECIAL16, SPECIAL32

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WIDTH = {"BF16": 16, "F16": 16, "F32": 32}


@st.composite
def matrices(draw: st.DrawFn, finite: bool) -> tuple[str, np.ndarray]:
    dtype = draw(st.sampled_from(sorted(WIDTH)))
    rows, cols = draw(st.integers(1, 40)), draw(st.integers(1, 300))
    width = WIDTH[dtype]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    style = draw(st.sampled_from(["bits", "normal", "mixed", "const"]))
    if style == "bits":
        bits = rng.integers(0, 1 << width, rows * cols, dtype=np.uint64)
    else:
        scale = draw(st.sampled_from([1e-30, 1e-6, 0.02, 3.0, 4e4]))
        w = (rng.standard_normal(rows * cols) * scale).astype(np.float32)
        if style == "const":
            w[:] = w[0]
        bits = _bits(w, dtype).astype(np.uint64)
        if style == "mixed":
            special = np.array(SPECIAL16 if width == 16 else SPECIAL32, dtype=np.uint64)
            k = draw(st.integers(0, max(1, rows * cols // 4)))
            bits[rng.integers(0, rows * cols, k)] = rng.choice(special, k)
    arr = bits.astype(np.uint16 if width == 16 else np.uint32).reshape(rows, cols)
    if finite:  # the codec's precondition (``quantizable``): finite and within fp16's range
        x = code.as_float32(arr, dtype).reshape(rows, cols)
        arr = np.where(np.isfinite(x) & (np.abs(x) <= code.MAX_ABS), arr, 0).astype(arr.dtype)
    return dtype, arr


def _bits(w: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return (w.view(np.uint32) >> 16).astype(np.uint16)
    if dtype == "F16":
        with np.errstate(over="ignore"):
            return w.astype(np.float16).view(np.uint16)
    return w.view(np.uint32)


@SETTINGS
@given(matrices(finite=True))
def test_codec_restores_every_bit(m: tuple[str, np.ndarray]) -> None:
    dtype, bits = m
    assert code.quantizable(bits, dtype, bits.shape)
    fast, q, s16, lo16 = code.encode_fast(code.as_float32(bits, dtype).reshape(bits.shape))
    ex = keyrun.encode_exact(bits, q, s16, lo16, dtype)
    q2, s2, lo2 = code.decode_fast(fast, *bits.shape)
    assert np.array_equal(q2, q)
    back = keyrun.decode_exact(ex, q2, s2, lo2, dtype)
    assert back.dtype == bits.dtype and np.array_equal(back, bits.ravel())


@SETTINGS
@given(matrices(finite=True))
def test_v2_codec_restores_every_bit(m: tuple[str, np.ndarray]) -> None:
    """The v2 code (fast chunk with the row-above context, exact member with the value model
    truncated to the bin): the same INT4 code as v1's, every bit back."""
    dtype, bits = m
    fast, q, s16, lo16 = fastc.encode_fast(code.as_float32(bits, dtype).reshape(bits.shape))
    q1, s1, lo1 = code.quantize_block(code.as_float32(bits, dtype).reshape(bits.shape))
    assert np.array_equal(q, q1) and np.array_equal(s16.view(np.uint16), s1.view(np.uint16))
    q2, s2, lo2 = fastc.decode_fast(fast, *bits.shape)
    assert np.array_equal(q2, q) and np.array_equal(s2.view(np.uint16), s16.view(np.uint16))
    assert np.array_equal(lo2.view(np.uint16), lo16.view(np.uint16))
    ex = trunc.encode_exact(bits, q, s16, lo16, dtype)
    back = trunc.decode_exact(ex, q2, s2, lo2, dtype)
    assert back.dtype == bits.dtype and np.array_equal(back, bits.ravel())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(matrices(finite=False), min_size=1, max_size=3))
def test_file_restores_every_byte(ms: list[tuple[str, np.ndarray]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        tensors = {}
        for i, (dtype, arr) in enumerate(ms):
            # large enough for the fast mode's rule (>= 16384 elements): tile the drawn matrix
            rep = -(-16384 // arr.size)
            big = np.tile(arr, (rep, 1))
            tensors[f"m{i}.weight"] = (dtype, big.shape, big.astype(f"<u{WIDTH[dtype] // 8}").tobytes())
        src = write_safetensors(Path(d) / "x.safetensors", tensors)
        dual.create(src, Path(d) / "x.bsd", durable=False)
        out = dual.decompress(Path(d) / "x.bsd", Path(d) / "y.safetensors", durable=False)
        assert out["bytes"] == src.stat().st_size
        assert hashlib.sha256((Path(d) / "y.safetensors").read_bytes()).digest() == \
            hashlib.sha256(src.read_bytes()).digest()


def _exact_args(ex: bytes, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray, dtype: str) -> tuple:
    """The exact kernel's arguments, as ``dual_trunc.decode_exact`` builds them."""
    import struct

    sh = trunc._shift(dtype)
    pos = 0

    def take(k: int) -> bytes:
        nonlocal pos
        pos += k
        return ex[pos - k:pos]

    tab = take(struct.unpack("<I", take(4))[0])
    W = trunc._unpack_tables(tab, 1 << (16 - sh))[0]
    esc = np.frombuffer(take(2 * struct.unpack("<I", take(4))[0]), "<u2").astype(np.uint16)
    if dtype == "F32":  # row shifts, packed low halves
        take(struct.unpack("<I", take(4))[0])
        take(struct.unpack("<I", take(4))[0])
    xs = np.frombuffer(take(8 * trunc.LANES), "<u8").astype(np.uint64)
    words = np.frombuffer(take(4 * struct.unpack("<I", take(4))[0]), "<u4").astype(np.uint32)
    kat, kbt = trunc._setup(s16, lo16, dtype)
    cc = trunc._cumulative(W, sh)
    base, mass = trunc._bins(kat, kbt, cc, W, sh)
    return (xs, words, esc, np.ascontiguousarray(q).ravel(), kat, kbt, base, mass,
            float(1 << trunc.PREC) / mass, W, 1.0 / np.maximum(W, 1), cc, q.shape[1], s16.shape[1], sh)


@SETTINGS
@given(matrices(finite=True), st.integers(0, 2**32 - 1))
def test_native_kernels_match_numba(m: tuple[str, np.ndarray], seed: int) -> None:
    """``bigsmall.native._dual`` == the numba kernels: the same return code and the same keys and
    codes, on intact streams and on streams with a flipped word."""
    from bigsmall.native import dual as native_dual

    nat = native_dual()
    if nat is None:  # the C extension is optional; the numba path is what the other tests cover
        import pytest

        pytest.skip("bigsmall.native._dual is not built")
    dtype, bits = m
    fast, q, s16, lo16 = fastc.encode_fast(code.as_float32(bits, dtype).reshape(bits.shape))
    ex = trunc.encode_exact(bits, q, s16, lo16, dtype)
    args = _exact_args(ex, q, s16, lo16, dtype)
    rng = np.random.default_rng(seed)
    for words in (args[1], args[1] ^ (rng.integers(0, 2, args[1].size) << rng.integers(0, 32)).astype(np.uint32)):
        a = np.zeros(q.size, np.int32)
        b = np.zeros(q.size, np.int32)
        ra = trunc._decode(args[0], words, *args[2:], a)
        rb = nat.decode_exact(args[0], words, *args[2:], b)
        assert ra == rb and (ra or np.array_equal(a, b))
    buf = memoryview(fast)
    s2, lo2, pos = code.read_side(buf[1:], *bits.shape)
    z = np.ascontiguousarray(code._zero_bin(s2, lo2, bits.shape[1]), dtype=np.int32)
    for up in (0, 1):
        nctx = 64 if up else 16
        stream = code.encode_stream(q.ravel(), (fastc._up_ctx(q, z) if up else z).ravel(), code._NO_RAW16,
                                    np.zeros(1, np.uint64), nctx, 16)
        words, _r, freq, cum, lut, ok = code._parse_stream(stream, nctx, 16)
        a = np.zeros(q.shape, np.uint8)
        b = np.zeros(q.shape, np.uint8)
        if up:
            ra = fastc._decode_up(words, z, freq, cum, lut, ok, a)
        else:
            sym, _ = code.decode_stream(stream, z.ravel(), code._NO_RAW16, 16, 16)
            ra, a = 0, sym.astype(np.uint8).reshape(q.shape)
        rb = nat.decode_codes(words, z, freq, cum, lut, ok, b, bits.shape[1], up)
        assert ra == rb == 0 and np.array_equal(a, b) and np.array_equal(b, q)
        bad = words.copy()
        bad[rng.integers(0, bad.size)] ^= np.uint16(1 << int(rng.integers(0, 16)))
        a[:] = 0
        b[:] = 0
        ra = fastc._decode_up(bad, z, freq, cum, lut, ok, a) if up else None
        rb = nat.decode_codes(bad, z, freq, cum, lut, ok, b, bits.shape[1], up)
        if up:
            assert ra == rb and (ra or np.array_equal(a, b))
    # mode 2: any context per code (zero bin x column cluster), passed as up = 0
    ctx = np.ascontiguousarray(z * 16 + (np.arange(bits.shape[1]) % 16)[None, :], dtype=np.int32)
    stream = code.encode_stream(q.ravel(), ctx.ravel(), fastc._NO_RAW, np.zeros(1, np.uint64), 256, 16)
    words, _r, freq, cum, lut, ok = code._parse_stream(stream, 256, 16)
    b = np.zeros(q.shape, np.uint8)
    assert nat.decode_codes(words, ctx, freq, cum, lut, ok, b, bits.shape[1], 0) == 0
    assert np.array_equal(b, q)
