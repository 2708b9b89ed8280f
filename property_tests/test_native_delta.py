"""The C port of the delta decoder (``bigsmall.native._delta``) against its numba reference.

* on hypothesis word pairs of every dtype (``test_delta.word_pairs``: random, nearby, special
  words, unchanged rows; also as one long row), in one or several chunks, in both chunk
  versions (2: four states, 3: 32 states and the AVX2 vector step): the same return code and
  the same bytes, with both instruction sets and with the vector step forced on chunks of any
  size (``avx2-eager``: otherwise only chunks that pay for its slot table take it);
* on damaged chunks (a byte changed, cut, grown, states zeroed): the same return code and the
  same bytes written before the error;
* arguments that would send an index out of a table raise ValueError/TypeError, never read;
* ``BIGSMALL_NATIVE=0`` (``native.use("0")``) selects numba.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bigsmall import native
from bigsmall.codecs import delta
from bigsmall.core.types import TensorSpec

from .test_delta import SETTINGS, damage, word_pairs

try:
    from bigsmall.native import _delta as C  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - no compiler at install
    C = None
pytestmark = pytest.mark.skipif(C is None, reason="bigsmall.native._delta is not built")
ISAS = ["scalar", "avx2", "avx2-eager"]
ISA0 = C.isa() if C is not None else "scalar"  # what import picked: restored after each use


def _args(state: Any, index: int, chunk: bytes, base: np.ndarray, out: np.ndarray) -> tuple:
    wb, wbits, kind, mbits, ebits, elo, nk, nr, cols, rowctx, tsym, tfc, det, skip, lanes, pb, per = state
    dt = delta._WORDS[wb]
    return (np.frombuffer(chunk, np.uint8), base.view(dt), out.view(dt), index * per, wbits, kind,
            mbits, ebits, elo, nk, cols, rowctx, nr, tsym, tfc, 2 * wbits, pb, det, skip,
            delta.ZLEAD, delta.RAWN, lanes)


def _run(fn: Any, state: Any, spec: TensorSpec, chunks: list[bytes], base: np.ndarray,
         ) -> tuple[list[int], np.ndarray]:
    """Every chunk through ``fn``: the return codes and the output (prefilled, so bytes a
    kernel leaves unwritten compare too)."""
    out = np.full(base.size, 0xA5, np.uint8)
    codes = []
    for i, (lo, hi) in enumerate(delta.chunk_ranges(state, spec, len(chunks))):
        codes.append(int(fn(*_args(state, i, chunks[i], base[lo:hi], out[lo:hi]))))
    return codes, out


def _both(state: Any, spec: TensorSpec, chunks: list[bytes], base: np.ndarray) -> None:
    want = _run(delta._decode, state, spec, chunks, base)
    for isa in ISAS:
        try:
            C._set_isa(isa)
        except ValueError:  # this CPU has no AVX2
            continue
        try:
            got = _run(C.decode, state, spec, chunks, base)
        finally:
            C._set_isa(ISA0)
        assert got[0] == want[0], f"{isa}: return codes differ"
        assert np.array_equal(got[1], want[1]), f"{isa}: bytes differ"


def _flat(spec: TensorSpec, flat: bool) -> TensorSpec:
    """The tensor as one row (``flat``): rows of thousands of elements, where the vector step
    runs four vectors at a time, rather than ``word_pairs``' rows of at most 33."""
    if not flat or spec.info.itemsize == 0 or not spec.nbytes:
        return spec
    return TensorSpec(spec.name, spec.dtype, (spec.nbytes // spec.info.itemsize,), 0, spec.nbytes)


@SETTINGS
@given(case=word_pairs(), chunk=st.sampled_from([None, 7, 64, 1 << 20]),
       version=st.sampled_from([2, 3]), flat=st.booleans())
def test_native_decodes_what_numba_decodes(case: tuple[TensorSpec, np.ndarray, np.ndarray],
                                           chunk: int | None, version: int, flat: bool,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    spec, base, ft = case
    spec = _flat(spec, flat)
    if chunk is not None:
        monkeypatch.setattr(delta, "CHUNK_ELEMS", chunk)
    plan = delta.encode(base, ft, spec, version)
    if plan is None:
        return
    state = delta.prepare(spec, plan.params, plan.head)
    _both(state, spec, list(plan.chunks), base)
    codes, out = _run(C.decode, state, spec, list(plan.chunks), base)
    assert codes == [0] * len(codes) and np.array_equal(out, ft)


@SETTINGS
@given(case=word_pairs(), lanes=st.sampled_from([1, 2, 8, 16, 64]), flat=st.booleans())
def test_any_lanes_count_decodes_alike(case: tuple[TensorSpec, np.ndarray, np.ndarray], lanes: int,
                                       flat: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C decoder takes any power-of-two count of states up to 64 (bigsmall writes 4 or
    32): the vector step only where there are at least 8, the scalar step otherwise."""
    spec, base, ft = case
    spec = _flat(spec, flat)
    monkeypatch.setattr(delta, "_LANES", {2: delta.LANES, 3: lanes})
    plan = delta.encode(base, ft, spec, 3)
    if plan is None:
        return
    state = delta.prepare(spec, plan.params, plan.head)
    _both(state, spec, list(plan.chunks), base)


@SETTINGS
@given(case=word_pairs(), edit=st.tuples(st.sampled_from(["flip", "cut", "grow", "zero"]),
                                         st.integers(0, 2**31), st.integers(1, 255)),
       version=st.sampled_from([2, 3]), flat=st.booleans())
def test_damaged_chunks_fail_alike(case: tuple[TensorSpec, np.ndarray, np.ndarray],
                                   edit: tuple[str, int, int], version: int, flat: bool) -> None:
    spec, base, ft = case
    spec = _flat(spec, flat)
    plan = delta.encode(base, ft, spec, version)
    if plan is None:
        return
    state = delta.prepare(spec, plan.params, plan.head)
    _both(state, spec, damage(plan.chunks, edit), base)


def _valid() -> list[Any]:
    """The arguments of one valid call: a bf16 tensor of 8 x 16 with a few changes."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 1 << 16, 128, dtype=np.uint64).astype(np.uint16)
    ft = base.copy()
    ft[::3] += 1
    spec = TensorSpec("t", "BF16", (8, 16), 0, 256)
    plan = delta.encode(base.view(np.uint8), ft.view(np.uint8), spec)
    assert plan is not None
    state = delta.prepare(spec, plan.params, plan.head)
    return list(_args(state, 0, plan.chunks[0], base.view(np.uint8), np.empty(256, np.uint8)))


def test_valid_arguments_decode() -> None:
    args = _valid()
    assert C.decode(*args) == 0


BAD = [
    (2, lambda a: a[2][:-1]),                      # out shorter than the base
    (2, lambda a: a[2].view(np.uint8)),            # out of another word size
    (4, lambda a: 32),                             # wbits not the word's
    (5, lambda a: 3),                              # kind
    (7, lambda a: 10),                             # mbits + ebits past the word
    (9, lambda a: 200),                            # nk: tables too short for the contexts
    (10, lambda a: 0),                             # ncols
    (11, lambda a: np.full(8, 9, np.uint8)),       # row clusters >= nr
    (11, lambda a: np.zeros(3, np.uint8)),         # too few rows
    (13, lambda a: a[13][:-5]),                    # tsym short (prepare pads it by 4)
    (14, lambda a: a[14][:-1]),                    # tfc short
    (14, lambda a: a[14].astype(np.uint64)),       # tfc of another width
    (15, lambda a: 64),                            # alpha
    (16, lambda a: 20),                            # pb
    (17, lambda a: a[17][:0]),                     # det short
    (18, lambda a: a[18][:0]),                     # skip short
    (20, lambda a: np.full(128, 200, np.uint8)),   # raw-bit counts past a word
    (21, lambda a: 3),                             # lanes not a power of two
    (21, lambda a: 128),                           # lanes past 64
]


@pytest.mark.parametrize(("at", "bad"), BAD)
def test_bad_arguments_raise(at: int, bad: Any) -> None:
    args = _valid()
    args[at] = bad(args)
    with pytest.raises((ValueError, TypeError)):
        C.decode(*args)


def test_env_switch_selects_numba() -> None:
    try:
        native.use("0")
        assert native.delta() is None
        native.use("1")
        assert native.delta() is C
    finally:
        native.use("1")
