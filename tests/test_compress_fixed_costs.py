"""Issue 17: the per-tensor fixed costs of ``compress`` cut without changing a byte."""

from __future__ import annotations

import threading

import numpy as np
import zstandard

from bigsmall.codecs import base
from bigsmall.codecs.base import zstd_compress
from bigsmall.core.types import TensorSpec
from bigsmall.io import compress as C
from bigsmall.io import verify_plan as V
from bigsmall.plan.planner import CHUNK_BYTES, plan_tensor


def test_kept_zstd_compressor_writes_fresh_compressor_bytes() -> None:
    # inputs of many sizes in turn: each frame's parameters come from its own size, not the
    # previous frame's
    rng = np.random.default_rng(17)
    before = {lv: len(base._IDLE_CCTX.get(lv, [])) for lv in (3, 19)}  # earlier tests' pools
    for level in (3, 19):
        for n in (0, 5, 300, 70_000, 12, 1 << 17, 40, 3000):
            raw = rng.integers(0, 1 + n % 40, n, dtype=np.uint8).tobytes()
            assert zstd_compress(level, raw) == zstandard.ZstdCompressor(level=level).compress(raw)
    # kept: calls in turn borrow and return one, the pool does not grow (one where it was empty)
    assert all(len(base._IDLE_CCTX[lv]) == max(before[lv], 1) for lv in (3, 19))


def test_concurrent_zstd_compress_never_shares_a_compressor() -> None:
    # threads compressing at once each borrow their own compressor: every frame is the one a
    # fresh compressor writes (a shared one would corrupt or raise)
    rng = np.random.default_rng(3)
    inputs = [rng.integers(0, 1 + i % 30, 50_000 + 997 * i, dtype=np.uint8).tobytes() for i in range(16)]
    want = [zstandard.ZstdCompressor(level=3).compress(x) for x in inputs]
    got: list[list[bytes]] = [[] for _ in range(4)]

    def work(k: int) -> None:
        for _ in range(5):
            got[k].append(b"".join(zstd_compress(3, x) for x in inputs))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(g == [b"".join(want)] * 5 for g in got)
    assert 1 <= len(base._IDLE_CCTX[3]) <= 4


def test_one_chunk_tensor_verified_chunkwise() -> None:
    # a small one-chunk float tensor takes the chunk-by-chunk verify pass; a bad chunk is caught
    rng = np.random.default_rng(1)
    data = (rng.standard_normal(1536) * 0.02).astype(np.float16).view(np.uint8)
    spec = TensorSpec("b", "F16", (1536,), 0, data.size)
    plan = plan_tensor(data, spec, CHUNK_BYTES, "fast", (1, 2), "auto")
    assert plan.codec in V.CHUNKWISE and len(plan.chunks) == 1
    assert V.verify_plan(plan, data, spec)
    other = data.copy()
    other[7] ^= 1
    assert not V.verify_plan(plan, other, spec)
    assert C._encode_one(data, spec, CHUNK_BYTES, True, "fast", (1, 2), "auto") == plan
