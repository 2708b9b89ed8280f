"""The ``.bsd`` file's I/O: create it from a safetensors file, read its fast or exact member,
restore the original, verify. Coding: ``codecs/dual.py``; layout and validation:
``container/dual_format.py``.

Creation streams tensor by tensor (one tensor's bytes and one block's temporaries alive at a
time): fast chunks go straight to the output, exact chunks to a spill file beside it that is
appended after the fast index, so the fast member comes first and contiguous without holding
the exact member in memory.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import xxhash

from ..codecs import dual as code
from ..codecs import dual_cells as cells
from ..codecs import dual_fast as fastc
from ..codecs import dual_keyrun as keyrun
from ..codecs import dual_lookup as lookup
from ..codecs import dual_trunc as trunc
from ..codecs.base import zstd_compress
from ..container import dual_format as fmt
from ..container.format import zstd_decompress
from ..core.layers import assign_layers
from ..core.safetensors_header import header_length
from ..core.safetensors_header import parse_header as parse_safetensors_header
from ..core.types import Receipt, TensorEntry, TensorSpec
from ..errors import BigsmallIOError, FormatError, IntegrityError, InvalidOptionError
from ..plan.autopilot import FileSummary, fast_quantizes, int4_bytes, summarize
from .atomic import atomic_file, check_target
from .hasher import NoHash, Sha256
from .source import FileSource

PIECE = 16 << 20  # exact-stored tensors: zstd pieces of this many bytes
AHEAD = 64 << 20  # exact reads: bytes of tensors decoded ahead of the one handed out
_UINT = {16: np.uint16, 32: np.uint32}
_LITTLE = sys.byteorder == "little"


@attrs.frozen
class DualResult:
    src: str
    dst: str
    original_bytes: int
    fast_member_bytes: int
    exact_member_bytes: int
    quantized: int
    exact_tensors: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "file_bytes": self.fast_member_bytes + self.exact_member_bytes}


def _bits(raw: bytes | memoryview, spec: TensorSpec) -> np.ndarray:
    width = code.WIDTH[spec.dtype]
    # no copy on a little-endian machine (read-only: nothing writes to it); a tensor's copy was
    # one of create's peak-memory items
    return np.frombuffer(raw, dtype=np.dtype(_UINT[width]).newbyteorder("<")).astype(
        _UINT[width], copy=False).reshape(spec.shape)


def create(src: str | os.PathLike[str], dst: str | os.PathLike[str], force: bool = False,
           durable: bool = True, progress: Any = None) -> DualResult:
    """Write the dual-fidelity file of the safetensors file ``src`` to ``dst``. ``progress``:
    a bar (``update(n)``) moved by each tensor's bytes once they are coded. A model folder:
    ``io/dual_folder.py``."""
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if src.is_dir():
        raise InvalidOptionError(f"{src} is a folder: `bigsmall dual` takes one .safetensors file")
    check_target(dst, force, inputs=[src])
    try:
        size = src.stat().st_size
        fin = open(src, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise BigsmallIOError(f"cannot read {src}: {exc.strerror or exc}") from None
    with fin:
        prefix = fin.read(8)
        hlen = header_length(prefix, size)
        header = prefix + fin.read(hlen - 8)
        st = parse_safetensors_header(header, size)
        sha = hashlib.sha256(header)
        entries: list[dict[str, Any]] = []
        exact: list[list[list[int]]] = []
        nq = 0
        with atomic_file(dst, force, durable, inputs=[src]) as (_tmp, out), \
                tempfile.TemporaryFile(dir=dst.parent if str(dst.parent) else ".") as spill:
            out.write(b"\0" * fmt.HEADER_SIZE)
            # tensors are coded ahead on the pool (up to CREATE_AHEAD bytes beyond the one being
            # written: one tensor at a time left a core idle on small matrices of one block) and
            # written in order
            pending: deque[tuple[TensorSpec, str, str, list[Future[Any]]]] = deque()
            ahead = 0

            def finish_one() -> None:
                nonlocal ahead, nq
                spec, kind, digest, jobs = pending.popleft()
                entry, chunks = _finish_tensor(kind, digest, jobs, out, spill)
                ahead -= spec.nbytes
                entries.append(entry)
                exact.append(chunks)
                nq += kind == "q"
                if progress is not None:
                    progress.update(spec.nbytes)

            try:
                for spec in st.tensors:
                    fin.seek(st.data_start + spec.begin)
                    raw = fin.read(spec.nbytes)
                    if len(raw) != spec.nbytes:
                        raise BigsmallIOError(f"{src} changed while it was read")
                    sha.update(raw)
                    while pending and ahead + spec.nbytes > CREATE_AHEAD:
                        finish_one()
                    pending.append((spec, *_start_tensor(raw, spec)))
                    ahead += spec.nbytes
                    del raw
                while pending:
                    finish_one()
            finally:  # an error: let the queued blocks finish, unwritten
                for *_, jobs in pending:
                    for j in jobs:
                        j.cancel()
            fast_doc = {"format": "bigsmall-dual", "version": list(fmt.VERSION), "size": size,
                        "sha256": sha.hexdigest(), "header": base64.b64encode(header).decode("ascii"),
                        "tensors": entries}
            fstored, fdig = fmt.encode_index(fast_doc)
            foff = out.tell()
            out.write(fstored)
            fast_end = out.tell()
            spill.seek(0)
            shutil.copyfileobj(spill, out, 1 << 20)
            doc = {"exact": [[[fast_end + off, n] for off, n in c] for c in exact]}
            estored, edig = fmt.encode_index(doc)
            eoff = out.tell()
            out.write(estored)
            total = out.tell()
            out.seek(0)
            out.write(fmt.pack_header((foff, len(fstored)), (eoff, len(estored)), total, fdig, edig))
    return DualResult(str(src), str(dst), size, fast_end, total - fast_end, nq, len(entries) - nq,
                      time.perf_counter() - t0)


def _start_tensor(raw: bytes, spec: TensorSpec) -> tuple[str, str, list[Future[Any]]]:
    """Hand one tensor's coding to the pool: (kind, its xxh3-128, a job per block or piece in
    order). A quantized matrix: per block its fast chunk, exact chunk and rows; else zstd pieces
    of ``PIECE`` bytes (their sizes)."""
    digest = xxhash.xxh3_128_hexdigest(raw)
    pool = _pool()
    bits = _bits(raw, spec) if spec.dtype in code.WIDTH else None
    if (bits is not None and fast_quantizes(spec.dtype, spec.shape, spec.name)
            and code.quantizable(bits, spec.dtype, spec.shape)):
        rows, cols = spec.shape
        step = code.block_rows(cols)

        def encode(r0: int) -> tuple[bytes, bytes, int]:
            b = bits[r0:r0 + step]
            fast, q, s16, lo16 = fastc.encode_fast(code.as_float32(b, spec.dtype).reshape(b.shape), fastc.LANES5)
            return fast, cells.encode_exact(b, q, s16, lo16, spec.dtype), b.shape[0]

        return "q", digest, [pool.submit(encode, r0) for r0 in range(0, rows, step)]

    def piece(p: int) -> tuple[bytes, int]:
        part = memoryview(raw)[p:p + PIECE]
        return zstd_compress(10, part), len(part)

    return "z", digest, [pool.submit(piece, p) for p in range(0, max(len(raw), 1), PIECE)]


def _finish_tensor(kind: str, digest: str, jobs: list[Future[Any]], out: Any,
                   spill: Any) -> tuple[dict[str, Any], list[list[int]]]:
    """Write a started tensor's chunks in order: fast chunks (or pieces) to ``out``, exact
    chunks to ``spill``; its index entry and exact chunk ranges."""
    chunks: list[list[int]] = []
    exact: list[list[int]] = []
    for j in jobs:
        if kind == "q":
            fast, ex, n = j.result()
            chunks.append([out.tell(), len(fast), n, xxhash.xxh3_64_intdigest(fast)])
            out.write(fast)
            exact.append([spill.tell(), len(ex)])
            spill.write(ex)
        else:
            piece, n = j.result()
            chunks.append([out.tell(), len(piece), n, xxhash.xxh3_64_intdigest(piece)])
            out.write(piece)
    return {"kind": kind, "chunks": chunks, "xxh3": digest}, exact


CREATE_AHEAD = 16 << 20  # bytes of tensors coded ahead of the one being written (create's memory)
_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    """One pool of block coders for the process (threads: the numba kernels release the GIL)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="bigsmall-dual"))
    return _POOL[0]


class DualFile:
    """A ``.bsd`` opened read-only: header and fast index read and validated on open (the exact
    index only when the exact member is asked for). ``bytes_read`` counts every byte read."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        try:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed by close()
            self.size = os.fstat(self._fh.fileno()).st_size
        except OSError as exc:
            raise BigsmallIOError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        self.bytes_read = 0
        self._src: FileSource | None = None
        try:
            self.head = fmt.parse_header(self._read(0, fmt.HEADER_SIZE), self.size)
            self.doc, self.st = fmt.check_fast(self._read(self.head["fast_off"], self.head["fast_len"]), self.head)
        except BaseException:
            self.close()
            raise
        self.fast_end = self.head["fast_off"] + self.head["fast_len"]
        # 1.0: zero-bin contexts and the key-run exact model; 2.0: dual_fast and dual_trunc;
        # 3.0: dual_fast and dual_lookup (2.0's model, decoded by table look-ups); 4.0: 3.0 with
        # the fast chunk's codes on interleaved rANS states; 5.0: the fast chunk's codes on 16
        # states, the exact chunk's value cells (dual_cells)
        major = self.head["major"]
        lanes = fastc.LANES5 if major >= 5 else fastc.LANES if major == 4 else 1
        self._decode_fast = code.decode_fast if major == 1 else (
            lambda data, rows, cols: fastc.decode_fast(data, rows, cols, lanes))
        self._decode_exact = {1: keyrun.decode_exact, 2: trunc.decode_exact,
                              5: cells.decode_exact}.get(major, lookup.decode_exact)
        self._exact: list[list[list[int]]] | None = None

    def __enter__(self) -> DualFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._fh.close()
        if self._src is not None:
            self._src.close()

    def _view(self, off: int, n: int) -> memoryview:
        """Bytes of a chunk without a copy (``FileSource.view``: the file's memory map, as the
        ``.bs`` reader; copying 30 MB of MiniLM's chunks out of the page cache took ~40 ms of the
        reading thread, a quarter of a ``.bsd`` restore)."""
        if self._src is None:
            self._src = FileSource(self.path)
            if self._src.size != self.size:
                raise IntegrityError(f"{self.path}: changed while read")
        view = self._src.view(off, n)  # a range past the end: TruncatedError
        self.bytes_read += n
        return view

    def _release(self, ranges: list[list[int]]) -> None:
        """Unmap a finished tensor's chunks (the page cache keeps them): without it the process's
        resident set would grow by the whole file (``FileSource.release``)."""
        if self._src is not None:
            for c in ranges:
                self._src.release(c[0], c[1])

    def _read(self, off: int, n: int) -> bytes:
        self._fh.seek(off)
        data = self._fh.read(n)
        self.bytes_read += len(data)
        if len(data) != n:
            raise IntegrityError(f"{self.path}: truncated at offset {off + len(data)}")
        return data

    @property
    def specs(self) -> tuple[TensorSpec, ...]:
        return self.st.tensors

    @property
    def fast_member_bytes(self) -> int:
        return self.fast_end

    @property
    def exact_member_bytes(self) -> int:
        return self.head["file_len"] - self.fast_end

    def _chunk(self, c: list[int], what: str) -> memoryview:
        """A fast chunk (or piece), checked against its xxh3-64."""
        return self._checked(self._view(c[0], c[1]), c, what)

    def _checked(self, data: memoryview, c: list[int], what: str) -> memoryview:
        if len(c) > 3 and xxhash.xxh3_64_intdigest(data) != c[3]:
            raise IntegrityError(f"{self.path}: {what}: fast chunk corrupt (checksum mismatch)")
        return data

    def _submit(self, fn: Any, c: list[int], what: str, *args: Any) -> Future[None]:
        """``fn(chunk, *args)`` on the pool, the chunk checked there: hashing every chunk on the
        reading thread was ~9 ms of a MiniLM fast load's ~40 (a serial part)."""
        data = self._view(c[0], c[1])
        return _pool().submit(lambda: fn(self._checked(data, c, what), *args))

    def exact_chunks(self) -> list[list[list[int]]]:
        if self._exact is None:
            self._exact = fmt.check_exact(self._read(self.head["exact_off"], self.head["exact_len"]),
                                          self.head, self.doc, self.fast_end)
        return self._exact

    def iter_fast(self) -> Iterator[tuple[TensorSpec, str, np.ndarray]]:
        """(spec, kind, bytes uint8) per tensor, reading the fast member only: kind "q" is the
        dequantized matrix in its own dtype (LOSSY), "z" the tensor's exact bytes. Blocks are
        decoded on the pool, up to ``AHEAD`` bytes of tensors beyond the one yielded (as
        ``iter_exact``)."""
        items = list(zip(self.specs, self.doc["tensors"], strict=True))
        def finish(spec: TensorSpec, t: dict[str, Any], out: np.ndarray,
                   jobs: list[Future[None]]) -> tuple[TensorSpec, str, np.ndarray]:
            done = self._finish_fast(spec, t, out, jobs)
            self._release(t["chunks"])
            return spec, t["kind"], done

        yield from self._ahead(items, lambda spec, t: self._start_fast(spec, t), finish)

    def _ahead(self, items: list[Any], start: Any, finish: Any) -> Iterator[Any]:
        """``finish(*item, *start(*item))`` per item in order, each started up to ``AHEAD``
        bytes of tensors ahead of the one being finished (bounded memory, every core busy)."""
        pending: deque[tuple[Any, ...]] = deque()
        ahead = i = 0
        try:
            while pending or i < len(items):
                while i < len(items) and (not pending or ahead < AHEAD):
                    pending.append((*items[i], *start(*items[i])))
                    ahead += items[i][0].nbytes
                    i += 1
                job = pending.popleft()
                ahead -= job[0].nbytes
                yield finish(*job)
        finally:  # an error or an abandoned iterator: let the queued blocks finish, unread
            for *_, jobs in pending:
                for j in jobs:
                    j.cancel()

    def _start_fast(self, spec: TensorSpec, t: dict[str, Any]) -> tuple[np.ndarray, list[Future[None]]]:
        """Read one tensor's fast chunks and hand their decoding (codes, dequantized into the
        tensor's dtype) to the pool, each block into its own slice of the returned buffer."""
        if t["kind"] != "q":
            return self._start(spec, t, [])
        out = np.empty(spec.nbytes, dtype=np.uint8)
        cols = spec.shape[1]
        size = np.dtype(_UINT[code.WIDTH[spec.dtype]]).itemsize
        starts = np.cumsum([0] + [c[2] * cols * size for c in t["chunks"]])

        def decode(fast: bytes, rows: int, at: int) -> None:
            q, s16, lo16 = self._decode_fast(fast, rows, cols)
            if _LITTLE:  # straight into the tensor's bytes
                fastc.dequantize_bits(q, s16, lo16, spec.dtype, out[at:at + q.size * size].view(_UINT[8 * size]).reshape(q.shape))
            else:
                b = fastc.dequantize_bits(q, s16, lo16, spec.dtype)
                out[at:at + b.size * size] = b.astype(b.dtype.newbyteorder("<")).reshape(-1).view(np.uint8)

        return out, [self._submit(decode, c, spec.name, c[2], int(at))
                     for c, at in zip(t["chunks"], starts[:-1], strict=True)]

    def _finish_fast(self, spec: TensorSpec, t: dict[str, Any], out: np.ndarray, jobs: list[Future[None]]) -> np.ndarray:
        if t["kind"] != "q":
            return self._finish(spec, t, out, jobs)
        for j in jobs:
            j.result()
        return out

    def _start(self, spec: TensorSpec, t: dict[str, Any], exact: list[list[int]]) -> tuple[np.ndarray, list[Future[None]]]:
        """Read one tensor's chunks (this thread: the file handle is not shared) and hand their
        decoding to the pool, each block into its own slice of the returned buffer."""
        out = np.empty(spec.nbytes, dtype=np.uint8)
        if t["kind"] == "z":
            starts = np.cumsum([0] + [c[2] for c in t["chunks"]])

            def unzstd(data: bytes, n: int, at: int) -> None:
                piece = zstd_decompress(data, n, f"tensor {spec.name!r}")
                if len(piece) != n:
                    raise IntegrityError(f"{self.path}: tensor {spec.name!r}: piece of the wrong size")
                out[at:at + n] = np.frombuffer(piece, np.uint8)

            return out, [self._submit(unzstd, c, spec.name, c[2], int(at))
                         for c, at in zip(t["chunks"], starts[:-1], strict=True)]
        width = code.WIDTH[spec.dtype]
        starts = np.cumsum([0] + [c[2] * spec.shape[1] * width // 8 for c in t["chunks"]])

        def decode(fast: bytes, ex: bytes, rows: int, at: int) -> None:
            q, s16, lo16 = self._decode_fast(fast, rows, spec.shape[1])
            if _LITTLE and self._decode_exact in (lookup.decode_exact, cells.decode_exact):  # into the tensor's bytes
                self._decode_exact(ex, q, s16, lo16, spec.dtype, out[at:at + q.size * width // 8].view(_UINT[width]))
                return
            bits = self._decode_exact(ex, q, s16, lo16, spec.dtype)
            out[at:at + bits.size * width // 8] = bits.astype(np.dtype(_UINT[width]).newbyteorder("<")).view(np.uint8)

        return out, [self._submit(decode, c, spec.name, self._view(e[0], e[1]), c[2], int(at))
                     for c, e, at in zip(t["chunks"], exact, starts[:-1], strict=True)]

    def _finish(self, spec: TensorSpec, t: dict[str, Any], out: np.ndarray, jobs: list[Future[None]],
                check: bool = True) -> np.ndarray:
        for j in jobs:
            j.result()
        if check and xxhash.xxh3_128_hexdigest(out) != t["xxh3"]:
            raise IntegrityError(f"{self.path}: tensor {spec.name!r} does not match its receipt (corrupt)")
        return out

    def _exact_bytes(self, spec: TensorSpec, t: dict[str, Any], exact: list[list[int]]) -> np.ndarray:
        return self._finish(spec, t, *self._start(spec, t, exact))

    def iter_exact(self, check: bool = True) -> Iterator[tuple[TensorSpec, np.ndarray]]:
        """(spec, exact bytes uint8) per tensor in data order, each checked against its receipt
        (unless not ``check``: ``restore`` checks the whole file's sha256 instead).
        Tensors are decoded ahead, up to ``AHEAD`` bytes beyond the one being yielded, so small
        tensors (one block each) keep every core busy too."""
        items = list(zip(self.specs, self.doc["tensors"], self.exact_chunks(), strict=True))
        def finish(spec: TensorSpec, t: dict[str, Any], e: list[list[int]], out: np.ndarray,
                   jobs: list[Future[None]]) -> tuple[TensorSpec, np.ndarray]:
            done = self._finish(spec, t, out, jobs, check)
            self._release(t["chunks"] + e)
            return spec, done

        yield from self._ahead(items, self._start, finish)

    def restore(self, fh: Any, check_tensors: bool = False, sha256: bool = True) -> int:
        """Write the original safetensors file to ``fh``; checked against its sha256 (and each
        tensor against its own receipt too with ``check_tensors``: ``verify``). Without
        ``sha256`` (``decompress(check="receipts")``) only the receipts check the bytes: pass
        ``check_tensors`` then."""
        header = base64.b64decode(self.doc["header"])
        # the sha256 on a thread of its own (io/hasher.py), and the tensors' receipts not hashed
        # as well: the file's sha256 covers every byte (as in the .bs restore, io/decompress.py)
        sha = Sha256.for_size(int(self.doc["size"])) if sha256 else NoHash()
        try:
            sha.update(memoryview(header))
            fh.write(header)
            n = len(header)
            for _spec, data in self.iter_exact(check=check_tensors):
                fh.write(data)
                sha.update(memoryview(data).cast("B"))
                n += data.size
        except BaseException:
            sha.close(discard=True)
            raise
        if n != self.doc["size"] or (sha256 and sha.hexdigest() != self.doc["sha256"]):
            for _ in self.iter_exact():  # name the tensor at fault: decode again, checking each
                pass
            raise IntegrityError(f"{self.path}: the restored file does not match its sha256 receipt")
        return n

    def verify(self) -> dict[str, Any]:
        """Decode everything (both members) and check every receipt; raises on damage."""
        class _Null:
            def write(self, _b: Any) -> None:
                pass

        for _ in self.iter_fast():
            pass
        n = self.restore(_Null(), check_tensors=True)
        return {"ok": True, "original_bytes": n, "tensors": len(self.specs)}

    def summary(self) -> FileSummary:
        """The autopilot planner's view of this file (``plan``), from the fast index alone: its
        fast mode holds the stored INT4 code (packs, scales, minimums) of the quantized tensors
        and the others whole."""
        layer_of, _ = assign_layers(s.name for s in self.specs)
        entries, fast = [], 0
        for s, t in zip(self.specs, self.doc["tensors"], strict=True):
            entries.append(TensorEntry(s, "bsd", {}, 0, 0, (), Receipt("xxh3_128", t["xxh3"]), layer_of.get(s.name)))
            fast += int4_bytes(s.shape) if t["kind"] == "q" else s.nbytes
        return summarize(str(self.path), entries, kind="bsd", fast_member_bytes=fast)

    def info(self) -> dict[str, Any]:
        kinds = [t["kind"] for t in self.doc["tensors"]]
        return {"path": str(self.path), "format": "bsd", "version": [self.head["major"], self.head["minor"]],
                "file_bytes": self.head["file_len"], "original_bytes": self.doc["size"],
                "fast_member_bytes": self.fast_member_bytes, "exact_member_bytes": self.exact_member_bytes,
                "fast_member_pct": round(100 * self.fast_member_bytes / max(1, self.doc["size"]), 2),
                "ratio_pct": round(100 * self.head["file_len"] / max(1, self.doc["size"]), 2),
                "tensors": len(kinds), "quantized": kinds.count("q"), "exact_tensors": kinds.count("z")}


def decompress(src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None, *,
               force: bool = False, durable: bool = True, check: str = "sha256") -> dict[str, Any]:
    """Restore the original safetensors file of a ``.bsd``, byte for byte (``check``: as
    ``io/decompress.decompress``'s)."""
    t0 = time.perf_counter()
    src = Path(src)
    out = Path(dst) if dst is not None else src.with_suffix(".safetensors")
    if out == src:
        raise FormatError(f"{src}: pass an output path")
    with DualFile(src) as d:
        check_target(out, force, inputs=[src])
        with atomic_file(out, force, durable, inputs=[src]) as (_tmp, fh):
            n = d.restore(fh, check_tensors=check == "receipts", sha256=check == "sha256")
    return {"src": str(src), "dst": str(out), "bytes": n, "seconds": time.perf_counter() - t0}
