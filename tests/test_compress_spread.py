"""compress's spread of one large tensor over the pool, and its chunk-wise verify pass
(issue 17): the same bytes as one thread coding it alone, and a corrupt plan still caught."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import numpy as np
import pytest

from bigsmall.codecs import context, spread
from bigsmall.core.types import TensorSpec
from bigsmall.io import compress as C
from bigsmall.io import verify_plan as V
from bigsmall.plan import planner


def _bf16(rng: np.random.Generator, shape: tuple[int, ...], scale: np.ndarray | float) -> np.ndarray:
    w = (rng.normal(0, 1, shape) * scale).astype(np.float32)
    return (w.view(np.uint32) >> 16).astype(np.uint16)


def _model(tmp_path: Path) -> Path:
    """A large embedding-like table (rows and columns with their own scales: the context
    search finds a grid) beside small tensors."""
    rng = np.random.default_rng(17)
    rows, cols = 8192, 384  # 6 MiB of bf16: above SPREAD_BYTES
    scale = rng.uniform(0.005, 0.05, (rows, 1)) * rng.uniform(0.5, 2.0, (1, cols))
    tensors = {"embed.weight": _bf16(rng, (rows, cols), scale),
               "layer.0.w": _bf16(rng, (384, 384), 0.02),
               "layer.0.b": _bf16(rng, (384,), 0.02)}
    # safetensors.numpy has no bf16: the file written by hand (header, then the bits)
    header, blobs, pos = {}, [], 0
    for name, t in tensors.items():
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [pos, pos + t.nbytes]}
        blobs.append(t.tobytes())
        pos += t.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path = tmp_path / "m.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(blobs))
    return path


@pytest.mark.parametrize("level", ["fast", "default"])
def test_spread_writes_the_bytes_of_one_thread(tmp_path: Path, level: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    src = _model(tmp_path)
    digests = []
    for threads, spread_bytes in ((1, C.SPREAD_BYTES), (2, 1 << 62), (2, C.SPREAD_BYTES), (3, 1 << 20)):
        monkeypatch.setattr(C, "SPREAD_BYTES", spread_bytes)
        out = tmp_path / f"m{threads}-{spread_bytes}.bs"
        C.compress(src, out, level=level, threads=threads)
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(set(digests)) == 1


def test_spread_returns_results_in_order_without_deadlock() -> None:
    with ThreadPoolExecutor(2) as pool:
        mapper = C._Spread(pool)

        def outer(k: int) -> list[int]:  # every thread busy with a task that spreads again
            return mapper(lambda x: x * k, range(50))

        assert mapper(outer, range(6)) == [[x * k for x in range(50)] for k in range(6)]


def test_spread_error_propagates() -> None:
    def boom(x: int) -> int:
        if x == 3:
            raise ValueError("three")
        return x

    with ThreadPoolExecutor(2) as pool, pytest.raises(ValueError, match="three"):
        C._Spread(pool)(boom, range(8))


def test_choose_the_same_with_a_mapper() -> None:
    rng = np.random.default_rng(3)
    sym = rng.integers(0, 5, (2048, 1024)) + (np.arange(2048) % 3)[:, None] * 4
    ref = context.choose(sym.astype(np.uint16), 32)
    with ThreadPoolExecutor(2) as pool, spread.using(C._Spread(pool)):
        got = context.choose(sym.astype(np.uint16), 32)
    assert (got.kr, got.kc) == (ref.kr, ref.kc) and (ref.kr, ref.kc) != (1, 1)
    assert np.array_equal(got.row_map, ref.row_map) and np.array_equal(got.col_map, ref.col_map)


@pytest.mark.parametrize("codec", ["fieldp", "field8"])
@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("chunk_bytes", [1 << 18, 1 << 14])  # chunk by chunk; the whole blob
def test_verify_catches_a_corrupt_chunk(codec: str, pooled: bool, chunk_bytes: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    data = _bf16(rng, (4096, 384), 0.02).view(np.uint8).reshape(-1)
    spec = TensorSpec("w", "BF16", (4096, 384), 0, data.size)
    coder = "prefix" if codec == "fieldp" else "rans"
    plan = planner.plan_tensor(data, spec, chunk_bytes, level="fast", format_version=(1, 2),
                               coder=coder)
    assert plan.codec == codec and len(plan.chunks) > 2
    assert V.verify_plan(plan, data, spec)
    chunks = list(plan.chunks)
    bad = bytearray(chunks[-2])
    bad[len(bad) // 2] ^= 0x10
    chunks[-2] = bytes(bad)
    broken = attrs.evolve(plan, chunks=tuple(chunks))
    other = data.copy()
    other[-1] ^= 1  # the last byte differs: the last piece must be compared too
    pool = ThreadPoolExecutor(2) if pooled else None
    try:
        mapper = C._Spread(pool) if pool is not None else None
        try:
            assert not V.verify_plan(broken, data, spec, mapper)
        except Exception as exc:  # noqa: BLE001 - a chunk that no longer decodes
            assert isinstance(exc, C.BigsmallError)
        assert not V.verify_plan(plan, other, spec, mapper)
        # compress's fallback: the tensor stored raw, marked
        monkeypatch.setattr(C, "plan_tensor", lambda *a, **k: broken)
        monkeypatch.setattr(C, "SPREAD_BYTES", 1)
        out = C._encode_one(data, spec, chunk_bytes, True, "fast", (1, 2), coder,
                            pool, 2 if pooled else 1)
        assert out.codec == "raw" and out.params["fallback"] == codec
    finally:
        if pool is not None:
            pool.shutdown()


def test_zstd_trial_in_groups_is_the_whole_trial() -> None:
    rng = np.random.default_rng(4)
    row = _bf16(rng, (1, 384), 0.02)
    data = np.tile(row, (3000, 1)).view(np.uint8).reshape(-1)  # repetitive: zstd's kind
    spec = TensorSpec("w", "BF16", (3000, 384), 0, data.size)
    units = planner.chunk_units_for(spec)
    ref = planner.get_codec("zstd").encode(data, spec, units)
    assert ref is not None and len(ref.chunks) > planner.ZSTD_GROUP_CHUNKS
    assert planner._zstd_trial(data, spec, units) == ref
    with ThreadPoolExecutor(2) as pool, spread.using(C._Spread(pool)):
        assert planner._zstd_trial(data, spec, units) == ref


@pytest.mark.parametrize("native", [True, False])
def test_same_compares_bytes_with_and_without_the_c_kernels(
        native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The verify pass's byte compare (``_same``: ``memcmp`` without the GIL through
    ``_enc.same_bytes``, else numpy): equal bytes are equal, any one flipped bit anywhere
    (the 8-byte body or the tail), a different length or a strided view are handled."""
    if not native:
        monkeypatch.setattr(V, "enc_kernels", lambda: None)
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, 1003, dtype=np.uint8)
    assert V.same(a, a.copy()) and V.same(a[:0], a[:0].copy())
    for pos in (0, 7, 500, 999, 1002):
        b = a.copy()
        b[pos] ^= 0x10
        assert not V.same(a, b)
    assert not V.same(a, a[:-1].copy())
    assert V.same(a[::2], a[::2].copy()) and not V.same(a[::2], a[1::2].copy())
