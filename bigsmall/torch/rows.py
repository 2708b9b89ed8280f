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

Integrity: receipts are per tensor, so the table is decoded once when the store opens, piece by
piece, hashed in order and checked against its receipt; decoded and coded pages leave the
resident set as it goes. After that, a lookup decodes the verified bytes of the file
(a read-only mapping of a file that bigsmall only ever replaces by rename).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core.types import TensorEntry
from ..plan.decode import plan_decode
from ..plan.rowgroups import HEAD_BLOCK_BYTES as _HEAD_BLOCK_BYTES
from ..plan.rowgroups import ROW_CACHE_BYTES, head_block_rows

#: decoded chunks kept for reuse (bytes): a short prompt's rows, and the next pass's
DEFAULT_CACHE_BYTES = ROW_CACHE_BYTES
#: decoded bytes of one row block of a tied output projection (``linear``), at most
HEAD_BLOCK_BYTES = _HEAD_BLOCK_BYTES
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
        self.head_passes = 0  # whole-table passes of ``linear`` (a tied output projection)
        self.lookup_seconds = 0.0  # time spent in ``lookup`` (what rows on demand add to a forward)
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
        """Decode the whole table once and check its receipt, keeping little of it resident.

        The table decodes through ``BsFile.iter_pieces`` (contiguous ranges of chunks, one
        kernel call each, in parallel on the file's pool, hashed in order and checked against
        the receipt) into an anonymous mapping whose pages are dropped as soon as their piece is
        hashed: memory is the pieces in flight, not the table. Why not chunk by chunk: a table
        stored in row groups has ~26000 chunks (262144 x 768 bf16), and a pool task per chunk
        cost 4x the decode itself."""
        import mmap

        nbytes = self.entry.spec.nbytes
        if nbytes == 0:
            return
        area = mmap.mmap(-1, nbytes)
        buf = np.frombuffer(area, np.uint8)
        page = mmap.PAGESIZE
        done = dropped = 0
        for piece in self.bs.iter_pieces([self.entry], alloc=lambda _, b=buf: b):
            done += len(piece)
            keep = done // page * page  # the page holding the next piece's first bytes stays
            if keep > dropped:
                area.madvise(mmap.MADV_DONTNEED, dropped, keep - dropped)
                dropped = keep

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

        t0 = time.perf_counter()
        flat = ids.reshape(-1).cpu().numpy()
        uniq, inverse = np.unique(flat, return_inverse=True)
        rows = torch.from_numpy(self.rows_bytes(uniq)).view(dtype).reshape(len(uniq), self.cols)
        out = rows[torch.from_numpy(inverse.reshape(-1))].reshape(*ids.shape, self.cols).to(ids.device)
        self.lookup_seconds += time.perf_counter() - t0
        return out

    # ------------------------------------------------------------------ a tied head
    def block_rows(self) -> int:
        """Rows per block of ``linear`` (``rowgroups.head_block_rows``: why powers of two of at
        least 1024 rows keep the bits of the whole product)."""
        return head_block_rows(self.row_bytes, HEAD_BLOCK_BYTES)

    def iter_blocks(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(r0, r1, rows)`` for consecutive row blocks of the whole table, ``rows`` the
        stored bytes as uint8[r1 - r0, row_bytes], valid until the next block is asked for.

        Each block's chunks decode with the codec's kernel (contiguous ranges, in parallel on
        the file's pool) into a table-sized anonymous mapping, at the offsets they have in the
        table, so a block starts at the same address alignment as in a fully loaded table; its
        pages (decoded and coded) are dropped once the consumer moves on: memory is one block."""
        import mmap

        if self.entry.spec.nbytes == 0:
            return
        area = mmap.mmap(-1, self.entry.spec.nbytes)
        buf = np.frombuffer(area, np.uint8)
        starts = np.asarray(self.starts, dtype=np.int64)
        workers = max(1, getattr(self.bs, "threads", 1) or 1)
        step = self.block_rows()
        try:
            for r0 in range(0, self.rows, step):
                r1 = min(self.rows, r0 + step)
                first = int(np.searchsorted(starts, r0 * self.row_bytes, "right")) - 1
                end = int(np.searchsorted(starts, r1 * self.row_bytes - 1, "right"))
                cuts = [first + (end - first) * j // workers for j in range(workers + 1)]
                futures = [self.bs.pool.submit(self.job.run_range, a, b, buf)
                           for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]
                for f in futures:
                    f.result()
                yield r0, r1, buf[r0 * self.row_bytes:r1 * self.row_bytes].reshape(r1 - r0, self.row_bytes)
                lo, hi = self.job.chunks[first][2], self.job.chunks[end - 1][3]
                page = mmap.PAGESIZE
                area.madvise(mmap.MADV_DONTNEED, lo // page * page, min(len(area), -(-hi // page) * page) - lo // page * page)
                coded = self._coded_range(first)[0]
                self.bs.source.release(coded, self._coded_range(end - 1)[0] + self._coded_range(end - 1)[1] - coded)
            self.head_passes += 1
        finally:
            del buf

    def linear(self, x: Any, bias: Any, dtype: Any) -> Any:
        """``F.linear(x, table, bias)`` without the table: the output projection of a model whose
        head is tied to this embedding, computed block of rows by block of rows. Each output
        column depends on its own weight row only, so the blocks' outputs side by side are the
        full product (same bits: see ``block_rows``)."""
        import torch
        import torch.nn.functional as F

        out = torch.empty(*x.shape[:-1], self.rows, dtype=x.dtype, device=x.device)
        for r0, r1, rows in self.iter_blocks():
            w = torch.from_numpy(rows).view(dtype).reshape(r1 - r0, self.cols)
            out[..., r0:r1] = F.linear(x, w, None if bias is None else bias[r0:r1])
        return out

    @property
    def cached_bytes(self) -> int:
        return self._cached

    @property
    def coded_bytes(self) -> int:
        return self.src.length
