"""Every codec path is bit-exact for arbitrary bit patterns, shapes and chunk sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigsmall.codecs.base import CODERS, LEVELS, get_codec
from bigsmall.plan.decode import decode_into
from bigsmall.plan.planner import plan_tensor

from .strategies import SUBBYTE_DTYPES, tensor_bytes

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _roundtrip(spec, data, plan):
    out = np.full(data.size, 0xA5, np.uint8)
    decode_into(spec, plan.codec, plan.params, plan.head + b"".join(plan.chunks), len(plan.head),
                tuple(len(c) for c in plan.chunks), out)
    assert out.tobytes() == data.tobytes(), plan.codec


@SETTINGS
@given(tensor_bytes(), st.sampled_from([7, 64, 1000, 1 << 20]), st.sampled_from(LEVELS),
       st.sampled_from(CODERS))
def test_planner_roundtrip_any_dtype(td, chunk_bytes, level, coder):
    """Every coder (``auto``, the default, picks field8 or fieldp per tensor by size)."""
    spec, data = td
    version = (1, 1) if coder == "rans" else (1, 2)
    plan = plan_tensor(data, spec, chunk_bytes, level, version, coder)
    assert plan.coded_size <= max(data.size, 0) or plan.codec == "raw"
    if coder == "rans":
        assert plan.codec != "fieldp"
    _roundtrip(spec, data, plan)


@SETTINGS
@given(tensor_bytes(dtypes=SUBBYTE_DTYPES + ["U8", "I8", "BOOL", "F8_E4M3", "F8_E5M2"]),
       st.sampled_from([3, 100, 4096]))
def test_byte_types_roundtrip(td, chunk_bytes):
    spec, data = td
    _roundtrip(spec, data, plan_tensor(data, spec, chunk_bytes))


@pytest.mark.parametrize("codec", ["field", "lut", "zstd", "raw", "const"])
@SETTINGS
@given(td=tensor_bytes(), chunk=st.sampled_from([1, 5, 333, 4096]), level=st.sampled_from(LEVELS))
def test_each_codec_directly(codec, td, chunk, level):
    """Force each codec (not just the one the planner picks) through its round trip."""
    spec, data = td
    plan = get_codec(codec).encode(data, spec, chunk, level=level)
    if plan is None:
        return  # the codec declined this input (e.g. const on non-constant data)
    _roundtrip(spec, data, plan)


def test_never_expands_on_random_bytes():
    rng = np.random.default_rng(1)
    from bigsmall.core.types import TensorSpec

    data = rng.integers(0, 256, 1 << 16, dtype=np.uint8)
    spec = TensorSpec("r", "BF16", (1 << 15,), 0, data.size)
    plan = plan_tensor(data, spec)
    assert plan.codec == "raw"
    assert plan.coded_size == data.size


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(td=tensor_bytes(dtypes=["BF16", "F16", "F32", "U8", "F8_E4M3"]),
       chunk=st.sampled_from([5, 333, 4096]), seed=st.integers(0, 2**32 - 1))
def test_field_corrupt_chunks_fail_cleanly(td, chunk, seed):
    """The decode kernel reads without bounds checks (positions are clamped or proven in range):
    corrupt chunk bytes must give IntegrityError or some output, never a crash or a hang."""
    from bigsmall.errors import IntegrityError

    spec, data = td
    plan = get_codec("field").encode(data, spec, chunk)
    if plan is None or not plan.chunks:
        return
    rng = np.random.default_rng(seed)
    chunks = [bytearray(c) for c in plan.chunks]
    for _ in range(int(rng.integers(1, 6))):
        c = chunks[int(rng.integers(len(chunks)))]
        c[int(rng.integers(len(c)))] = int(rng.integers(256))
    out = np.empty(data.size, np.uint8)
    try:
        decode_into(spec, plan.codec, plan.params, plan.head + b"".join(bytes(c) for c in chunks),
                    len(plan.head), tuple(len(c) for c in chunks), out)
    except IntegrityError:
        pass
