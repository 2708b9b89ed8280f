"""Property: the C decoder of the ``.bsd`` fast chunk's INT4 codes (``native._dual.decode_codes``:
slot -> symbol tables for up to 64 contexts, a vectorised count over ``cum`` beyond) returns what
the numba reference returns (``codecs/dual.py: _decode``, ``codecs/dual_fast.py: _decode_up``;
4.0's interleaved states: ``_encode_lanes``/``_decode_lanes``), the return value, and the codes
where it decodes, on arbitrary symbol/context streams (skewed tables, a symbol holding the whole
mass, unused contexts) intact or with flipped words, for any lane count 1-8 and 16 (5.0);
inconsistent tables are refused."""

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


def _with_contexts(draw: st.DrawFn, rng: np.random.Generator, q: np.ndarray, z: np.ndarray,
                   mode: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(q, z, the codes' contexts, their number, up) of a context mode: 0 the zero bin, 1 and
    the row above, 2 and a drawn cluster per column."""
    if mode == 1:
        return q, z, fastc._up_ctx(q, z).ravel(), 64, 1
    if mode == 2:
        k = draw(st.sampled_from([16, 64]))
        cm = rng.integers(0, k, size=q.shape[1]).astype(np.int32)
        return q, z, (z * k + cm[None, :]).ravel(), 16 * k, 0
    return q, z, z.ravel(), 16, 0


@st.composite
def streams(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(codes (rows, cols) u8, zero bins (rows, cols) i32, contexts flat, nctx, up); the zero bins
    are constant along a row, as a group's are along its 128 codes."""
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
    return _with_contexts(draw, rng, q, z, mode)


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


def _coded(s: tuple[np.ndarray, np.ndarray, np.ndarray, int, int], lanes: int, seed: int) -> tuple:
    """A drawn case coded on ``lanes`` states: (native module, q, z, ctx, nctx, up, words, freq,
    cum, lut, ok, the kernel's contexts, an rng, word flips: ~1 % of the words and one more)."""
    nat = _nat()
    q, z, ctx, nctx, up = s
    stream = fastc.encode_codes(q, ctx.reshape(q.shape), nctx, lanes)
    words, _r, freq, cum, lut, ok = code._parse_stream(stream, nctx, 16)
    zz = z if up else np.ascontiguousarray(ctx.reshape(q.shape), dtype=np.int32)
    rng = np.random.default_rng(seed)
    flips = (np.uint16(1) << rng.integers(0, 16, words.size)).astype(np.uint16) * (rng.random(words.size) < 0.01)
    flips[int(rng.integers(0, words.size))] |= np.uint16(1 << int(rng.integers(0, 16)))
    return nat, q, z, ctx, nctx, up, words, freq, cum, lut, ok, zz, rng, flips


@SETTINGS
@given(streams(), st.sampled_from([1, 2, 3, 4, 7, 8, 16]), st.integers(0, 2**32 - 1))
def test_lanes_native_matches_numba(s: tuple[np.ndarray, np.ndarray, np.ndarray, int, int], lanes: int,
                                    seed: int) -> None:
    """4.0's (and 5.0's 16) interleaved states: encode (numba) -> decode, C == numba, intact and damaged
    (flipped words, a word dropped or added, another lane count's stream)."""
    nat, q, z, ctx, nctx, up, words, freq, cum, lut, ok, zz, rng, flips = _coded(s, lanes, seed)
    other = code._parse_stream(fastc.encode_codes(q, ctx.reshape(q.shape), nctx, 8 if lanes == 16 else 9 - lanes), nctx,
                               16)[0]
    for i, w in enumerate((words, words ^ flips, words[:-1], np.append(words, np.uint16(7)), other)):
        a = np.zeros(q.shape, np.uint8)
        b = np.zeros(q.shape, np.uint8)
        ra = fastc._decode_lanes(w, zz, freq, cum, lut, ok, a, up, lanes)
        rb = nat.decode_codes(w, zz, freq, cum, lut, ok, b, q.shape[1], up, lanes)
        assert ra == rb
        if i == 0:
            assert ra == 0 and np.array_equal(a, q) and np.array_equal(b, q)
        elif not ra:
            assert np.array_equal(a, b)


@SETTINGS
@given(streams(), st.sampled_from([1, 8, 16]))
def test_codes_per_group_contexts(s: tuple[np.ndarray, np.ndarray, np.ndarray, int, int], lanes: int) -> None:
    """``decode_codes(..., cm, k)`` with one zero bin per group of 128 codes (and mode 2's column
    clusters) decodes as with the contexts spelled out per code, as ``dual_fast.decode_fast``
    calls it; a cluster at or above ``k`` is refused."""
    nat = _nat()
    q, z, ctx, nctx, up = s
    stream = fastc.encode_codes(q, ctx.reshape(q.shape), nctx, lanes)
    words, _r, freq, cum, lut, ok = code._parse_stream(stream, nctx, 16)
    zg = np.ascontiguousarray(z[:, ::128])
    k = 0 if up or nctx == 16 else nctx // 16
    cm = (ctx.reshape(q.shape)[0] - z[0] * k).astype(np.uint8) if k else np.zeros(0, np.uint8)
    a = np.zeros(q.shape, np.uint8)
    b = np.zeros(q.shape, np.uint8)
    full = z if up else np.ascontiguousarray(ctx.reshape(q.shape), dtype=np.int32)
    assert nat.decode_codes(words, full, freq, cum, lut, ok, a, q.shape[1], up, lanes) == 0
    assert nat.decode_codes(words, zg, freq, cum, lut, ok, b, q.shape[1], up, lanes, cm, k) == 0
    assert np.array_equal(a, q) and np.array_equal(b, q)
    if k:
        bad = cm.copy()
        bad[-1] = k
        with pytest.raises(ValueError):
            nat.decode_codes(words, zg, freq, cum, lut, ok, b, q.shape[1], up, lanes, bad, k)


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


@SETTINGS
@given(st.sampled_from(["BF16", "F16", "F32"]), st.integers(1, 9), st.integers(1, 400),
       st.sampled_from(["bits", "small", "large", "edge", "nonfinite"]), st.integers(0, 2**32 - 1))
def test_dequantize_native_matches_numpy(dtype: str, rows: int, cols: int, style: str, seed: int) -> None:
    """``native._dual.dequantize`` == ``to_dtype_bits(dequantize_block(...))`` bit for bit, with
    each instruction set forced (the AVX2 loop and the scalar one; rows of any length, so the
    AVX2 loop's 16-code tail too), on arbitrary finite fp16 scales and minimums (subnormals, -0,
    values whose dequantized code rounds past fp16's largest, results around +-65520, fp16's
    rounding edge to infinity; ties of every rounding); not finite: it declines (returns 1)."""
    nat = _nat()
    rng = np.random.default_rng(seed)
    groups = -(-cols // 128)
    q = rng.integers(0, 16, (rows, cols)).astype(np.uint8)
    s16 = rng.integers(0, 1 << 16, (rows, groups)).astype(np.uint16)
    lo16 = rng.integers(0, 1 << 16, (rows, groups)).astype(np.uint16)
    if style == "small":  # subnormal and tiny: fp16's rounding below 2^-14
        s16 &= 0x83FF
        lo16 &= 0x87FF
    elif style == "large":  # near fp16's top: rounding into infinity
        s16 = (s16 & 0x03FF) | 0x7400
        lo16 = (lo16 & 0x83FF) | 0x7800
    elif style == "edge":  # minimums just below 65504, scales 1..16: results around +-65520
        s16 = (s16 & 0x0FFF) | 0x3C00
        lo16 = 0x7BFF - (lo16 & 0x3F) | (lo16 & 0x8000)
    if style != "nonfinite":  # exponent 31 (inf, NaN) -> 30
        s16 = np.where((s16 & 0x7C00) == 0x7C00, s16 & 0xFBFF, s16).astype(np.uint16)
        lo16 = np.where((lo16 & 0x7C00) == 0x7C00, lo16 & 0xFBFF, lo16).astype(np.uint16)
    else:
        s16[rng.integers(0, rows), rng.integers(0, groups)] = 0x7C00 | int(rng.integers(0, 1024))
    with np.errstate(over="ignore", invalid="ignore"):
        ref = code.to_dtype_bits(code.dequantize_block(q, s16.view(np.float16), lo16.view(np.float16)), dtype)
    default = nat.isa()
    try:
        for isa in _isas(nat):
            nat._set_isa(isa)
            out = np.zeros((rows, cols), np.uint32 if dtype == "F32" else np.uint16)
            rc = nat.dequantize(q, s16, lo16, cols, fastc._DTYPE_CODE[dtype], out)
            if style == "nonfinite":
                assert rc == 1
                continue
            assert rc == 0 and np.array_equal(out, ref), isa
            assert np.array_equal(fastc.dequantize_bits(q, s16.view(np.float16), lo16.view(np.float16), dtype), ref)
    finally:
        nat._set_isa(default)


def test_dequantize_fp16_edges() -> None:
    """fp16 results at the edges (every q with scales and minimums that put q s + lo on fp16's
    subnormal steps, its smallest normal, around 65504/65520/65536), each instruction set."""
    nat = _nat()
    q = np.tile(np.arange(16, dtype=np.uint8), 8)[None, :].repeat(6, 0)
    s16 = np.array([[0x0001], [0x0400], [0x3C00], [0x4000], [0xC000], [0x0200]], np.uint16)
    lo16 = np.array([[0x8003], [0x83FF], [0x7BFE], [0x7BFF], [0xFBFF], [0x0000]], np.uint16)
    with np.errstate(over="ignore"):
        ref = code.to_dtype_bits(code.dequantize_block(q, s16.view(np.float16), lo16.view(np.float16)), "F16")
    assert (ref == 0x7C00).any() and (ref == 0xFC00).any() and (ref == 0x7BFF).any()
    default = nat.isa()
    try:
        for isa in _isas(nat):
            nat._set_isa(isa)
            out = np.zeros(q.shape, np.uint16)
            assert nat.dequantize(q, s16, lo16, 128, 1, out) == 0
            assert np.array_equal(out, ref), isa
    finally:
        nat._set_isa(default)


def _isas(nat) -> list[str]:  # type: ignore[no-untyped-def]
    """The instruction sets to force: scalar, and avx2 where the module and the CPU have it."""
    default = nat.isa()
    try:
        nat._set_isa("avx2")
        return ["scalar", "avx2"]
    except ValueError:
        return ["scalar"]
    finally:
        nat._set_isa(default)


@st.composite
def wide_streams(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """As ``streams``, with the sizes the AVX2 step's edges care about: fewer than 8 (16) codes,
    rows of fewer or not a multiple of 8 (16) codes, a row crossing inside a step, zero bins changing
    inside a row (groups), longer chunks (more than one 2048-code period)."""
    shape = draw(st.sampled_from(["tiny", "narrow", "odd", "long"]))
    if shape == "tiny":
        rows, cols = draw(st.integers(1, 3)), draw(st.integers(1, 7))
    elif shape == "narrow":
        rows, cols = draw(st.integers(1, 40)), draw(st.integers(1, 33))
    elif shape == "odd":
        rows, cols = draw(st.integers(1, 30)), draw(st.integers(17, 300))
    else:
        rows, cols = draw(st.integers(20, 60)), draw(st.sampled_from([64, 128, 136, 257, 384]))
    mode = draw(st.sampled_from([0, 1, 1, 2]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    skew = draw(st.sampled_from([0.0, 1.0, 4.0, 30.0]))
    p = rng.dirichlet(np.full(16, 0.3)) if skew else np.full(16, 1 / 16)
    if skew > 10:
        p = np.zeros(16)
        p[int(rng.integers(0, 16))] = 1.0
    q = rng.choice(16, size=(rows, cols), p=p).astype(np.uint8)
    zg = rng.integers(0, 16, size=(rows, -(-cols // 128))).astype(np.int32)
    if draw(st.booleans()):  # a few zero bins only (real groups), or any
        zg = (zg % 3 + 6).astype(np.int32)
    z = np.ascontiguousarray(zg.repeat(128, 1)[:, :cols])
    return _with_contexts(draw, rng, q, z, mode)


def _check_isas(s: tuple[np.ndarray, np.ndarray, np.ndarray, int, int], seed: int, lanes: int) -> None:
    """4.0's 8 states (5.0's 16) with each instruction set forced (``_set_isa``: the AVX2 steps where the CPU
    has them -- modes 0 and 1's, mode 2's -- and the scalar step): the same return value as
    numba's ``_decode_lanes``, and the same codes where it decodes, intact and damaged (flipped
    words, a word dropped, added or zeroed, a state's initial word below 2^16, a context without
    a table, another lane count's stream); per code contexts and per group zero bins (and column
    clusters) alike."""
    nat, q, z, ctx, nctx, up, words, freq, cum, lut, ok, zz, rng, flips = _coded(s, lanes, seed)
    zeroed = words.copy()
    zeroed[int(rng.integers(2 * lanes, max(words.size, 2 * lanes + 1))) % words.size] = 0
    low = words.copy()
    low[2 * int(rng.integers(0, lanes)) + 1] = 0  # a state starting below 2^16
    other = code._parse_stream(fastc.encode_codes(q, ctx.reshape(q.shape), nctx, 8 if lanes == 16 else 7), nctx,
                               16)[0]
    used = np.flatnonzero(ok)
    nok = ok.copy()
    nok[used[int(rng.integers(0, used.size))]] = 0  # a used context loses its table
    cases = [(words, ok), (words ^ flips, ok), (words[:-1], ok), (np.append(words, np.uint16(7)), ok),
             (zeroed, ok), (low, ok), (other, ok), (words, nok), (words[: int(rng.integers(0, words.size))], ok)]
    default = nat.isa()
    try:
        for i, (w, okw) in enumerate(cases):
            a = np.zeros(q.shape, np.uint8)
            ra = fastc._decode_lanes(w, zz, freq, cum, lut, okw, a, up, lanes)
            if i == 0:
                assert ra == 0 and np.array_equal(a, q)
            for isa in _isas(nat):
                nat._set_isa(isa)
                b = np.zeros(q.shape, np.uint8)
                assert nat.decode_codes(w, zz, freq, cum, lut, okw, b, q.shape[1], up, lanes) == ra, (isa, i)
                if not ra:
                    assert np.array_equal(a, b), (isa, i)
                # per group zero bins (and mode 2's column clusters), contexts built in the kernel
                k = 0 if up or nctx == 16 else nctx // 16
                cm = (ctx.reshape(q.shape)[0] - z[0] * k).astype(np.uint8) if k else np.zeros(0, np.uint8)
                c = np.zeros(q.shape, np.uint8)
                assert nat.decode_codes(w, np.ascontiguousarray(z[:, ::128]), freq, cum, lut, okw, c, q.shape[1], up,
                                        lanes, cm, k) == ra, (isa, i)
                if not ra:
                    assert np.array_equal(a, c), (isa, i)
    finally:
        nat._set_isa(default)


@SETTINGS
@given(wide_streams(), st.integers(0, 2**32 - 1))
def test_lanes8_isas_match_numba(s: tuple[np.ndarray, np.ndarray, np.ndarray, int, int], seed: int) -> None:
    _check_isas(s, seed, 8)


@SETTINGS
@given(wide_streams(), st.integers(0, 2**32 - 1))
def test_lanes16_isas_match_numba(s: tuple[np.ndarray, np.ndarray, np.ndarray, int, int], seed: int) -> None:
    """5.0's 16 states (the AVX2 step: two vectors of 8), as ``_check_isas``."""
    _check_isas(s, seed, 16)


def test_isa_switch() -> None:
    """``isa()`` names the step in use; ``_set_isa`` forces one, refuses other names, and avx2
    only where the CPU has it."""
    nat = _nat()
    default = nat.isa()
    assert default in ("scalar", "avx2")
    try:
        nat._set_isa("scalar")
        assert nat.isa() == "scalar"
        with pytest.raises(ValueError):
            nat._set_isa("sse9")
        if "avx2" in _isas(nat):
            nat._set_isa("avx2")
            assert nat.isa() == "avx2"
    finally:
        nat._set_isa(default)


def test_per_group_contexts_out_of_range_refused() -> None:
    """Per group zero bins (k >= 0): a context out of range (a zero bin below 0 or above the
    mode's last, a cluster at or above k, an absurd k) is refused before decoding, as with the
    contexts spelled out per code."""
    nat = _nat()
    rng = np.random.default_rng(5)
    q = rng.integers(0, 16, (3, 300)).astype(np.uint8)
    z = np.full((3, 300), 7, np.int32)
    for up, nctx, k in ((0, 16, 0), (1, 64, 0), (0, 256, 16)):
        cm = (np.arange(300) % k).astype(np.uint8) if k else np.zeros(0, np.uint8)
        ctx = fastc._up_ctx(q, z) if up else z * k + cm[None, :].astype(np.int32) if k else z
        words, _r, freq, cum, lut, ok = code._parse_stream(fastc.encode_codes(q, ctx, nctx, 8), nctx, 16)
        zg = np.full((3, 3), 7, np.int32)
        out = np.zeros_like(q)
        assert nat.decode_codes(words, zg, freq, cum, lut, ok, out, 300, up, 8, cm, k) == 0
        assert np.array_equal(out, q)
        for bad_z in (-1, 16 if (up or k) else nctx):
            zb = zg.copy()
            zb[2, 1] = bad_z
            with pytest.raises(ValueError):
                nat.decode_codes(words, zb, freq, cum, lut, ok, out, 300, up, 8, cm, k)
    with pytest.raises(ValueError):
        nat.decode_codes(words, zg, freq, cum, lut, ok, out, 300, 0, 8, np.zeros(300, np.uint8), 1 << 40)
