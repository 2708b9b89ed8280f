"""Decode one tensor's blob: split it, parse side information once, list the chunk jobs.

Pure: the shell decides where the jobs run (inline or on a thread pool) and where ``out`` lives
(a numpy array, a torch tensor's storage, a slice of an output buffer).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from ..codecs.base import Codec, chunk_bounds, get_codec, n_units
from ..core.types import TensorSpec
from ..errors import IntegrityError


@attrs.frozen
class DecodeJob:
    codec: Codec
    spec: TensorSpec
    params: dict[str, Any] = attrs.field(hash=False)
    state: Any
    chunks: tuple[tuple[int, memoryview, int, int], ...]  # (index, coded bytes, out begin, out end)
    blob: np.ndarray = attrs.field(eq=False)  # the whole blob (uint8)
    offsets: np.ndarray = attrs.field(eq=False)  # chunk i is blob[offsets[i]:offsets[i + 1]]

    def run(self, i: int, out: np.ndarray) -> None:
        idx, chunk, b, e = self.chunks[i]
        self.codec.decode_chunk(self.state, self.spec, self.params, idx, chunk, out[b:e])

    def run_group(self, first: int, step: int, out: np.ndarray) -> None:
        """Decode chunks ``first``, ``first + step``, ...: one call into the codec's kernel when
        it can take them all (no Python and no GIL between chunks), else chunk by chunk."""
        if not self.codec.decode_strided(self.state, self.spec, self.params, self.blob,
                                         self.offsets, first, step, out):
            for i in range(first, len(self.chunks), step):
                self.run(i, out)

    def groups(self, workers: int) -> int:
        """How many strided groups to split the chunks into for ``workers`` threads."""
        return max(1, min(workers, len(self.chunks)))

    def run_range(self, first: int, end: int, out: np.ndarray) -> None:
        """Decode chunks ``first`` .. ``end - 1``: one kernel call when the codec has one (the
        offsets cut at ``end`` bound its loop; chunk indices, hence row contexts, stay absolute)."""
        if not self.codec.decode_strided(self.state, self.spec, self.params, self.blob,
                                         self.offsets[: end + 1], first, 1, out):
            for i in range(first, end):
                self.run(i, out)

    def ranges(self, workers: int, piece_bytes: int) -> list[tuple[int, int, int, int]]:
        """The chunks cut into contiguous ranges ``(first, end, out begin, out end)``: at least
        one per worker (as ``groups``), more for a large tensor so that no range decodes more
        than about ``piece_bytes``. In order, so a consumer can take the decoded bytes range by
        range (a restore writes and hashes the first megabytes of a large tensor while its
        last ones still decode)."""
        n = len(self.chunks)
        if n == 0:
            return []
        size = self.chunks[-1][3] - self.chunks[0][2]
        k = max(1, min(n, max(workers, -(-size // max(1, piece_bytes)))))
        cuts = [n * j // k for j in range(k + 1)]
        return [(a, b, self.chunks[a][2], self.chunks[b - 1][3]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]

    def run_all(self, out: np.ndarray) -> np.ndarray:
        if self.chunks:
            self.run_group(0, 1, out)
        return out


def split_blob(blob: bytes | memoryview, head_len: int, chunk_lens: tuple[int, ...]) -> tuple[memoryview, list[memoryview]]:
    mv = memoryview(blob)
    if len(mv) != head_len + sum(chunk_lens):
        raise IntegrityError("blob length does not match its chunk table")
    chunks = []
    pos = head_len
    for n in chunk_lens:
        chunks.append(mv[pos : pos + n])
        pos += n
    return mv[:head_len], chunks


def plan_decode(spec: TensorSpec, codec_id: str, params: dict[str, Any], blob: bytes | memoryview,
                head_len: int, chunk_lens: tuple[int, ...]) -> DecodeJob:
    codec = get_codec(codec_id)
    head, chunks = split_blob(blob, head_len, chunk_lens)
    state = codec.prepare(spec, params, bytes(head))
    if codec_id == "const":
        jobs = [(0, memoryview(b""), 0, spec.nbytes)] if spec.nbytes else []
    else:
        per = int(params.get("chunk", 0) or 0)
        units = n_units(spec)
        expected = 0 if units == 0 else (-(-units // per) if per > 0 else -1)
        if expected != len(chunks):
            raise IntegrityError(
                f"tensor {spec.name!r}: {len(chunks)} chunks stored, {expected} expected"
            )
        jobs = [(i, chunks[i], b, e) for i, (b, e) in enumerate(chunk_bounds(spec, params, len(chunks)))]
    offsets = np.cumsum((head_len, *chunk_lens), dtype=np.int64) if chunk_lens else np.zeros(1, np.int64)
    return DecodeJob(codec, spec, params, state, tuple(jobs), np.frombuffer(blob, np.uint8), offsets)


def decode_into(spec: TensorSpec, codec_id: str, params: dict[str, Any], blob: bytes | memoryview,
                head_len: int, chunk_lens: tuple[int, ...], out: np.ndarray) -> np.ndarray:
    """Serial reference: decode every chunk of a blob into ``out`` (uint8[spec.nbytes])."""
    return plan_decode(spec, codec_id, params, blob, head_len, chunk_lens).run_all(out)
