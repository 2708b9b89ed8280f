"""Issue 17: the per-tensor fixed costs of ``compress`` cut without changing a byte."""

from __future__ import annotations

import threading

import numpy as np
import zstandard

from bigsmall.codecs.base import zstd_compressor
from bigsmall.core.types import TensorSpec
from bigsmall.io import compress as C
from bigsmall.plan.planner import CHUNK_BYTES, plan_tensor


def test_kept_zstd_compressor_writes_fresh_compressor_bytes() -> None:
    # inputs of many sizes in turn: each frame's parameters come from its own size, not the
    # previous frame's
    rng = np.random.default_rng(17)
    for level in (3, 19):
        for n in (0, 5, 300, 70_000, 12, 1 << 17, 40, 3000):
            raw = rng.integers(0, 1 + n % 40, n, dtype=np.uint8).tobytes()
            assert zstd_compressor(level).compress(raw) == zstandard.ZstdCompressor(level=level).compress(raw)
    assert zstd_compressor(3) is zstd_compressor(3)
    assert zstd_compressor(3) is not zstd_compressor(19)


def test_zstd_compressor_is_per_thread() -> None:
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(zstd_compressor(3)))
    t.start()
    t.join()
    assert got[0] is not zstd_compressor(3)


def test_one_chunk_tensor_verified_chunkwise() -> None:
    # a small one-chunk float tensor takes the chunk-by-chunk verify pass; a bad chunk is caught
    rng = np.random.default_rng(1)
    data = (rng.standard_normal(1536) * 0.02).astype(np.float16).view(np.uint8)
    spec = TensorSpec("b", "F16", (1536,), 0, data.size)
    plan = plan_tensor(data, spec, CHUNK_BYTES, "fast", (1, 2), "auto")
    assert plan.codec in C.CHUNKWISE and len(plan.chunks) == 1
    assert C._verify(plan, data, spec)
    other = data.copy()
    other[7] ^= 1
    assert not C._verify(plan, other, spec)
    assert C._encode_one(data, spec, CHUNK_BYTES, True, "fast", (1, 2), "auto") == plan
