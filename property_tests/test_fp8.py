"""fp8 tensors (``codecs/fp8.py``): every one of the 256 bit patterns of both fp8 dtypes (NaN
encodings, +-0, subnormals, the FNUZ variants) round-trips bit-exactly through every coder,
level and chunk size, through the planner, the fp8 encoder itself and ``bigsmall.compress`` /
``decompress``; and the streams it writes are ordinary ``field8``/``fieldp``/``field``
streams whose corrupt chunks and parameters fail as typed errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigsmall
from bigsmall.codecs import fp8
from bigsmall.codecs.base import CODERS, LEVELS, get_codec
from bigsmall.core.types import TensorSpec
from bigsmall.errors import BigsmallError
from bigsmall.plan.decode import decode_into
from bigsmall.plan.planner import plan_tensor
from bigsmall.testing.synthetic import write_safetensors

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FP8 = ["F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ"]
SHAPES = st.one_of(
    st.just(()),
    st.lists(st.integers(0, 9), min_size=1, max_size=3).map(tuple),
    st.tuples(st.integers(1, 200), st.integers(1, 200)),
    st.tuples(st.integers(1, 40), st.integers(100, 700)),  # wide enough for column clusters
)


def _decode(spec: TensorSpec, plan) -> np.ndarray:
    out = np.full(spec.nbytes, 0xA5, np.uint8)
    decode_into(spec, plan.codec, plan.params, plan.head + b"".join(plan.chunks), len(plan.head),
                tuple(len(c) for c in plan.chunks), out)
    return out


def _spec(dtype: str, shape: tuple[int, ...]) -> TensorSpec:
    return TensorSpec("w", dtype, shape, 0, math.prod(shape))


def _weights_like(rng: np.random.Generator, n: int, eb: int) -> np.ndarray:
    """fp8 codes shaped like a scaled weight tensor: random sign, magnitudes concentrated on a
    few exponents with per-column scales (what the context search acts on)."""
    mb = 7 - eb
    exp = np.clip(rng.geometric(0.35, n) + (1 << eb) - 6 - rng.integers(0, 3, n), 0, (1 << eb) - 1)
    mag = exp << mb | rng.integers(0, 1 << mb, n)
    return (mag | rng.integers(0, 2, n) << 7).astype(np.uint8)


@st.composite
def fp8_tensors(draw: st.DrawFn) -> tuple[TensorSpec, np.ndarray]:
    dtype = draw(st.sampled_from(FP8))
    shape = draw(SHAPES)
    n = math.prod(shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "weights", "all256", "few"]))
    if kind == "random":
        data = rng.integers(0, 256, n, dtype=np.uint8)
    elif kind == "weights":
        data = _weights_like(rng, n, 4 if "E4M3" in dtype else 5)
    elif kind == "all256":  # every bit pattern, as often as the size allows, shuffled
        data = rng.permutation(np.resize(np.arange(256, dtype=np.uint8), n))
    else:
        data = rng.choice(rng.integers(0, 256, 3, dtype=np.uint8), n)
    return _spec(dtype, shape), data


@pytest.mark.parametrize("dtype", FP8)
@pytest.mark.parametrize("coder", CODERS)
@pytest.mark.parametrize("level", LEVELS)
def test_every_bit_pattern_every_coder(dtype, coder, level):
    """All 256 patterns, each many times and in weight-like surroundings, in several shapes."""
    rng = np.random.default_rng(7)
    base = _weights_like(rng, 300 * 256, 4 if "E4M3" in dtype else 5)
    base[rng.permutation(base.size)[: 256 * 20]] = np.repeat(np.arange(256, dtype=np.uint8), 20)
    version = (1, 1) if coder == "rans" else (1, 2)
    for shape in [(300, 256), (256 * 300,), (7, 10971 + 3)]:
        n = math.prod(shape)
        data = np.resize(base, n)
        spec = _spec(dtype, shape)
        for chunk_bytes in (1000, 1 << 18):
            plan = plan_tensor(data, spec, chunk_bytes, level, version, coder)
            assert plan.codec in ("field8", "fieldp", "field", "zstd", "raw"), plan.codec
            assert _decode(spec, plan).tobytes() == data.tobytes()


@SETTINGS
@given(fp8_tensors(), st.sampled_from([7, 1000, 1 << 18]), st.sampled_from(LEVELS),
       st.sampled_from(CODERS))
def test_planner_roundtrip(td, chunk_bytes, level, coder):
    spec, data = td
    version = (1, 1) if coder == "rans" else (1, 2)
    plan = plan_tensor(data, spec, chunk_bytes, level, version, coder)
    assert plan.coded_size <= data.size or plan.codec == "raw"
    assert _decode(spec, plan).tobytes() == data.tobytes()


@SETTINGS
@given(fp8_tensors(), st.sampled_from([1, 5, 333, 4096]), st.sampled_from(LEVELS),
       st.sampled_from(["field", "field8", "fieldp"]))
def test_fp8_encoder_directly(td, chunk, level, codec_id):
    """The fp8 encoder forced onto each stream layout, both models (``fp8._layouts``)."""
    spec, data = td
    plan = fp8.encode(data, spec, chunk, level, codec_id)
    if spec.numel == 0:
        assert plan is None
        return
    assert plan is not None and plan.codec == codec_id
    assert _decode(spec, plan).tobytes() == data.tobytes()
    for m in fp8.models(data, spec, level):
        p = get_codec(codec_id).plan(m, chunk)  # type: ignore[attr-defined]
        assert _decode(spec, p).tobytes() == data.tobytes()


@SETTINGS
@given(fp8_tensors(), st.integers(0, 2**32 - 1))
def test_corrupt_streams_fail_typed(td, seed):
    """A flipped byte in a chunk or the side information of an fp8 stream decodes to some
    output or raises a BigsmallError: never anything else (no crash, no stray exception)."""
    spec, data = td
    if spec.numel == 0:
        return
    plan = fp8.encode(data, spec, 4096)
    assert plan is not None
    rng = np.random.default_rng(seed)
    blob = bytearray(plan.head + b"".join(plan.chunks))
    i = int(rng.integers(0, len(blob)))
    blob[i] ^= int(rng.integers(1, 256))
    out = np.zeros(spec.nbytes, np.uint8)
    try:
        decode_into(spec, plan.codec, plan.params, bytes(blob), len(plan.head),
                    tuple(len(c) for c in plan.chunks), out)
    except BigsmallError:
        pass


@pytest.mark.parametrize("key,value", [("layout", [8, 0, 9, 0]), ("layout", [8, 2, 7, 0]),
                                       ("layout", [16, 0, 7, 0]), ("grid", [32, 16]),
                                       ("grid", [0, 1]), ("matrix", [3, 3]),
                                       ("prob_bits", [13, 10]), ("layout", [8, 0, 7, True])])
def test_bad_parameters_are_typed_errors(key, value):
    rng = np.random.default_rng(1)
    spec = _spec("F8_E4M3", (64, 300))
    data = _weights_like(rng, spec.numel, 4)
    plan = fp8.encode(data, spec, 4096)
    assert plan is not None
    params = dict(plan.params, **{key: value})
    out = np.zeros(spec.nbytes, np.uint8)
    with pytest.raises(BigsmallError):
        decode_into(spec, plan.codec, params, plan.head + b"".join(plan.chunks), len(plan.head),
                    tuple(len(c) for c in plan.chunks), out)


@pytest.mark.parametrize("coder", CODERS)
def test_file_roundtrip_with_scales(tmp_path, coder):
    """``bigsmall.compress``/``decompress`` of an fp8 checkpoint with its F32 scale tensors
    (and every fp8 bit pattern, 0-d, empty and odd-shaped tensors) restores it byte for byte."""
    rng = np.random.default_rng(3)
    tensors: dict[str, tuple[str, tuple[int, ...], bytes]] = {}
    for i, dtype in enumerate(FP8):
        eb = 4 if "E4M3" in dtype else 5
        w = _weights_like(rng, 96 * 517, eb)
        w[:256] = np.arange(256, dtype=np.uint8)
        tensors[f"l{i}.weight"] = (dtype, (96, 517), w.tobytes())
        tensors[f"l{i}.weight.scale"] = ("F32", (), np.float32(rng.random() / 448).tobytes())
        tensors[f"l{i}.zero_d"] = (dtype, (), bytes([0x7F]))
        tensors[f"l{i}.empty"] = (dtype, (0, 5), b"")
        tensors[f"l{i}.odd"] = (dtype, (3, 7, 11), rng.integers(0, 256, 231, np.uint8).tobytes())
    src = write_safetensors(tmp_path / "m.safetensors", tensors)
    fmt = "1.1" if coder == "rans" else "1.2"
    bigsmall.compress(src, tmp_path / "m.bs", coder=coder, format_version=fmt)
    bigsmall.decompress(tmp_path / "m.bs", tmp_path / "back.safetensors")
    assert (tmp_path / "back.safetensors").read_bytes() == src.read_bytes()
