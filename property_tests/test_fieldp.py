"""The ``fieldp`` codec (spec §19): bit-exact round trips, the chunk format checked against the
spec's reference decoder, optimal code lengths, strided decoding, corrupt chunks, size."""

from __future__ import annotations

import heapq
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigsmall.codecs import decode_tables, prefix
from bigsmall.codecs.base import LEVELS, get_codec
from bigsmall.core.types import TensorSpec
from bigsmall.errors import FormatError, IntegrityError
from bigsmall.plan.decode import decode_into

from .strategies import SUBBYTE_DTYPES, tensor_bytes

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELD_DTYPES = ["BF16", "F16", "F32", "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
                "F8_E8M0", "U8", "I8", "BOOL", *SUBBYTE_DTYPES]
CHUNKS = st.sampled_from([1, 3, 4, 5, 7, 8, 9, 64, 333, 4096, 1 << 20])
SPEC_DIR = Path(__file__).resolve().parents[1] / "spec"


def _decode(spec, plan):
    out = np.full(spec.nbytes, 0xA5, np.uint8)
    decode_into(spec, plan.codec, plan.params, plan.head + b"".join(plan.chunks), len(plan.head),
                tuple(len(c) for c in plan.chunks), out)
    return out


def _reference():
    sys.path.insert(0, str(SPEC_DIR))
    try:
        return importlib.import_module("reference_decoder")
    finally:
        sys.path.remove(str(SPEC_DIR))


@SETTINGS
@given(td=tensor_bytes(dtypes=FIELD_DTYPES), chunk=CHUNKS, level=st.sampled_from(LEVELS))
def test_fieldp_roundtrip(td, chunk, level):
    spec, data = td
    plan = get_codec("fieldp").encode(data, spec, chunk, level=level)
    if plan is None:
        assert spec.numel == 0 or spec.info.bits == 64
        return
    assert plan.params["lanes"] == 4
    assert _decode(spec, plan).tobytes() == data.tobytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(td=tensor_bytes(dtypes=["BF16", "F16", "F32", "F8_E4M3", "U8", "F4", "BOOL"]),
       chunk=st.sampled_from([1, 5, 9, 64, 333]))
def test_fieldp_matches_the_spec_reference_decoder(td, chunk):
    """Every chunk decodes, by spec/reference_decoder.py (package-merge with explicit multisets,
    bit-by-bit canonical decoding, written from FORMAT.md §19), to the original bytes."""
    spec, data = td
    if spec.nbytes > 6000:
        return
    plan = get_codec("fieldp").encode(data, spec, chunk)
    if plan is None:
        return
    rd = _reference()
    unit = spec.info.itemsize or 1
    ref = rd.FieldP(plan.params, unit, spec.nbytes, plan.head)
    total = spec.nbytes // unit
    got = bytearray()
    for i, c in enumerate(plan.chunks):
        for v in ref.decode_chunk(i, c, min(chunk, total - i * chunk)):
            got += v.to_bytes(unit, "little")
    assert bytes(got) == data.tobytes()


def _huffman_cost(w: list[int]) -> int:
    """Total cost (sum of weight x depth) of an unlimited Huffman code: unique even when the
    lengths are not."""
    h = list(w)
    heapq.heapify(h)
    cost = 0
    while len(h) > 1:
        a, b = heapq.heappop(h), heapq.heappop(h)
        cost += a + b
        heapq.heappush(h, a + b)
    return cost


@settings(max_examples=300, deadline=None)
@given(w=st.lists(st.integers(0, 1 << 22), min_size=1, max_size=300),
       lmax=st.sampled_from([9, 11, 15]))
def test_code_lengths_are_optimal_and_complete(w, lmax):
    wa = np.array(w, np.int64)
    lens = prefix.code_lengths(wa, lmax)
    present = [x for x in w if x > 0]
    assert (lens[wa == 0] == 0).all()
    if len(present) <= 1:
        assert (lens == 0).all()
        return
    if len(present) > 1 << lmax:
        return
    lp = lens[wa > 0]
    assert lp.min() >= 1 and lp.max() <= lmax
    assert sum(2.0 ** -int(x) for x in lp) == 1.0  # complete
    cost = int((lp * wa[wa > 0]).sum())
    assert cost >= _huffman_cost(present)  # nothing beats Huffman
    if _huffman_depth_ok(present, lmax):
        assert cost == _huffman_cost(present)  # the limit does not bind: exactly optimal
    ref = _reference().code_lengths({s: x for s, x in enumerate(w) if x > 0}) if lmax == 15 \
        else None
    if ref is not None:  # the spec's literal package-merge gives the same lengths
        assert {s: int(lens[s]) for s in ref} == ref


@settings(max_examples=200, deadline=None)
@given(w=st.lists(st.integers(0, 6), min_size=0, max_size=200))
def test_stable_order_is_numpys_stable_argsort(w):
    """``decode_tables.stable_order`` (the hand-written merge sort) is ``np.argsort(kind=
    "mergesort")``: the package-merge ties depend on it. Few distinct weights: many ties."""
    wa = np.array(w, np.int64)
    idx = np.flatnonzero(wa > 0).astype(np.int64)
    got = decode_tables.stable_order(wa, idx)
    assert got.tolist() == idx[np.argsort(wa[idx], kind="mergesort")].tolist()


def _huffman_depth_ok(w: list[int], lmax: int) -> bool:
    """Whether some Huffman tree of ``w`` has depth <= lmax (checked on one: heap order)."""
    h = [(x, 0) for x in w]
    heapq.heapify(h)
    while len(h) > 1:
        a, b = heapq.heappop(h), heapq.heappop(h)
        heapq.heappush(h, (a[0] + b[0], max(a[1], b[1]) + 1))
    return h[0][1] <= lmax


def test_canonical_codes_are_prefix_free_and_canonical():
    rng = np.random.default_rng(1)
    w = rng.integers(1, 1000, 200).astype(np.int64)
    lens = prefix.code_lengths(w, 15)
    codes = prefix.canonical_codes(lens)
    words = []
    for s in range(w.size):  # un-reverse: the code as written most significant bit first
        ln = int(lens[s])
        words.append((format(int(codes[s]), f"0{ln}b")[::-1], s))
    words.sort()
    for (a, _), (b, _) in zip(words, words[1:], strict=False):
        assert not b.startswith(a)
    order = sorted(range(w.size), key=lambda s: (int(lens[s]), s))
    vals = [int(format(int(codes[s]), f"0{int(lens[s])}b")[::-1], 2) for s in order]
    assert all((vals[i + 1] >> (int(lens[order[i + 1]]) - int(lens[order[i]]))) > vals[i]
               for i in range(len(order) - 1))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(td=tensor_bytes(dtypes=["BF16", "F16", "F32", "U8", "F8_E4M3"]),
       chunk=st.sampled_from([5, 9, 333, 4096]), seed=st.integers(0, 2**32 - 1),
       how=st.sampled_from(["flip", "truncate", "extend", "length", "zero"]))
def test_fieldp_corrupt_chunks_fail_cleanly(td, chunk, seed, how):
    """Corrupt chunk bytes give IntegrityError or some output, never a crash or a hang."""
    spec, data = td
    plan = get_codec("fieldp").encode(data, spec, chunk)
    if plan is None or not plan.chunks:
        return
    rng = np.random.default_rng(seed)
    chunks = [bytearray(c) for c in plan.chunks]
    c = chunks[int(rng.integers(len(chunks)))]
    if how == "flip":
        for _ in range(int(rng.integers(1, 6))):
            c = chunks[int(rng.integers(len(chunks)))]
            c[int(rng.integers(len(c)))] = int(rng.integers(256))
    elif how == "truncate":
        del c[int(rng.integers(len(c))):]
    elif how == "extend":
        c += rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8).tobytes()
    elif how == "length":  # lane sizes moved around, total unchanged: lanes read each other
        a, b = (4 * int(x) for x in rng.integers(0, 4, 2))
        d = int(rng.integers(1, 9))
        sa = int.from_bytes(c[a: a + 4], "little")
        sb = int.from_bytes(c[b: b + 4], "little")
        c[a: a + 4] = ((sa - d) % (1 << 32)).to_bytes(4, "little")
        c[b: b + 4] = ((sb + d) % (1 << 32)).to_bytes(4, "little")
    else:  # a run of zero or one bits: codes that run long or far
        z = int(rng.integers(16, max(17, len(c))))
        c[z:] = bytes([0xFF if seed & 1 else 0]) * (len(c) - z)
    out = np.empty(data.size, np.uint8)
    try:
        decode_into(spec, plan.codec, plan.params, plan.head + b"".join(bytes(x) for x in chunks),
                    len(plan.head), tuple(len(x) for x in chunks), out)
    except IntegrityError:
        pass


def test_fieldp_corrupt_exhaustive_small():
    """Every single-byte change of a small tensor's chunks: IntegrityError or output, and the
    lane-size and stream checks catch some of them."""
    rng = np.random.default_rng(7)
    x = rng.normal(0, 0.02, 400).astype(np.float32)
    data = (x.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(-1)
    spec = TensorSpec("t", "BF16", (20, 20), 0, data.size)
    codec = get_codec("fieldp")
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


def test_fieldp_real_weights_size():
    """On trained-looking bf16 weights, the prefix code costs little against rANS (field8)."""
    rng = np.random.default_rng(3)
    x = (rng.standard_t(5, (512, 768)) * 0.02).astype(np.float32)
    data = (x.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(-1)
    spec = TensorSpec("w", "BF16", (512, 768), 0, data.size)
    p8 = get_codec("field8").encode(data, spec, 1 << 16)
    pp = get_codec("fieldp").encode(data, spec, 1 << 16)
    assert _decode(spec, pp).tobytes() == data.tobytes()
    assert pp.head == p8.head  # the same model and side information
    s8, sp = p8.coded_size, pp.coded_size
    assert s8 < sp < s8 * 1.01, (s8, sp)


def test_fieldp_bad_params():
    data = np.arange(64, dtype=np.uint8)
    spec = TensorSpec("t", "U8", (64,), 0, 64)
    codec = get_codec("fieldp")
    plan = codec.encode(data, spec, 16)
    with pytest.raises(FormatError):
        codec.prepare(spec, {**plan.params, "lanes": 8}, plan.head)
    with pytest.raises(FormatError):
        codec.prepare(spec, {**plan.params, "layout": [8, 0, 8, 5]}, plan.head)


def test_generated_kernel_is_current():
    from bigsmall.codecs._generated import gen_decodep

    assert gen_decodep.TARGET.read_text() == gen_decodep.generate(), \
        "run `python -m bigsmall.codecs._generated.gen_decodep`"
    files = gen_decodep.generate_layouts()
    assert sorted(p.name for p in gen_decodep.LAYOUT_DIR.glob("*.py")) == sorted(files)
    for name, text in files.items():
        assert (gen_decodep.LAYOUT_DIR / name).read_text() == text, \
            f"{name}: run `python -m bigsmall.codecs._generated.gen_decodep`"


def test_fieldp_kernel_bounds_checked_build():
    """The generated kernel rebuilt with bounds-checked loads and stores (production uses
    unchecked intrinsics on paths it proves in bounds), fed valid and corrupt chunks: every
    read and write stays in bounds, valid chunks decode exactly, and some corrupt ones are
    rejected."""
    from bigsmall.codecs._generated import gen_decodep

    from .checked_loads import checked_build

    dec = checked_build(gen_decodep.generate(), "_decodep")["decode_chunk"]
    layout_src = gen_decodep.generate_layouts()
    own: dict[tuple[int, ...], object] = {}  # the layout kernels (raw-bit tables), checked too

    def own_kernel(lay: tuple[int, ...]):  # type: ignore[no-untyped-def]
        if lay not in own:
            name = f"k_{'_'.join(map(str, lay))}.py"
            own[lay] = (checked_build(layout_src[name], name)["_kernel"]
                        if name in layout_src else None)
        return own[lay]
    rng = np.random.default_rng(0)
    x = (rng.standard_t(5, (40, 203)) * 0.02).astype(np.float32)
    bf = (x.view(np.uint32) >> 16).astype(np.uint16)
    bf[::5] &= 0xFFE0  # row shifts
    cases = [("BF16", bf.view(np.uint8).reshape(-1)),
             ("F32", x.view(np.uint8).reshape(-1)),
             ("U8", np.clip(rng.normal(128, 9, x.size), 0, 255).astype(np.uint8))]
    codec = get_codec("fieldp")
    rejected = 0
    tabled = 0
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
                args = (ci * chunk, 203, s.rowctx, s.colsh, s.t1, s.dirs, s.t2, lay.p, lay.eb,
                        lay.mb, s.rshift)
                assert dec(out, *args, np.frombuffer(c, np.uint8)) == 0
                b = ci * chunk * unit
                assert out.view(np.uint8).tobytes() == data[b: b + n * unit].tobytes()
                kern = own_kernel((lay.width, lay.p, lay.eb, lay.mb))
                tabled += kern is not None and lay.width == 16
                kargs = (ci * chunk, 203, s.rowctx, s.colsh, s.t1, s.dirs, s.t2, s.rshift)
                if kern is not None:
                    out2 = np.zeros_like(out)
                    assert kern(out2, *kargs, np.frombuffer(c, np.uint8)) == 0
                    assert np.array_equal(out2, out)
                for trial in range(100):
                    cc = bytearray(c)
                    how = trial % 4
                    if how == 0:
                        for _ in range(int(rng.integers(1, 6))):
                            cc[int(rng.integers(len(cc)))] = int(rng.integers(256))
                    elif how == 1:
                        del cc[int(rng.integers(len(cc))):]
                    elif how == 2:  # lane sizes moved, total kept: lanes read each other
                        a_, b_ = (4 * int(v) for v in rng.integers(0, 4, 2))
                        d = int(rng.integers(1, 64))
                        sa = int.from_bytes(cc[a_: a_ + 4], "little")
                        sb = int.from_bytes(cc[b_: b_ + 4], "little")
                        cc[a_: a_ + 4] = ((sa - d) % (1 << 32)).to_bytes(4, "little")
                        cc[b_: b_ + 4] = ((sb + d) % (1 << 32)).to_bytes(4, "little")
                    else:  # all-ones tail: the longest codes, second-level lookups
                        z = int(rng.integers(16, len(cc)))
                        cc[z:] = b"\xff" * (len(cc) - z)
                    rc = dec(out, *args, np.frombuffer(bytes(cc), np.uint8))
                    rejected += rc != 0
                    if kern is not None:  # in bounds on corrupt input too; same verdict
                        assert (kern(out2, *kargs, np.frombuffer(bytes(cc), np.uint8)) != 0) == (rc != 0)
    assert rejected > 0
    assert tabled > 0  # a 16-bit layout kernel (raw bits through its table) was exercised


@pytest.mark.parametrize("lay", __import__("bigsmall.codecs._generated.gen_decodep", fromlist=["LAYOUTS"]).LAYOUTS,
                         ids=lambda lay: "_".join(map(str, lay)))
def test_layout_kernels_match_generic(lay, monkeypatch):
    """Every layout with its own kernel (``fieldp.layout_kernel``, constants folded) decodes what
    the generic kernel decodes: the encoder is made to pick that layout (mantissa split), the
    data has row shifts and rare long codes, and both kernels must restore it exactly."""
    from bigsmall.codecs import field, fieldp
    from bigsmall.codecs._generated import decodep as _decodep

    width, p, eb, mb = lay
    # the layout search is ``_choose_layout_counts`` (no histogram handed on: the model counts)
    monkeypatch.setattr(field, "_choose_layout_counts",
                        lambda values, lay0, spec: (field.Layout(*lay), None, 0))
    dtype = {(16, 8): "BF16", (16, 5): "F16", (32, 8): "F32", (8, 4): "F8_E4M3",
             (8, 5): "F8_E5M2", (8, 8): "U8"}[width, eb]
    rng = np.random.default_rng(sum(lay))
    rows, cols = 37, 129
    x = rng.standard_t(4, (rows, cols)) * 0.05
    raw = {"BF16": lambda: (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16),
           "F16": lambda: x.astype(np.float16).view(np.uint16),
           "F32": lambda: x.astype(np.float32).view(np.uint32),
           }.get(dtype, lambda: rng.integers(0, 256, (rows, cols)).astype(np.uint8) & 0x7F)()
    raw = raw.copy()
    raw[::3] &= ~np.array((1 << min(3, p)) - 1, raw.dtype)  # zero low bits: row shifts
    raw.flat[::97] = rng.integers(0, 1 << width, raw.flat[::97].size).astype(raw.dtype)
    data = raw.view(np.uint8).reshape(-1)
    spec = TensorSpec("t", dtype, (rows, cols), 0, data.size)
    codec = get_codec("fieldp")
    for chunk in (5, 333, 1 << 20):
        plan = codec.encode(data, spec, chunk)
        assert tuple(plan.params["layout"]) == lay
        assert plan.params["row_shift"] == (width > 8)  # floats: the shifted fast loop runs too
        assert _decode(spec, plan).tobytes() == data.tobytes()  # the layout's own kernel
        s = codec.prepare(spec, plan.params, plan.head)
        blob = np.frombuffer(plan.head + b"".join(plan.chunks), np.uint8)
        offs = np.cumsum((len(plan.head), *(len(c) for c in plan.chunks)), dtype=np.int64)
        out = np.zeros(rows * cols, raw.dtype)
        assert _decodep.decode_chunks(out, 0, 1, chunk, cols, s.rowctx, s.colsh, s.t1, s.dirs,
                                      s.t2, p, eb, mb, s.rshift, blob, offs) == -1
        assert out.tobytes() == data.tobytes()
        own = np.zeros_like(out)
        assert fieldp.layout_kernel(lay)(own, 1, 2, chunk, cols, s.rowctx, s.colsh, s.t1, s.dirs,
                                     s.t2, s.rshift, blob, offs) == -1
        assert own[chunk: 2 * chunk].tobytes() == out[chunk: 2 * chunk].tobytes()
