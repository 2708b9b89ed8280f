"""Fine-tune patches over generated pairs: apply(base, delta(base, ft)) == ft bit for bit, and
a wrong base is always refused.

* the codec alone (``codecs/delta.py``) on arbitrary word pairs of every dtype: NaN payloads,
  infinities, -0, subnormals, all-ones words, wrap-around differences, empty and odd sizes,
  several chunks;
* whole files through ``compress(delta_from=)`` / ``apply``: tensors changed in a few places or
  everywhere, reshaped, retyped, added, removed, renamed;
* a base with any one bit flipped inside a tensor the patch uses: ``BaseMismatchError``, and
  nothing written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigsmall
from bigsmall.codecs import delta
from bigsmall.core.dtypes import DTYPES
from bigsmall.core.types import TensorSpec
from bigsmall.errors import BaseMismatchError, BigsmallError
from bigsmall.testing.synthetic import write_safetensors

DTS = sorted(DTYPES)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def word_pairs(draw: st.DrawFn) -> tuple[TensorSpec, np.ndarray, np.ndarray]:
    """(spec, base bytes, fine-tune bytes) of one tensor: random, special, or nearby words."""
    dtype = draw(st.sampled_from(DTS))
    info = DTYPES[dtype]
    unit = info.itemsize or 1
    rows = draw(st.one_of(st.integers(0, 40), st.integers(64, 160)))  # >= 64: row clusters
    cols = draw(st.integers(1, 33))
    if info.itemsize == 0:  # packed sub-byte (4 or 6 bits): 8 elements fill whole bytes
        cols = 8 * max(1, cols // 4)
    numel = rows * cols
    nbytes = info.nbytes(numel)
    assert nbytes is not None
    n = nbytes // unit
    words = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[unit]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["random", "near", "special", "same", "rows"]))
    special = np.array([0, 1, (1 << (8 * unit)) - 1, 1 << (8 * unit - 1), (1 << (8 * unit - 1)) - 1,
                        (1 << (8 * unit - 1)) + 1], dtype=np.uint64).astype(words)
    if kind == "special":
        a = rng.choice(special, n) if n else np.zeros(0, words)
        b = rng.choice(special, n) if n else np.zeros(0, words)
    else:
        a = rng.integers(0, 1 << min(63, 8 * unit), n, dtype=np.uint64).astype(words)
        if unit == 8:
            a |= rng.integers(0, 2, n, dtype=np.uint64).astype(np.uint64) << np.uint64(63)
        if kind == "random":
            b = rng.integers(0, 1 << min(63, 8 * unit), n, dtype=np.uint64).astype(words)
        elif kind == "same":
            b = a.copy()
        elif kind == "rows":  # some rows changed, the others not (an embedding's unused rows)
            b = a.copy()
            if n and rows:
                per_row = n // rows
                for r in rng.choice(rows, max(1, rows // 5), replace=False):
                    sl = slice(r * per_row, (r + 1) * per_row)
                    b[sl] = (b[sl] ^ rng.integers(0, 4, per_row).astype(words))
        else:  # a few ulps apart, wrapping at the ends of the range
            d = rng.integers(-3, 4, n).astype(np.int64)
            d[rng.random(n) < 0.6] = 0
            b = (a.astype(np.int64) + d).astype(words) if unit < 8 else (a + d.astype(np.uint64)).astype(words)
    spec = TensorSpec("t", dtype, (rows, cols), 0, nbytes)
    return spec, a.view(np.uint8).copy(), b.view(np.uint8).copy()


@SETTINGS
@given(case=word_pairs(), chunk=st.sampled_from([None, 7, 1 << 20]))
def test_codec_round_trip(case: tuple[TensorSpec, np.ndarray, np.ndarray], chunk: int | None,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    spec, base, ft = case
    if chunk is not None:
        monkeypatch.setattr(delta, "CHUNK_ELEMS", chunk)  # several chunks per tensor
    plan = delta.encode(base, ft, spec)
    if ft.size == 0:
        assert plan is None
        return
    assert plan is not None
    state = delta.prepare(spec, plan.params, plan.head)
    out = np.full(ft.size, 0xAB, np.uint8)
    delta.decode(state, spec, base, [memoryview(c) for c in plan.chunks], out)
    assert np.array_equal(out, ft)


@SETTINGS
@given(case=word_pairs(), edit=st.tuples(st.sampled_from(["flip", "cut", "grow", "zero"]),
                                         st.integers(0, 2**31), st.integers(1, 255)))
def test_damaged_chunk_is_typed(case: tuple[TensorSpec, np.ndarray, np.ndarray],
                                edit: tuple[str, int, int]) -> None:
    """A damaged chunk (a byte changed, cut short, grown, the states zeroed) decodes to some
    bytes (the receipt then refuses them) or raises a typed error: the kernel reads only inside
    the chunk, whatever its lengths, states and raw bits say."""
    spec, base, ft = case
    plan = delta.encode(base, ft, spec)
    if plan is None:
        return
    state = delta.prepare(spec, plan.params, plan.head)
    chunks = damage(plan.chunks, edit)
    out = np.empty(ft.size, np.uint8)
    try:
        delta.decode(state, spec, base, [memoryview(b) for b in chunks], out)
    except BigsmallError:
        return
    assert edit[0] == "flip", f"a chunk {edit[0]} decoded without an error"  # lengths and states: always caught


def damage(chunks: tuple[bytes, ...], edit: tuple[str, int, int]) -> list[bytes]:
    """``chunks`` with one of them damaged: a byte changed (``flip``), cut short, grown, or
    its rANS states zeroed (``edit``: how, where, value)."""
    how, at, val = edit
    out = [bytearray(c) for c in chunks]
    c = out[at % len(out)]
    if how == "flip" and c:
        c[at % len(c)] ^= val
    elif how == "cut":
        del c[max(0, len(c) - 1 - at % max(1, len(c))):]
    elif how == "grow":
        c.extend(bytes([val]) * (1 + at % 9))
    else:
        c[4:4 + 4 * delta.LANES3] = bytes(4 * delta.LANES3)  # every state (version 3: 32)
    return [bytes(b) for b in out]


def _file(path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> Path:
    return write_safetensors(path, tensors, {"format": "pt"})


@st.composite
def models(draw: st.DrawFn) -> tuple[dict[str, tuple[str, tuple[int, ...], bytes]],
                                     dict[str, tuple[str, tuple[int, ...], bytes]]]:
    """A base model and a fine-tune of it: some tensors kept, changed a little or a lot,
    reshaped, retyped, renamed, removed; some added."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base: dict[str, tuple[str, tuple[int, ...], bytes]] = {}
    ft: dict[str, tuple[str, tuple[int, ...], bytes]] = {}
    for i in range(draw(st.integers(1, 6))):
        dtype = draw(st.sampled_from(["BF16", "F16", "F32", "F64", "I64", "U8", "F8_E4M3", "BOOL"]))
        unit = DTYPES[dtype].itemsize
        shape = (draw(st.integers(0, 24)), draw(st.integers(1, 24)))
        n = shape[0] * shape[1]
        raw = rng.integers(0, 256, n * unit, dtype=np.uint8)
        name = f"layers.{i}.w"
        base[name] = (dtype, shape, raw.tobytes())
        what = draw(st.sampled_from(["keep", "small", "all", "reshape", "retype", "rename", "drop"]))
        if what == "keep":
            ft[name] = base[name]
        elif what == "small":
            b = raw.copy()
            if b.size:
                idx = rng.integers(0, b.size, max(1, b.size // 10))
                b[idx] ^= rng.integers(1, 256, idx.size, dtype=np.uint8)
            ft[name] = (dtype, shape, b.tobytes())
        elif what == "all":
            ft[name] = (dtype, shape, rng.integers(0, 256, raw.size, dtype=np.uint8).tobytes())
        elif what == "reshape":
            ft[name] = (dtype, (shape[0] + 1, shape[1]), raw.tobytes() + bytes(shape[1] * unit))
        elif what == "retype" and unit == 2:
            ft[name] = ("I16" if dtype != "I16" else "U16", shape, raw.tobytes())
        elif what == "rename":
            ft[f"renamed.{i}"] = base[name]
    if draw(st.booleans()):
        ft["added.head"] = ("F32", (3,), rng.integers(0, 256, 12, dtype=np.uint8).tobytes())
    if not ft:
        ft["only"] = ("U8", (1,), b"\x01")
    return base, ft


@SETTINGS
@given(pair=models())
def test_apply_round_trip_and_wrong_base(pair: tuple[dict, dict], tmp_path_factory: pytest.TempPathFactory) -> None:
    base_t, ft_t = pair
    d = tmp_path_factory.mktemp("delta")
    base = _file(d / "base.safetensors", base_t)
    ft = _file(d / "ft.safetensors", ft_t)
    patch = d / "p.bs"
    bigsmall.compress(ft, patch, delta_from=base)
    out = d / "out.safetensors"
    bigsmall.apply(base, patch, out)
    assert out.read_bytes() == ft.read_bytes()
    with bigsmall.open(patch) as bs:
        used = [t[0] for t in bs.container.meta["base"]["tensors"]]
        entries = {t.name: t for t in bs.container.tensors}
    stored = sum(e.length for e in entries.values())
    alone = bigsmall.compress(ft, d / "alone.bs")
    assert stored <= alone.compressed_bytes  # never larger than standalone, tensor bytes
    # any used base tensor with one bit flipped: refused, nothing written
    for name in used:
        dtype, shape, raw = base_t[name]
        if not raw:
            continue
        bad = bytearray(raw)
        bad[len(bad) // 3] ^= 0x10
        wrong = _file(d / "wrong.safetensors", {**base_t, name: (dtype, shape, bytes(bad))})
        out2 = d / "out2.safetensors"
        with pytest.raises(BaseMismatchError):
            bigsmall.apply(wrong, patch, out2)
        assert not out2.exists()
