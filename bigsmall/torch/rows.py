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
#: chunks a lookup decodes at once (in parallel on the file's pool) before copying their rows
WINDOW = 16


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
        """Decode the whole table once and check its receipt: ``WINDOW`` chunks at a time in
        parallel on the file's pool, hashed in order (memory: one window of chunks)."""
        h = xxhash.xxh3_128()
        n = len(self.job.chunks)
        for j in range(0, n, WINDOW):
            part = range(j, min(n, j + WINDOW))
            bufs = [np.empty(self.job.chunks[i][3] - self.job.chunks[i][2], np.uint8) for i in part]
            futures = [self.bs.pool.submit(self._decode, i, buf) for i, buf in zip(part, bufs, strict=True)]
            for i, f, buf in zip(part, futures, bufs, strict=True):
                f.result()
                h.update(buf.data)
                self.bs.source.release(*self._coded_range(i))
        if h.hexdigest() != self.entry.receipt.digest:
            raise IntegrityError(f"tensor {self.entry.name!r}: decoded bytes do not match the stored "
                                 "checksum (the file is corrupt)")

    def _fill(self, wanted: list[int]) -> None:
        """Decode the chunks of ``wanted`` not cached, in parallel on the file's decode pool."""
        miss = [i for i in wanted if i not in self._cache]
        bufs = {i: np.empty(self.job.chunks[i][3] - self.job.chunks[i][2], np.uint8) for i in miss}
        futures = [self.bs.pool.submit(self._decode, i, bufs[i]) for i in miss]
        for f in futures:
            f.result()
        for i in miss:
            start, length = self._coded_range(i)
            self.bs.source.release(start, length)
            self.decoded_chunks += 1
            self.decoded_coded_bytes += length
            self._cache[i] = bufs[i]
            self._cached += bufs[i].nbytes
        for i in wanted:
            self._cache.move_to_end(i)

    def _trim(self) -> None:
        while self._cached > self.cache_bytes and self._cache:
            self._cached -= self._cache.popitem(last=False)[1].nbytes

    # ------------------------------------------------------------------ lookups
    def rows_bytes(self, ids: np.ndarray) -> np.ndarray:
        """The stored bytes of rows ``ids`` (distinct, ascending), as uint8[len(ids), row_bytes].

        Rows go in groups whose chunks (a row cut by a chunk boundary needs two) number about
        ``WINDOW``: a group's missing chunks decode in parallel, its rows are copied out, then the
        cache is trimmed to its budget; so memory stays within the budget + one group's chunks
        however many rows are asked for."""
        out = np.empty((len(ids), self.row_bytes), np.uint8)
        if len(ids) and not (0 <= int(ids[0]) and int(ids[-1]) < self.rows):
            bad = int(ids[0]) if int(ids[0]) < 0 else int(ids[-1])
            raise IndexError(f"{self.entry.name!r}: row {bad} outside 0..{self.rows - 1}")
        starts = np.asarray(self.starts, dtype=np.int64)
        lo = ids.astype(np.int64) * self.row_bytes
        first = np.searchsorted(starts, lo, "right") - 1
        last = np.searchsorted(starts, lo + self.row_bytes - 1, "right") - 1
        with self._lock:
            k, n = 0, len(ids)
            while k < n:
                end, group = k, []
                while end < n and len(group) < WINDOW:
                    group.extend(c for c in range(int(first[end]), int(last[end]) + 1)
                                 if not group or c > group[-1])
                    end += 1
                self._fill(group)
                for j in range(k, end):
                    pos, hi = int(lo[j]), int(lo[j]) + self.row_bytes
                    for i in range(int(first[j]), int(last[j]) + 1):
                        _, _, b, e = self.job.chunks[i]
                        m = min(hi, e) - pos
                        out[j, pos - int(lo[j]):pos - int(lo[j]) + m] = self._cache[i][pos - b:pos - b + m]
                        pos += m
                self._trim()
                k = end
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
