"""compress's verify pass: a tensor's plan decoded again and compared with its input bytes.

Why a module of its own: ``compress`` (``io/compress.py``) runs it on every coded tensor before
writing it (a mismatch stores the tensor raw, marked), and it carries its own machinery: a
chunk-by-chunk pass that decodes each chunk into one reused buffer and compares it while in
cache, a whole-blob pass over per-thread scratch buffers, both spread over the pool's mapper
for a large tensor, and a byte compare that runs without the GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..codecs.base import chunk_bounds, get_codec, n_units, unit_bytes
from ..core.types import TensorPlan, TensorSpec
from ..native import enc_kernels
from ..plan.decode import plan_decode

Mapper = Callable[[Callable[[Any], Any], Any], list[Any]]  # compress's ``_Spread``


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two uint8 arrays hold the same bytes: ``memcmp`` without the GIL where the C
    kernels are built (``_enc.same_bytes``; the verify pass compares every tensor, and two
    pool threads waited on each other's numpy compares), else compared 8 bytes at a time
    where they can be viewed so (``array_equal`` on bytes builds a bool per byte)."""
    if a.shape != b.shape:
        return False
    enc = enc_kernels()
    memcmp = getattr(enc.ext, "same_bytes", None) if enc is not None else None
    if memcmp is not None and a.flags.c_contiguous and b.flags.c_contiguous:
        return bool(memcmp(a, b))
    n = a.size - a.size % 8
    try:
        if n and not np.array_equal(a[:n].view(np.uint64), b[:n].view(np.uint64)):
            return False
    except ValueError:  # a view that cannot be reinterpreted: compare bytes
        return bool(np.array_equal(a, b))
    return bool(np.array_equal(a[n:], b[n:]))


CHUNKWISE = frozenset(("fieldp", "field8"))
"""Codecs whose verify pass can decode chunk by chunk into one small buffer (``verify_plan``)."""

CHUNKWISE_MIN_BYTES = 1 << 16  # decoded bytes a chunk needs for the chunk-by-chunk pass
VERIFY_PIECE_CHUNKS = 8  # chunks per piece of a spread chunk-by-chunk pass
VERIFY_PIECE_BYTES = 4 << 20  # decoded bytes per piece of a spread whole-blob pass

_SCRATCH = threading.local()  # per pool thread: the whole-blob pass's buffers, reused


def _scratch(name: str, n: int) -> np.ndarray:
    """A uint8 buffer of ``n`` bytes kept by this thread for the next tensor (a fresh one each
    time page-faulted a tensor-sized buffer per tensor); it goes with the thread (the pool's
    threads end with ``compress``)."""
    buf = getattr(_SCRATCH, name, None)
    if buf is None or buf.size < n:
        buf = np.empty(n, np.uint8)
        setattr(_SCRATCH, name, buf)
    return buf[:n]


def verify_plan(plan: TensorPlan, data: np.ndarray, spec: TensorSpec,
            mapper: Mapper | None = None) -> bool:
    """Whether ``plan`` decodes to ``data`` (BigsmallError where it does not decode).

    ``fieldp``/``field8`` with chunks of at least ``CHUNKWISE_MIN_BYTES``: each chunk decoded
    from its own bytes into a buffer of one chunk, reused, and compared while it is in cache;
    a large tensor's chunks in pieces over ``mapper``. Other plans (small chunks such as an
    embedding's row groups, where a Python call per chunk would cost more, other codecs): the
    chunks copied into one blob and decoded whole into an output buffer, both this thread's
    and reused (``_scratch``), in ranges over ``mapper``. Why: joining the chunks into a fresh
    blob and decoding into fresh memory page-faulted two tensor-sized buffers per tensor
    (~30 % of a ``--level fast`` verify pass on MiniLM bf16). A tensor of one chunk (a bias,
    a norm) takes the chunk-by-chunk pass whatever its size: one Python call either way, and no
    blob copy or decode job (~15 % of such a tensor's verify pass, issue 17)."""
    lens = tuple(len(c) for c in plan.chunks)
    per = plan.params.get("chunk", 0)
    per = per if type(per) is int and per > 0 else 0
    width = min(per * unit_bytes(spec), spec.nbytes)  # the first (largest) chunk's bytes
    if plan.codec not in CHUNKWISE or (width < CHUNKWISE_MIN_BYTES and len(lens) != 1):
        total = len(plan.head) + sum(lens)
        blob = _scratch("blob", total)
        blob[: len(plan.head)] = np.frombuffer(plan.head, np.uint8)
        pos = len(plan.head)
        for c in plan.chunks:
            blob[pos : pos + len(c)] = np.frombuffer(c, np.uint8)
            pos += len(c)
        out = _scratch("out", data.size)
        job = plan_decode(spec, plan.codec, plan.params, memoryview(blob), len(plan.head), lens)
        if mapper is None or not job.chunks or job.chunks[0][2] != 0 \
                or job.chunks[-1][3] != data.size:
            return same(job.run_all(out), data)

        def check_range(r: tuple[int, int, int, int]) -> bool:
            job.run_range(r[0], r[1], out)
            return same(out[r[2] : r[3]], data[r[2] : r[3]])

        return all(mapper(check_range, job.ranges(4, VERIFY_PIECE_BYTES)))
    codec = get_codec(plan.codec)
    if -(-n_units(spec) // per) != len(lens):
        return False
    bounds = chunk_bounds(spec, plan.params, len(lens))
    state = codec.prepare(spec, plan.params, plan.head)

    def check(first: int) -> bool:
        buf = np.empty(width, np.uint8)
        for i in range(first, min(first + VERIFY_PIECE_CHUNKS, len(lens))):
            b, e = bounds[i]
            codec.decode_chunk(state, spec, plan.params, i, plan.chunks[i], buf[: e - b])
            if not same(buf[: e - b], data[b:e]):
                return False
        return True

    pieces = range(0, len(lens), VERIFY_PIECE_CHUNKS)
    return all(mapper(check, pieces) if mapper is not None else map(check, pieces))
