"""The C kernels (``bigsmall/native``) against the numba reference, byte for byte.

Why: the C kernels replace the numba ones on the default path, so every output they produce,
and every error, must be the reference's: decoded tensors of every dtype and bit pattern (NaN
payloads, infinities, -0, subnormals, empty and odd sizes), garbage chunks, hostile codec
parameters (``hostile_params``), through each entry point (one chunk, strided groups, ranges)
and with each instruction-set build (scalar and AVX2); and the ``fieldp`` chunk encoder's bytes.
Their own argument checks (what the numba
kernels leave to ``prepare``) must refuse bad arrays with an exception, never a crash.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigsmall.native as native
from bigsmall.codecs.base import get_codec
from bigsmall.errors import BigsmallError
from bigsmall.plan.decode import plan_decode

from .hostile_params import base_cases, mutate_bytes, mutate_head, mutate_params
from .strategies import SUBBYTE_DTYPES, tensor_bytes

K = native.built()
pytestmark = pytest.mark.skipif(K is None, reason="native extension not built (no C compiler)")

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = ["BF16", "F16", "F32", "F64", "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
          "F8_E8M0", "U8", "I8", "I16", "I32", "BOOL", *SUBBYTE_DTYPES]
CODECS = st.sampled_from(["field8", "fieldp"])
CHUNKS = st.sampled_from([1, 3, 7, 8, 9, 17, 64, 333, 4096, 1 << 20])


def _isas() -> list[str]:
    assert K is not None
    out = ["scalar"]
    try:
        K._set_isa("avx2")
        out.append("avx2")
    except ValueError:
        pass
    return out


ISAS = _isas() if K is not None else []


@contextmanager
def _impl(name: str) -> Iterator[None]:
    """Codecs decode with numba (``"numba"``) or the C kernels built for ``name``."""
    assert K is not None
    saved_isa = K.isa()
    native.use("0" if name == "numba" else "all")
    if name != "numba":
        K._set_isa(name)
    try:
        yield
    finally:
        native.use(os.environ.get(native.ENV, "1"))
        K._set_isa(saved_isa)


def _outcome(spec: Any, codec_id: str, params: dict[str, Any], blob: bytes, head_len: int,
             lens: tuple[int, ...], impl: str) -> list[tuple[str, bytes]]:
    """What each entry point makes of a blob: ("ok"|error class name, the output bytes)."""
    res = []
    with _impl(impl):
        for how in ("all", "groups", "ranges", "chunks"):
            out = np.full(spec.nbytes, 0xA5, np.uint8)
            try:
                job = plan_decode(spec, codec_id, params, blob, head_len, lens)
                if how == "all":
                    job.run_all(out)
                elif how == "groups":
                    for g in (2, 3):
                        for first in range(g):
                            job.run_group(first, g, out)
                elif how == "ranges":
                    for a, b, _lo, _hi in job.ranges(2, 64):
                        job.run_range(a, b, out)
                else:
                    for i in range(len(job.chunks)):
                        job.run(i, out)
                res.append(("ok", out.tobytes()))
            except BigsmallError as exc:
                res.append((type(exc).__name__, out.tobytes()))
    return res


def _same_everywhere(spec: Any, codec_id: str, params: dict[str, Any], blob: bytes,
                     head_len: int, lens: tuple[int, ...]) -> list[tuple[str, bytes]]:
    ref = _outcome(spec, codec_id, params, blob, head_len, lens, "numba")
    for isa in ISAS:
        got = _outcome(spec, codec_id, params, blob, head_len, lens, isa)
        assert [g[0] for g in got] == [r[0] for r in ref], (isa, codec_id)
        assert got == ref, (isa, codec_id, "output differs")
    return ref


@SETTINGS
@given(td=tensor_bytes(dtypes=DTYPES), codec_id=CODECS, chunk=CHUNKS)
def test_native_decodes_what_numba_decodes(td, codec_id, chunk):
    spec, data = td
    plan = get_codec(codec_id).encode(data, spec, chunk)
    if plan is None:
        return
    blob = plan.head + b"".join(plan.chunks)
    ref = _same_everywhere(spec, codec_id, plan.params, blob, len(plan.head),
                           tuple(len(c) for c in plan.chunks))
    assert all(r == ("ok", data.tobytes()) for r in ref)


@SETTINGS
@given(td=tensor_bytes(dtypes=DTYPES), chunk=CHUNKS, level=st.sampled_from(["default", "fast"]))
def test_native_encoder_writes_numba_bytes(td, chunk, level):
    """``fieldp``'s chunks (``encodep_chunk``) are the numba encoder's, byte for byte."""
    spec, data = td
    with _impl("numba"):
        ref = get_codec("fieldp").encode(data, spec, chunk, level=level)
    for isa in ISAS:
        with _impl(isa):
            got = get_codec("fieldp").encode(data, spec, chunk, level=level)
        assert (got is None) == (ref is None)
        if ref is not None and got is not None:
            assert got.chunks == ref.chunks and got.head == ref.head and got.params == ref.params


def test_encoder_refuses_short_tables():
    assert K is not None
    v = np.zeros(64, np.uint16)
    args = dict(values=v, k0=0, ncols=8, rowctx=np.zeros(8, np.int64),
                colctx=np.zeros(8, np.int64), tab=np.zeros(1 << 8, np.int64), nsym=1 << 8, p=7,
                eb=8, mb=0, rshift=np.zeros(8, np.int64))
    from bigsmall.codecs._generated.encodep import encode_chunk

    # the accepted set (codes of length 0, 8 raw bits a unit): numba's bytes
    got = K.encodep_chunk(*args.values())
    assert len(got) == 16 + 64 and got == encode_chunk(*args.values()).tobytes()
    for bad in ({"tab": np.zeros(255, np.int64)}, {"nsym": 128}, {"rowctx": np.ones(8, np.int64)},
                {"values": np.zeros(64, np.uint64)}, {"k0": -1}):
        with pytest.raises((ValueError, TypeError)):
            K.encodep_chunk(*{**args, **bad}.values())
    # an entry longer than any code: refused like a missing one (b""), never written
    assert K.encodep_chunk(*{**args, "tab": np.full(1 << 8, 40 << 32, np.int64)}.values()) == b""


@SETTINGS
@given(td=tensor_bytes(dtypes=["BF16", "F16", "F32", "U8", "F8_E4M3"]), codec_id=CODECS,
       chunk=st.sampled_from([5, 9, 64, 333]), seed=st.integers(0, 2**32 - 1))
def test_garbage_chunks_fail_alike(td, codec_id, chunk, seed):
    """Corrupt chunk bytes: the same typed error (or, rarely, the same output) either way."""
    spec, data = td
    plan = get_codec(codec_id).encode(data, spec, chunk)
    if plan is None:
        return
    rng = np.random.default_rng(seed)
    chunks = [mutate_bytes(rng, c) if rng.random() < 0.5 else c for c in plan.chunks]
    blob = plan.head + b"".join(chunks)
    _same_everywhere(spec, codec_id, plan.params, blob, len(plan.head),
                     tuple(len(c) for c in chunks))


@pytest.mark.parametrize("seed", range(4))
def test_hostile_parameters_fail_alike(seed):
    """``hostile_params``' mutated parameters, side information and cuts: per case the same
    outcome (typed error or output) with either implementation, and nothing untyped."""
    from bigsmall.codecs.base import n_units

    cases = [c for c in base_cases() if c[1] in ("field8", "fieldp")]
    rng = np.random.default_rng(1000 + seed)
    decoded = 0
    for _ in range(150):
        spec, codec_id, plan = cases[int(rng.integers(len(cases)))]
        units = n_units(spec)
        params = plan.params if rng.random() < 0.2 else mutate_params(rng, plan.params, units)
        head = plan.head if rng.random() < 0.5 else mutate_head(rng, plan.head)
        chunks = [mutate_bytes(rng, c) if rng.random() < 0.2 else c for c in plan.chunks]
        ref = _same_everywhere(spec, codec_id, params, head + b"".join(chunks), len(head),
                               tuple(len(c) for c in chunks))
        decoded += ref[0][0] == "ok"
    assert decoded > 10  # the sweep reaches the kernels, not only prepare's checks


def _d8_args(n: int = 64) -> dict[str, Any]:
    """A valid field8 argument set for ``n`` units (uint16, one context, no mantissa bits)."""
    return dict(out=np.zeros(n, np.uint16), k0=0, ncols=8, rowctx=np.zeros(n // 8, np.int64),
                colctx=np.zeros(8, np.int64), tsym=np.zeros(1 << 12, np.uint8),
                tfc=np.zeros(1 << 8, np.uint32), pbits=12, msym=np.zeros(1, np.uint8),
                mfc=np.zeros(1, np.uint32), mpbits=10, p=7, eb=8, mb=0,
                rshift=np.zeros(n // 8, np.int64), buf=np.zeros(200, np.uint8))


@pytest.mark.parametrize("bad", [
    {"rowctx": np.zeros(3, np.int64)},  # rows missing
    {"rshift": np.zeros(3, np.int64)},
    {"colctx": np.zeros(7, np.int64)},
    {"rowctx": np.full(8, 1, np.int64)},  # context 1: its table rows are missing
    {"colctx": np.full(8, -1, np.int64)},
    {"rshift": np.full(8, 99, np.int64)},  # more than the raw bits
    {"tsym": np.zeros(100, np.uint8)},
    {"tfc": np.zeros(100, np.uint32)},
    {"mb": 2},  # mantissa tables now needed, and too short
    {"eb": 0}, {"eb": 9}, {"p": 12}, {"pbits": 0}, {"ncols": 0}, {"k0": -1},
    {"tfc": np.zeros(1 << 8, np.int16)},  # wrong element size
    {"tsym": np.zeros(1 << 12, np.float64)},  # not integers
    {"out": np.zeros((8, 8), np.uint16)},  # not 1-D
    {"out": np.zeros(128, np.uint16)[::2]},  # not contiguous
    {"out": np.zeros(64, np.uint16).view(np.float16)},  # a float view
])
def test_bad_arguments_raise(bad):
    assert K is not None
    a = {**_d8_args(), **bad}
    with pytest.raises((ValueError, TypeError)):
        K.decode8_chunk(*a.values())


def test_bad_stride_arguments_raise():
    assert K is not None
    a = _d8_args()
    del a["k0"], a["buf"]
    blob, offs = np.zeros(10, np.uint8), np.array([0, 10], np.int64)
    for first, step, per in ((0, 0, 64), (-1, 1, 64), (0, 1, -1)):
        vals = list(a.values())
        args = [vals[0], first, step, per, *vals[1:], blob, offs]
        with pytest.raises(ValueError):
            K.decode8_chunks(*args)
    # read-only output buffer
    ro = np.zeros(64, np.uint16)
    ro.flags.writeable = False
    with pytest.raises((ValueError, TypeError, BufferError)):
        K.decode8_chunk(ro, *list(_d8_args().values())[1:])


def test_valid_arguments_run():
    """The argument set above is accepted (so the refusals test the checks, not the set):
    zero bytes are not a valid chunk, so the kernel itself answers -1."""
    assert K is not None
    assert K.decode8_chunk(*_d8_args().values()) == -1
    assert K.decode8_chunk(*{**_d8_args(0), "buf": np.zeros(0, np.uint8)}.values()) == 0


@pytest.mark.parametrize(("mode", "fieldp", "field8"), [("0", False, False), ("1", True, False),
                                                       ("all", True, True), ("", True, False)])
def test_env_switch_selects_kernels(mode, fieldp, field8):
    code = ("import bigsmall.native as n; print(n.status()); "
            "print(n.kernels('fieldp') is not None, n.kernels('field8') is not None)")
    env = {**os.environ, "BIGSMALL_NATIVE": mode}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[1] == f"{fieldp} {field8}"
    assert out[0].startswith("numba (BIGSMALL_NATIVE=0)" if mode == "0" else "native (")
