"""The ``field8`` codec: bit-exact round trips, the exact chunk format (checked against a plain
Python decoder written from the format description), strided decoding, corrupt chunks, and its
size against ``field``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigsmall.codecs.base import LEVELS, get_codec
from bigsmall.errors import IntegrityError
from bigsmall.plan.decode import decode_into

from .strategies import SUBBYTE_DTYPES, tensor_bytes

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELD_DTYPES = ["BF16", "F16", "F32", "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
                "F8_E8M0", "U8", "I8", "BOOL", *SUBBYTE_DTYPES]
CHUNKS = st.sampled_from([1, 3, 5, 7, 8, 9, 64, 333, 4096, 1 << 20])


def _decode(spec, plan):
    out = np.full(spec.nbytes, 0xA5, np.uint8)
    decode_into(spec, plan.codec, plan.params, plan.head + b"".join(plan.chunks), len(plan.head),
                tuple(len(c) for c in plan.chunks), out)
    return out


def _reference_decode(spec, plan, state, index, chunk: bytes) -> np.ndarray:
    """Chunk ``index`` decoded by the letter of the field8 format (plain Python integers)."""
    lay = state.lay
    per = int(plan.params["chunk"])
    nrows, ncols = (int(x) for x in plan.params["matrix"])
    total = spec.nbytes // (spec.info.itemsize or 1)
    k0 = index * per
    n = min(per, total - k0)
    pb, mpb = state.prob_bits, state.mprob_bits
    c = lay.c
    rbits = lay.width - c
    tsym = state.tsym.astype(int)
    tfc = state.tfc.astype(int)
    msym = state.msym.astype(int)
    mfc = state.mfc.astype(int)
    S = int.from_bytes(chunk[0:4], "little")
    assert S % 4 == 0
    xs = [int.from_bytes(chunk[4 + 8 * ln: 12 + 8 * ln], "little") for ln in range(8)]
    words = chunk[68: 68 + S]
    raw = chunk[68 + S:]
    rsh = [int(state.rshift[(k0 + t) // ncols]) for t in range(n)]
    nbits = sum(rbits - r for r in rsh)
    assert len(raw) == (nbits + 7) // 8
    bits = int.from_bytes(raw, "little")
    wp = 0
    bp = 0
    out = []
    for g in range((n + 7) // 8):
        units = range(8 * g, min(n, 8 * g + 8))
        e = {}
        m = {}
        for t in units:  # phase 1: exponents
            ln = t % 8
            k = k0 + t
            ctx = int(state.rowctx[k // ncols] + state.colctx[k % ncols])
            slot = xs[ln] & ((1 << pb) - 1)
            e[t] = tsym[(ctx << pb) + slot]
            fc = tfc[(ctx << lay.eb) + e[t]]
            xs[ln] = (fc & 0xFFFF) * (xs[ln] >> pb) + slot - (fc >> 16)
        for t in units:  # phase 2: mantissas
            ln = t % 8
            m[t] = 0
            if lay.mb:
                slot = xs[ln] & ((1 << mpb) - 1)
                m[t] = msym[(e[t] << mpb) + slot]
                fc = mfc[(e[t] << lay.mb) + m[t]]
                assert fc & 0xFFFF, "absent mantissa table"
                xs[ln] = (fc & 0xFFFF) * (xs[ln] >> mpb) + slot - (fc >> 16)
        for t in units:  # phase 3: renormalisation
            ln = t % 8
            if xs[ln] < 1 << 31:
                assert wp + 4 <= S
                xs[ln] = (xs[ln] << 32) | int.from_bytes(words[wp: wp + 4], "little")
                wp += 4
        for t in units:
            b = rbits - rsh[t]
            R = ((bits >> bp) & ((1 << b) - 1)) << rsh[t]
            bp += b
            sym = (e[t] << lay.mb) | m[t]
            p = lay.p
            out.append((sym << p) | (R & ((1 << p) - 1)) | ((R >> p) << (p + c)))
    assert xs == [1 << 31] * 8 and wp == S
    assert len(chunk) == 68 + S + (nbits + 7) // 8
    dt = {8: np.uint8, 16: np.uint16, 32: np.uint32}[lay.width]
    return np.array(out, dtype=dt).view(np.uint8)


@SETTINGS
@given(td=tensor_bytes(dtypes=FIELD_DTYPES), chunk=CHUNKS, level=st.sampled_from(LEVELS))
def test_field8_roundtrip(td, chunk, level):
    spec, data = td
    plan = get_codec("field8").encode(data, spec, chunk, level=level)
    if plan is None:
        assert spec.numel == 0 or spec.info.bits == 64
        return
    assert plan.params["lanes"] == 8
    assert _decode(spec, plan).tobytes() == data.tobytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(td=tensor_bytes(dtypes=["BF16", "F16", "F32", "F8_E4M3", "U8", "F4"]),
       chunk=st.sampled_from([1, 5, 9, 64, 333]))
def test_field8_matches_format_description(td, chunk):
    """Every chunk decodes, by a plain Python decoder written from the format description, to
    the original bytes (checks the byte layout, the phase order and the end conditions)."""
    spec, data = td
    if spec.nbytes > 6000:
        return
    codec = get_codec("field8")
    plan = codec.encode(data, spec, chunk)
    if plan is None:
        return
    state = codec.prepare(spec, plan.params, plan.head)
    unit = spec.info.itemsize or 1
    got = b"".join(_reference_decode(spec, plan, state, i, c).tobytes()
                   for i, c in enumerate(plan.chunks))
    assert got == data[: len(plan.chunks) * chunk * unit].tobytes()


@pytest.mark.parametrize("codec_id", ["field8", "fieldp"])
@SETTINGS
@given(td=tensor_bytes(dtypes=["BF16", "F16", "F32", "F8_E5M2", "U8", "I8"]),
       chunk=st.sampled_from([1, 7, 100, 333, 4096]), step=st.integers(1, 4))
def test_strided_equals_chunks(codec_id, td, chunk, step):
    """The multi-chunk kernel call gives what chunk-by-chunk decoding gives (both lane layouts)."""
    spec, data = td
    codec = get_codec(codec_id)
    plan = codec.encode(data, spec, chunk)
    if plan is None:
        return
    state = codec.prepare(spec, plan.params, plan.head)
    unit = spec.info.itemsize or 1
    one = np.full(data.size, 0x5A, np.uint8)
    for i, c in enumerate(plan.chunks):
        b, e = i * chunk * unit, min(data.size, (i + 1) * chunk * unit)
        codec.decode_chunk(state, spec, plan.params, i, c, one[b:e])
    blob = np.frombuffer(plan.head + b"".join(plan.chunks), np.uint8)
    offsets = np.cumsum((len(plan.head), *(len(c) for c in plan.chunks)), dtype=np.int64)
    many = np.full(data.size, 0x5A, np.uint8)
    for first in range(step):
        assert codec.decode_strided(state, spec, plan.params, blob, offsets, first, step, many)
    assert one.tobytes() == data.tobytes()
    assert many.tobytes() == data.tobytes()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(td=tensor_bytes(dtypes=["BF16", "F16", "F32", "U8", "F8_E4M3"]),
       chunk=st.sampled_from([5, 9, 333, 4096]), seed=st.integers(0, 2**32 - 1),
       how=st.sampled_from(["flip", "truncate", "extend", "state", "length"]))
def test_field8_corrupt_chunks_fail_cleanly(td, chunk, seed, how):
    """Corrupt chunk bytes give IntegrityError or some output, never a crash or a hang."""
    spec, data = td
    plan = get_codec("field8").encode(data, spec, chunk)
    if plan is None or not plan.chunks:
        return
    rng = np.random.default_rng(seed)
    chunks = [bytearray(c) for c in plan.chunks]
    ci = int(rng.integers(len(chunks)))
    c = chunks[ci]
    if how == "flip":
        for _ in range(int(rng.integers(1, 6))):
            c = chunks[int(rng.integers(len(chunks)))]
            c[int(rng.integers(len(c)))] = int(rng.integers(256))
    elif how == "truncate":
        del c[int(rng.integers(len(c))):]
    elif how == "extend":
        c += rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8).tobytes()
    elif how == "state":  # any 64-bit state, including ones >= 2^63
        z = 4 + 8 * int(rng.integers(8))
        c[z: z + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
    else:  # a stream length that still matches the chunk length after moving bytes around
        s = int.from_bytes(c[0:4], "little")
        c[0:4] = ((s + 4 * int(rng.integers(-3, 4))) % (1 << 32)).to_bytes(4, "little")
    out = np.empty(data.size, np.uint8)
    try:
        decode_into(spec, plan.codec, plan.params, plan.head + b"".join(bytes(x) for x in chunks),
                    len(plan.head), tuple(len(x) for x in chunks), out)
    except IntegrityError:
        pass


def test_field8_corrupt_exhaustive_small():
    """Every single-byte change of a small tensor's chunks: IntegrityError or output."""
    rng = np.random.default_rng(7)
    x = rng.normal(0, 0.02, 400).astype(np.float32)
    data = (x.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(-1)
    from bigsmall.core.types import TensorSpec

    spec = TensorSpec("t", "BF16", (20, 20), 0, data.size)
    codec = get_codec("field8")
    plan = codec.encode(data, spec, 133)
    state = codec.prepare(spec, plan.params, plan.head)
    bad = 0
    for ci, c in enumerate(plan.chunks):
        for pos in range(len(c)):
            for val in (0, 0xFF, c[pos] ^ 0x80):
                cc = bytearray(c)
                cc[pos] = val
                out = np.empty(min(133, 400 - ci * 133) * 2, np.uint8)
                try:
                    codec.decode_chunk(state, spec, plan.params, ci, bytes(cc), out)
                except IntegrityError:
                    bad += 1
    assert bad > 0


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(td=tensor_bytes(dtypes=["BF16", "F16", "F32", "F8_E4M3", "U8"]),
       chunk=st.sampled_from([64, 333, 4096, 1 << 16]), level=st.sampled_from(LEVELS))
def test_field8_size_close_to_field(td, chunk, level):
    """Same model, same tables: the coded sizes differ by chunk overhead and rANS rounding."""
    spec, data = td
    p4 = get_codec("field").encode(data, spec, chunk, level=level)
    p8 = get_codec("field8").encode(data, spec, chunk, level=level)
    if p4 is None:
        assert p8 is None
        return
    assert p8 is not None
    assert p8.head == p4.head
    assert {k: v for k, v in p8.params.items() if k != "lanes"} == \
        {k: v for k, v in p4.params.items() if k != "lanes"}
    for c4, c8 in zip(p4.chunks, p8.chunks, strict=True):
        assert abs(len(c8) - len(c4)) <= 64 + len(c4) // 1000


def test_field8_real_weights_size():
    """On trained-looking bf16 weights, field8 is within 0.1% + chunk overhead of field."""
    from bigsmall.core.types import TensorSpec

    rng = np.random.default_rng(3)
    x = (rng.standard_t(5, (512, 768)) * 0.02).astype(np.float32)
    data = (x.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(-1)
    spec = TensorSpec("w", "BF16", (512, 768), 0, data.size)
    p4 = get_codec("field").encode(data, spec, 1 << 16)
    p8 = get_codec("field8").encode(data, spec, 1 << 16)
    assert _decode(spec, p8).tobytes() == data.tobytes()
    s4 = sum(len(c) for c in p4.chunks)
    s8 = sum(len(c) for c in p8.chunks)
    assert abs(s8 - s4) <= 64 * len(p4.chunks) + s4 // 1000


def test_field8_bad_params():
    from bigsmall.core.types import TensorSpec
    from bigsmall.errors import FormatError

    data = np.arange(64, dtype=np.uint8)
    spec = TensorSpec("t", "U8", (64,), 0, 64)
    codec = get_codec("field8")
    plan = codec.encode(data, spec, 16)
    with pytest.raises(FormatError):
        codec.prepare(spec, {**plan.params, "lanes": 4}, plan.head)
    assert get_codec("field").encode(data, spec, 16).params["lanes"] == 4
    with pytest.raises(FormatError):
        get_codec("field").prepare(spec, plan.params, plan.head)


def test_generated_kernel_is_current():
    from bigsmall.codecs._generated import gen_decode8

    assert gen_decode8.TARGET.read_text() == gen_decode8.generate()


def _spec_reference():
    """``spec/reference_decoder.py``'s ``Field8`` (written from FORMAT.md alone), or skip."""
    import importlib
    import sys
    from pathlib import Path

    here = str(Path(__file__).resolve().parents[1] / "spec")
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        rd = importlib.import_module("reference_decoder")
    except ImportError as exc:  # pragma: no cover
        pytest.skip(f"spec reference decoder unavailable: {exc}")
    if not hasattr(rd, "Field8"):  # pragma: no cover
        pytest.skip("spec reference decoder has no Field8 yet")
    return rd


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(td=tensor_bytes(dtypes=["BF16", "F16", "F32", "F8_E4M3", "F8_E5M2", "U8", "F4"]),
       chunk=st.sampled_from([1, 5, 9, 64, 333]), level=st.sampled_from(LEVELS))
def test_field8_matches_spec_reference_decoder(td, chunk, level):
    spec, data = td
    if spec.nbytes > 6000:
        return
    rd = _spec_reference()
    plan = get_codec("field8").encode(data, spec, chunk, level=level)
    if plan is None:
        return
    unit = spec.info.itemsize or 1
    ref = rd.Field8(plan.params, unit, spec.nbytes, plan.head)
    got = bytearray()
    for ci, c in enumerate(plan.chunks):
        m = min(chunk, spec.nbytes // unit - ci * chunk)
        for v in ref.decode_chunk(ci, c, m):
            got += v.to_bytes(unit, "little")
    assert bytes(got) == data.tobytes()


def _weights(rng, shape, dtype):
    x = (rng.standard_t(5, shape) * 0.02).astype(np.float32)
    if dtype == "F32":
        return x.view(np.uint32)
    if dtype == "F16":
        return x.astype(np.float16).view(np.uint16)
    return (x.view(np.uint32) >> 16).astype(np.uint16)


@pytest.mark.parametrize("dtype", ["BF16", "F16", "F32"])
@pytest.mark.parametrize("shift_rows", [False, True])
@pytest.mark.parametrize("chunk", [1000, 4099, 1 << 16])
def test_field8_every_kernel_loop(dtype, shift_rows, chunk):
    """Big enough for the fast loops, rows of 37 (groups cross rows), with and without row
    shifts (rows whose low raw bits are all zero): bit-exact, and the same as chunk by chunk."""
    from bigsmall.core.types import TensorSpec

    rng = np.random.default_rng(11)
    v = _weights(rng, (300, 37), dtype).copy()
    if shift_rows:
        v[::3] &= v.dtype.type(~np.uint64(0xFF) & np.uint64((1 << (8 * v.itemsize)) - 1))
    data = v.view(np.uint8).reshape(-1)
    spec = TensorSpec("w", dtype, (300, 37), 0, data.size)
    codec = get_codec("field8")
    plan = codec.encode(data, spec, chunk)
    assert plan.params["row_shift"] == shift_rows
    assert _decode(spec, plan).tobytes() == data.tobytes()


@pytest.mark.parametrize("dtype", ["U8", "F8_E4M3", "F8_E5M2"])
def test_field8_byte_kernels(dtype):
    from bigsmall.core.types import TensorSpec

    rng = np.random.default_rng(5)
    data = np.clip(rng.normal(128, 9, 50_000), 0, 255).astype(np.uint8)
    spec = TensorSpec("b", dtype, (250, 200), 0, data.size)
    for chunk in (777, 1 << 15, 1 << 20):
        plan = get_codec("field8").encode(data, spec, chunk)
        assert _decode(spec, plan).tobytes() == data.tobytes()


def test_field8_kernel_bounds_checked_build():
    """The generated kernel rebuilt with bounds-checked loads and stores (the production build
    uses unchecked intrinsics), fed corrupt chunks: every read and write stays in bounds."""
    from bigsmall.codecs._generated import gen_decode8
    from bigsmall.core.types import TensorSpec

    from .checked_loads import checked_build

    dec = checked_build(gen_decode8.generate(), "_decode8")["decode_chunk"]
    rng = np.random.default_rng(0)
    x = (rng.standard_t(5, (40, 203)) * 0.02).astype(np.float32)
    bf = (x.view(np.uint32) >> 16).astype(np.uint16)
    bf[::5] &= 0xFFE0  # row shifts
    cases = [("BF16", bf.view(np.uint8).reshape(-1)),
             ("F32", x.view(np.uint8).reshape(-1)),
             ("U8", np.clip(rng.normal(128, 9, x.size), 0, 255).astype(np.uint8))]
    codec = get_codec("field8")
    rejected = 0
    for dtype, data in cases:
        spec = TensorSpec("t", dtype, (40, 203), 0, data.size)
        unit = spec.info.itemsize or 1
        for chunk in (333, 1 << 20):
            plan = codec.encode(data, spec, chunk)
            s = codec.prepare(spec, plan.params, plan.head)
            lay = s.lay
            for ci, c in enumerate(plan.chunks[:3]):
                n = min(chunk, data.size // unit - ci * chunk)
                out = np.empty(n, {1: np.uint8, 2: np.uint16, 4: np.uint32}[unit])
                args = (ci * chunk, 203, s.rowctx, s.colctx, s.tsym, s.tfc, s.prob_bits, s.msym,
                        s.mfc, s.mprob_bits, lay.p, lay.eb, lay.mb, s.rshift)
                assert dec(out, *args, np.frombuffer(c, np.uint8)) == 0
                b = ci * chunk * unit
                assert out.view(np.uint8).tobytes() == data[b: b + n * unit].tobytes()
                for trial in range(100):
                    cc = bytearray(c)
                    how = trial % 4
                    if how == 0:
                        for _ in range(int(rng.integers(1, 6))):
                            cc[int(rng.integers(len(cc)))] = int(rng.integers(256))
                    elif how == 1:
                        del cc[int(rng.integers(len(cc))):]
                    elif how == 2:
                        z = 4 + 8 * int(rng.integers(8))
                        cc[z: z + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
                    else:
                        sl = int.from_bytes(cc[0:4], "little") + 4 * int(rng.integers(-8, 9))
                        cc[0:4] = (sl % (1 << 32)).to_bytes(4, "little")
                    rejected += dec(out, *args, np.frombuffer(bytes(cc), np.uint8)) != 0
    assert rejected > 0


@pytest.mark.parametrize("case", ["u8-no-raw", "16bit-shifted-away"])
def test_field8_fast_loop_without_raw_bits(monkeypatch, case):
    """Groups whose row has no raw bits left (``rbits == 0``, or a row shift that removes
    them all) with mantissa symbols: the fast loop reads its (masked-off) raw bits from the
    buffer's start then. Layouts forced, as the encoder's own choice rarely gives these:
    bit-exact with the production kernel, and every read in bounds in the checked build."""
    from bigsmall.codecs import field
    from bigsmall.codecs._generated import gen_decode8
    from bigsmall.core.types import TensorSpec

    from .checked_loads import checked_build

    rng = np.random.default_rng(3)
    if case == "u8-no-raw":
        lay = field.Layout(8, 0, 5, 3)  # c == width: no raw bits at all
        v = np.clip(rng.normal(128, 9, (60, 203)), 0, 255).astype(np.uint8)
        dtype = "U8"
    else:
        lay = field.Layout(16, 5, 8, 3)  # rbits 5 == p: a row shift of 5 leaves none
        v = np.clip(rng.normal(9000, 700, (60, 203)), 0, 65535).astype(np.uint16)
        v[::2] &= 0xFFE0  # every other row: low 5 bits zero, shifted away
        dtype = "BF16"  # any 16-bit float: the layout is forced
    monkeypatch.setattr(field, "_choose_layout_counts", lambda values, lay0, spec: (lay, None, 0))
    data = v.view(np.uint8).reshape(-1)
    spec = TensorSpec("t", dtype, v.shape, 0, data.size)
    codec = get_codec("field8")
    dec = checked_build(gen_decode8.generate(), "_decode8")["decode_chunk"]
    unit = v.itemsize
    for chunk in (333, 1 << 20):
        plan = codec.encode(data, spec, chunk)
        assert tuple(plan.params["layout"]) == (lay.width, lay.p, lay.eb, lay.mb)
        assert plan.params["row_shift"] == (case != "u8-no-raw")
        assert _decode(spec, plan).tobytes() == data.tobytes()
        s = codec.prepare(spec, plan.params, plan.head)
        for ci, c in enumerate(plan.chunks):
            n = min(chunk, v.size - ci * chunk)
            out = np.empty(n, v.dtype)
            args = (ci * chunk, v.shape[1], s.rowctx, s.colctx, s.tsym, s.tfc, s.prob_bits,
                    s.msym, s.mfc, s.mprob_bits, lay.p, lay.eb, lay.mb, s.rshift)
            assert dec(out, *args, np.frombuffer(c, np.uint8)) == 0
            b = ci * chunk * unit
            assert out.view(np.uint8).tobytes() == data[b: b + n * unit].tobytes()
