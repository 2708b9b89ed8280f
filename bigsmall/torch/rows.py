"""Embedding tables that are not resident: a lookup decodes only the rows it needs.

Why: in multilingual encoders and small LLMs the token embedding is most of the weights (a
262144 x 768 bf16 table is 400 MB), and a forward pass of a few hundred tokens reads a few hundred
rows. Streaming that kept the table resident could not go much below a full load.

How: a tensor's blob is stored in independently decodable chunks, each covering a contiguous
byte range of the decoded tensor (``plan.decode.DecodeJob.chunks``), so a row lives in one chunk
(or two, where a chunk boundary cuts it). A lookup finds the chunks holding its distinct ids,
decodes the ones not cached, each into its own small buffer, and gathers the rows; a small LRU of
decoded chunks serves repeated ids and the next pass. A gather moves stored bits and computes
nothing, so the output is the same bits as ``F.embedding`` on the full table.

Integrity: receipts are per tensor, so the table is decoded once when the store opens, chunk by
chunk into one reused buffer, hashed in order and checked against its receipt; the coded pages
leave the resident set as it goes. After that, a lookup decodes the verified bytes of the file
(a read-only mapping of a file that bigsmall only ever replaces by rename).
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import xxhash

from ..core.types import TensorEntry
from ..errors import IntegrityError
from ..plan.decode import plan_decode

#: decoded chunks kept for reuse (bytes): a short prompt's rows, and the next pass's
DEFAULT_CACHE_BYTES = 16 << 20


class RowStore:
    """Random access by row to a 2-D tensor of an open ``BsFile``, rows decoded on demand."""

    def __init__(self, bs: Any, entry: TensorEntry, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 verify: bool = True):
        spec = entry.spec
        if len(spec.shape) != 2 or spec.info.itemsize == 0:
            raise ValueError(f"{spec.name!r}: row access needs a 2-D tensor of whole-byte elements")
        src = entry
        while src.codec == "ref":
            src = bs.entry(str(src.params.get("of")))
        self.bs, self.entry, self.src = bs, entry, src
        self.rows, self.cols = spec.shape
        self.row_bytes = self.cols * spec.info.itemsize
        self.job = plan_decode(src.spec, src.codec, src.params, bs.source.view(src.offset, src.length),
                               src.head_len, src.chunk_lens)
        self.starts = [b for _, _, b, _ in self.job.chunks]
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()
        self.decoded_chunks = 0  # chunks decoded by lookups (cache misses), for reports and tests
        self.decoded_coded_bytes = 0  # their coded bytes
        if verify:
            self.verify()

    # ------------------------------------------------------------------ decoding
    def _decode(self, i: int, out: np.ndarray) -> None:
        idx, coded, b, e = self.job.chunks[i]
        self.job.codec.decode_chunk(self.job.state, self.src.spec, self.src.params, idx, coded, out[: e - b])

    def _coded_range(self, i: int) -> tuple[int, int]:
        off = self.job.offsets
        return self.src.offset + int(off[i]), int(off[i + 1] - off[i])

    def verify(self) -> None:
        """Decode the whole table once, chunk by chunk, and check its receipt (memory: one chunk)."""
        h = xxhash.xxh3_128()
        size = max((e - b for _, _, b, e in self.job.chunks), default=0)
        buf = np.empty(size, np.uint8)
        for i, (_, _, b, e) in enumerate(self.job.chunks):
            self._decode(i, buf)
            h.update(buf[: e - b].data)
            self.bs.source.release(*self._coded_range(i))
        if h.hexdigest() != self.entry.receipt.digest:
            raise IntegrityError(f"tensor {self.entry.name!r}: decoded bytes do not match the stored "
                                 "checksum (the file is corrupt)")

    def _chunk(self, i: int) -> np.ndarray:
        got = self._cache.get(i)
        if got is not None:
            self._cache.move_to_end(i)
            return got
        _, _, b, e = self.job.chunks[i]
        buf = np.empty(e - b, np.uint8)
        self._decode(i, buf)
        self.bs.source.release(*self._coded_range(i))
        self.decoded_chunks += 1
        self.decoded_coded_bytes += self._coded_range(i)[1]
        self._cache[i] = buf
        self._cached += buf.nbytes
        return buf

    def _trim(self, keep: set[int]) -> None:
        for i in list(self._cache):
            if self._cached <= self.cache_bytes:
                break
            if i not in keep:
                self._cached -= self._cache.pop(i).nbytes

    # ------------------------------------------------------------------ lookups
    def rows_bytes(self, ids: np.ndarray) -> np.ndarray:
        """The stored bytes of rows ``ids`` (distinct, ascending), as uint8[len(ids), row_bytes].
        The cache stays within its budget (+ the chunk in use) however many rows are asked for."""
        out = np.empty((len(ids), self.row_bytes), np.uint8)
        with self._lock:
            for k, r in enumerate(ids.tolist()):
                if not 0 <= r < self.rows:
                    raise IndexError(f"{self.entry.name!r}: row {r} outside 0..{self.rows - 1}")
                lo, hi = r * self.row_bytes, (r + 1) * self.row_bytes
                i = bisect.bisect_right(self.starts, lo) - 1
                pos = lo
                while pos < hi:  # a row cut by a chunk boundary comes from two chunks
                    _, _, b, e = self.job.chunks[i]
                    part = self._chunk(i)
                    n = min(hi, e) - pos
                    out[k, pos - lo:pos - lo + n] = part[pos - b:pos - b + n]
                    self._trim({i})  # ids ascend: an evicted chunk is not needed again here
                    pos += n
                    i += 1
        return out

    def lookup(self, ids: Any, dtype: Any) -> Any:
        """``F.embedding(ids, table)`` without the table: a torch tensor of ``ids.shape + (cols,)``."""
        import torch

        flat = ids.reshape(-1).cpu().numpy()
        uniq, inverse = np.unique(flat, return_inverse=True)
        rows = torch.from_numpy(self.rows_bytes(uniq)).view(dtype).reshape(len(uniq), self.cols)
        return rows[torch.from_numpy(inverse.reshape(-1))].reshape(*ids.shape, self.cols).to(ids.device)

    @property
    def cached_bytes(self) -> int:
        return self._cached

    @property
    def coded_bytes(self) -> int:
        return self.src.length
