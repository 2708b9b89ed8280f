"""Read-only access to a ``.bs`` container: names, specs, random access, verification.

Decoding a tensor = one read of its blob (layer-contiguous, so a layer is one range), one
``prepare`` of its side information, then its chunks decoded on the thread pool straight into
the destination buffer. Every decoded tensor is checked against its receipt before it is
returned: a corrupt file raises ``IntegrityError`` naming the tensor, it never yields garbage.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from ..codecs.base import Codec, get_codec
from ..container.format import zstd_decompress
from ..core.dtypes import NUMPY_VIEW
from ..core.types import KEY_SEP, FileEntry, TensorEntry, qualified_key
from ..errors import (
    AmbiguousTensorError,
    BigsmallError,
    FormatError,
    InsufficientMemoryError,
    IntegrityError,
    TensorNotFoundError,
    UnknownCodecError,
)
from ..plan.decode import plan_decode
from .pool import PriorityPool
from .read_window import SMALL_BYTES, WINDOW_RANK, ReadWindow, decode_whole
from .remote import is_remote, open_source
from .source import FileSource, read_container
from .verify_file import VerifyReport

_DELTA = ("delta", "base")  # codecs decoded against a patch's base (io/delta.py)
AHEAD_BYTES = 32 << 20  # decoded bytes in flight while restoring a file
PIECE_BYTES = 2 << 20  # a large tensor decodes in ranges of about this many bytes, in order
AHEAD_RANK = 1 << 62  # a read's parse-ahead of the next tensor runs after every other task


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class BsFile:
    """An open container. Thread-safe for reads; use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None, source: Any = None,
                 base: Any = None):
        # ``source``: any object with FileSource's interface; a URL or hf:// path gets a
        # remote.RemoteSource (HTTP range requests), decoded on this same path
        if source is None and is_remote(path):
            source = open_source(path)
        self.path: Any = Path(path) if source is None else source.path
        # a .bs file, or a folder of .bs shards read as the container they were cut from
        if source is None:
            source = FileSource(self.path) if not self.path.is_dir() else _shard_source(self.path)
        self.source = source
        try:
            self.header, self.container = read_container(self.source)
        except BaseException:
            self.source.close()
            raise
        self._by_name = self.container.by_name()
        self.threads = threads or default_threads()
        self._pool: PriorityPool | None = None
        self._ahead: tuple[TensorEntry, Future[Any]] | None = None  # ``_parsed``
        self._after: dict[int, int] | None = None  # id(entry) -> its index
        self._window = ReadWindow()  # whole small tensors decoded ahead (``read_bytes``)
        self._windowing = False  # set by the first windowed ``read_bytes``
        self.base: Any = None  # a patch's base model (``base=``: io/delta.py), checked here
        if base is not None:
            from . import delta as delta_io

            try:
                self.base = delta_io.attach(delta_io.open_base(base), self.container)
            except BaseException:
                self.source.close()
                raise

    # ------------------------------------------------------------------ basics
    def close(self) -> None:
        self._window.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._ahead = None  # its job's blob view would keep the file's map alive
        self.source.close()
        if self.base is not None:
            self.base.close()

    def __enter__(self) -> BsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pool(self) -> PriorityPool:
        """The decode pool (``pool.PriorityPool``: a pipeline's tasks ranked by tensor)."""
        if self._pool is None:
            self._pool = PriorityPool(self.threads)
        return self._pool

    def names(self) -> list[str]:
        """A key per tensor: its name, or ``"file::name"`` where several files hold that name."""
        ambiguous, files = self.container.ambiguous_names(), self.container.files
        return [t.name if t.name not in ambiguous else qualified_key(files[t.spec.file].path, t.name)
                for t in self.container.tensors]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def entry(self, name: str, file: str | None = None) -> TensorEntry:
        """The tensor ``name`` (or key ``"file::name"``); ``file``: the member file it is in."""
        key = name if file is None else qualified_key(file, name)
        try:
            return self._by_name[key]
        except KeyError:
            if key in self.container.ambiguous_names():
                files = sorted(self.container.files[t.spec.file].path
                               for t in self.container.tensors if t.name == key)
                raise AmbiguousTensorError(
                    f"{self.path}: {len(files)} files hold a tensor named {key!r} "
                    f"({', '.join(files)}); ask for '{files[0]}{KEY_SEP}{key}' or pass file=") from None
            raise TensorNotFoundError(f"no tensor named {key!r} in {self.path}") from None

    @property
    def original_size(self) -> int:
        return sum(f.size for f in self.container.files)

    @property
    def compressed_size(self) -> int:
        return self.source.size

    # ------------------------------------------------------------------ decoding
    def _resolve(self, entry: TensorEntry) -> TensorEntry:
        seen = 0
        while entry.codec == "ref":
            entry = self.entry(str(entry.params.get("of")))
            seen += 1
            if seen > 8:
                raise FormatError(f"tensor {entry.name!r}: reference cycle")
        return entry

    def decode_into(self, name: str, out: np.ndarray, check: bool = True,
                    blob: bytes | memoryview | None = None) -> np.ndarray:
        """Decode tensor ``name`` into ``out`` (uint8, exactly its byte size) and check its receipt."""
        entry = self.entry(name)
        src = self._resolve(entry)
        if out.dtype != np.uint8 or out.size != entry.spec.nbytes:
            raise ValueError(f"output buffer for {name!r} must be uint8[{entry.spec.nbytes}]")
        if src.codec in _DELTA:
            from . import delta as delta_io

            for task, _lo, _hi in delta_io.parts(self.base, self.container, src,
                                                 self.source.view(src.offset, src.length)):
                task(out)
        elif blob is None:
            blob = self.source.view(src.offset, src.length)
            try:
                decode_blob(src, blob, out, self.pool, self.threads, self._parsed(entry))
            finally:
                self.source.release(src.offset, src.length)
        else:
            decode_blob(src, blob, out, self.pool, self.threads)
        if check:
            check_receipt(entry, out)
        return out

    def _parsed(self, entry: TensorEntry) -> Any:
        """The decode job of ``entry`` if its side information was parsed ahead (else None),
        after queueing the parsing of the tensor after it on the pool.

        Why: a caller reading every tensor in order (``for n in f.names(): f.read(n)``) waited
        for each tensor's side information (zstd, decode tables: ~20 % of a MiniLM bf16 decode's
        CPU) on its own thread before any chunk decoded, which bounded two threads to ~1.5x.
        Parsed on the pool while the current tensor decodes, it is off that path. Only the
        side information is prepared (no output is allocated, nothing decoded); a tensor read
        out of order just parses its own. Local files with 2+ threads only (a remote blob
        would fetch bytes the caller did not ask for)."""
        if self.threads < 2 or getattr(self.source, "stream_view", None) is not None:
            return None
        ahead, self._ahead = self._ahead, None
        job = None
        if ahead is not None and ahead[0] is entry and ahead[1].exception() is None:
            job = ahead[1].result()  # a failed parse is redone in order, its error raised then
        nxt = self._next_coded(entry)
        if nxt is not None and ahead is not None and ahead[0] is nxt:
            self._ahead = ahead  # queued already (``entry`` has no blob of its own)
        elif nxt is not None and not (self._windowing and nxt.spec.nbytes <= SMALL_BYTES):
            self._parse_ahead(nxt)
        elif self._windowing and ahead is not None and ahead[0] is not entry:
            self._ahead = ahead  # a large tensor after the window's small ones (``_window_fill``)
        return job

    def _next_coded(self, entry: TensorEntry) -> TensorEntry | None:
        """The first tensor after ``entry`` in the index with chunks to decode (constants and
        empty tensors have none), looking at most 8 ahead; None past a patch's tensor."""
        ts = self.container.tensors
        if self._after is None:
            self._after = {id(t): i for i, t in enumerate(ts)}
        i = self._after.get(id(entry))
        for t in ts[i + 1 : i + 9] if i is not None else ():
            try:
                src = self._resolve(t)
            except BigsmallError:  # a broken reference: its own read reports it
                return None
            if src.codec in _DELTA:
                return None
            if src.length:
                return t
        return None

    def read_bytes(self, name: str, check: bool = True) -> np.ndarray:
        entry = self.entry(name)
        if self.threads < 2 or getattr(self.source, "stream_view", None) is not None or self.base is not None:
            return self.decode_into(name, alloc_bytes(entry), check)
        self._windowing = True
        i = self._index(entry)
        following = self._following(i) if i is not None else []
        coded = bool(following) and following[0][0] == i
        fut = self._window.take(i, coded) if i is not None else None
        if i is not None:  # before decoding this one: the pool's spare thread starts on them
            self._window_fill(i, following, entry)
        if fut is not None and fut.exception() is None:  # else decoded again: its error raised here
            return fut.result()  # type: ignore[no-any-return]
        out = self.decode_into(name, alloc_bytes(entry), check)
        if i is not None:
            self._window_fill(i, following)
        return out

    def _index(self, entry: TensorEntry) -> int | None:
        if self._after is None:
            self._after = {id(t): i for i, t in enumerate(self.container.tensors)}
        return self._after.get(id(entry))

    def _following(self, index: int) -> list[tuple[int, TensorEntry, bool]]:
        """``(index, entry, small)`` of the coded tensors from ``index`` on (16 looked at), up
        to a patch's tensor or a broken reference (their own reads handle them)."""
        found = []
        for j, t in enumerate(self.container.tensors[index : index + 17], index):
            try:
                src = self._resolve(t)
            except BigsmallError:
                break
            if src.codec in _DELTA:
                break
            if src.length:
                found.append((j, t, t.spec.nbytes <= SMALL_BYTES))
        return found

    def _window_fill(self, index: int, following: list[tuple[int, TensorEntry, bool]],
                     current: TensorEntry | None = None) -> None:
        """Queue whole small tensors after ``index`` on the pool (``read_window``); the first
        large one after them gets its side information parsed ahead instead."""
        def submit(e: TensorEntry) -> Future[Any]:
            src = self._resolve(e)
            blob = self.source.view(src.offset, src.length)
            return self.pool.submit_ranked(WINDOW_RANK, decode_whole, e, src, blob, plan_decode,
                                           alloc_bytes, check_receipt)

        large = self._window.fill(index, [f for f in following if f[0] > index], submit)
        ahead = self._ahead
        if large is not None and (ahead is None or ahead[0] is not large and ahead[0] is not current):
            self._parse_ahead(large)

    def _parse_ahead(self, t: TensorEntry) -> None:
        """Queue the parsing of ``t``'s side information on the pool (``_parsed`` takes it)."""
        src = self._resolve(t)
        blob = self.source.view(src.offset, src.length)
        self._ahead = (t, self.pool.submit_ranked(
            AHEAD_RANK, plan_decode, src.spec, src.codec, src.params, blob, src.head_len,
            src.chunk_lens))

    def read(self, name: str, check: bool = True) -> np.ndarray:
        """The tensor as a numpy array (bf16/fp8 come back as uint16/uint8 bit patterns)."""
        entry = self.entry(name)
        raw = self.read_bytes(name, check)
        spec = entry.spec
        if spec.info.itemsize == 0:
            return raw  # packed sub-byte dtypes: the packed bytes
        return raw.view(NUMPY_VIEW[spec.dtype]).reshape(spec.shape)

    def file_bytes(self, f: FileEntry) -> bytes:
        """The full original bytes of a non-safetensors member file (config, tokenizer...)."""
        assert f.blob is not None
        stored = self.source.read(*f.blob)
        data = zstd_decompress(stored, f.size, f"file {f.path!r}")
        if len(data) != f.size or hashlib.sha256(data).hexdigest() != f.receipt.digest:
            raise IntegrityError(f"file {f.path!r}: sha256 does not match its receipt")
        return data

    def file_tensors(self, file_index: int) -> list[TensorEntry]:
        """Tensors of one source file in their original data order."""
        ts = [t for t in self.container.tensors if t.spec.file == file_index]
        return sorted(ts, key=lambda t: (t.spec.begin, t.spec.end))

    def iter_decoded(
        self, entries: list[TensorEntry], check: bool = True, ahead_bytes: int = AHEAD_BYTES,
        alloc: Callable[[TensorEntry], np.ndarray] | None = None,
    ) -> Iterator[tuple[TensorEntry, np.ndarray]]:
        """Decode ``entries`` in order, pipelined: yields (entry, uint8 buffer) as each is ready.

        The calling thread only queues work: the pool parses each tensor's side information and
        decodes the chunks of the tensors ahead (blobs are read zero-copy from the file's map),
        up to ``ahead_bytes`` of decoded output in flight (at least one tensor): small tensors
        decode in parallel too, and memory stays bounded by about ``ahead_bytes`` + the largest
        tensor. ``alloc`` supplies each destination buffer (e.g. a
        torch tensor's storage); by default a fresh numpy array.
        """
        for t, src, out, ranges in self._pipeline(entries, ahead_bytes, alloc, pieces=False):
            for fut, _lo, _hi in ranges:
                fut.result()
            self.source.release(src.offset, src.length)  # its coded pages leave our RSS
            if check:
                check_receipt(t, out)
            yield t, out

    def iter_pieces(self, entries: list[TensorEntry], check: bool = True,
                    ahead_bytes: int | None = None,
                    alloc: Callable[[TensorEntry], np.ndarray] | None = None) -> Iterator[memoryview]:
        """The decoded bytes of ``entries``, in order, in pieces of about ``PIECE_BYTES``
        (a small tensor is one piece), each yielded as soon as it is decoded.

        What a restore wants: it writes and hashes the first megabytes of a large tensor
        while the pool still decodes the rest (with whole tensors, the thread that writes
        waited for all of MiniLM's 23 MB embedding before its first byte). Each tensor's
        receipt is hashed piece by piece and checked after its last piece: a corrupt tensor
        raises ``IntegrityError`` before the piece after it, so a consumer must not keep
        what it received (a restore writes a temporary file and removes it). A piece is a
        view of its tensor's buffer, fresh per tensor and never reused, so it stays valid while
        referenced (the restore's sha256 thread, ``io/hasher.py``, holds pieces after the
        iterator moves on); ``alloc``: each tensor's destination, as in ``iter_decoded``, then
        the pieces are views of it. The coded bytes before a piece's share of the blob leave the process's resident
        set as the pieces go by, not after the last one: a 400 MB embedding's 264 MB blob was
        resident whole while it decoded (a page dropped too early is faulted back, same bytes)."""
        ahead = AHEAD_BYTES if ahead_bytes is None else ahead_bytes
        for t, src, out, ranges in self._pipeline(entries, ahead, alloc, pieces=True):
            h = xxhash.xxh3_128() if check else None
            data = out.data.cast("B")
            for fut, lo, hi in ranges:
                fut.result()
                piece = data[lo:hi]
                if h is not None:
                    h.update(piece)
                yield piece
                if data.nbytes:
                    self.source.release(src.offset, src.length * lo // data.nbytes)
            self.source.release(src.offset, src.length)
            if h is not None and h.hexdigest() != t.receipt.digest:
                raise _receipt_error(t)

    def _pipeline(
        self, entries: list[TensorEntry], ahead_bytes: int,
        alloc: Callable[[TensorEntry], np.ndarray] | None, pieces: bool,
    ) -> Iterator[tuple[TensorEntry, TensorEntry, np.ndarray, list[tuple[Future[None], int, int]]]]:
        """Queue the decoding of ``entries`` ahead (up to ``ahead_bytes`` of output in flight,
        at least one tensor) and yield, in order, (entry, resolved entry, buffer, its parts as
        (future, byte begin, byte end)); the consumer waits on the futures it needs. Parts:
        with ``pieces``, contiguous ranges in order; else one strided group per thread (byte
        bounds 0, 0), measured 8-12 % faster on 2 threads for whole tensors (MiniLM bf16, both
        coders, interleaved runs) but complete only all together."""
        pending: deque[tuple[TensorEntry, TensorEntry, np.ndarray,
                             Future[list[tuple[Future[None], int, int]]]]] = deque()
        inflight = 0

        def finish() -> tuple[TensorEntry, TensorEntry, np.ndarray, list[tuple[Future[None], int, int]]]:
            nonlocal inflight
            t, src, out, start = pending.popleft()
            inflight -= out.size
            return t, src, out, start.result()

        plan = getattr(self.source, "plan", None)
        if plan is not None:  # a remote source fetches the blobs ahead, in this order
            plan([(s.offset, s.length) for s in map(self._resolve, entries)])
        stream = getattr(self.source, "stream_view", None)
        for rank, t in enumerate(entries):  # the pool runs a lower rank first
            src = self._resolve(t)
            _codec(src)  # an unknown codec id names the tensor
            if stream is not None:  # remote: bytes may still be arriving; ready() waits for them
                blob, ready = stream(src.offset, src.length)
            else:
                blob, ready = self.source.view(src.offset, src.length), None
            out = alloc_bytes(t, alloc)
            pending.append((t, src, out, self.pool.submit_ranked(rank, self._start, rank, src, blob, out,
                                                                 pieces, ready)))
            inflight += out.size
            while pending and inflight - pending[-1][2].size >= ahead_bytes:
                yield finish()
        while pending:
            yield finish()

    def _start(self, rank: int, src: TensorEntry, blob: memoryview, out: np.ndarray,
               pieces: bool, ready: Callable[[int, int], None] | None = None,
               ) -> list[tuple[Future[None], int, int]]:
        """Pool task: parse one tensor's side information, then queue its chunk groups or
        ranges (``_pipeline``).

        Parsing (zstd of the head, building the decode tables: ~0.1-0.5 ms a tensor) runs on
        the pool rather than on the thread that iterates, which in a restore also hashes and
        writes the output: measured on MiniLM fp32, that thread was the bottleneck. The task
        never waits for the ranges it queues, so it cannot deadlock the pool. Ranges are
        contiguous and queued in order (``DecodeJob.ranges``): at least one per thread, and
        pieces of about ``PIECE_BYTES`` for a large tensor. They are queued with the tensor's
        ``rank``: ahead of the parsing of every later tensor (``pool.PriorityPool``).

        ``ready`` (a remote blob, ``RemoteSource.stream_view``): waits for bytes of the blob
        still on the way: the head before parsing, each range's chunks before decoding them,
        so a large tensor decodes while its last bytes still arrive."""
        if ready is not None:
            ready(0, src.length if src.codec in _DELTA else src.head_len)
        if src.codec in _DELTA:  # a patch's tensor: decoded against the base, chunk by chunk
            from . import delta as delta_io

            return [(self.pool.submit_ranked(rank, task, out), lo if pieces else 0, hi if pieces else 0)
                    for task, lo, hi in delta_io.parts(self.base, self.container, src, blob)]
        job = plan_decode(src.spec, src.codec, src.params, blob, src.head_len, src.chunk_lens)
        if ready is not None:
            return [(self.pool.submit_ranked(rank, _when_ready, job, ready, a, b, out), lo, hi)
                    for a, b, lo, hi in job.ranges(self.threads, PIECE_BYTES)]
        if not pieces:
            g = job.groups(self.threads)
            return [(self.pool.submit_ranked(rank, job.run_group, k, g, out), 0, 0)
                    for k in range(g)]
        return [(self.pool.submit_ranked(rank, job.run_range, a, b, out), lo, hi)
                for a, b, lo, hi in job.ranges(self.threads, PIECE_BYTES)]

    def _safe_resolve(self, entry: TensorEntry) -> TensorEntry | None:
        try:
            return self._resolve(entry)
        except Exception:  # noqa: BLE001 - verify reports it for that tensor
            return None

    def _head(self, src: TensorEntry, planned: bool) -> bytes:
        """A blob's side information; ``planned``: announced to a remote source (``verify``)."""
        if not planned or src.head_len <= 0:
            return self.source.read(src.offset, src.head_len)
        try:
            return bytes(self.source.view(src.offset, src.head_len))
        finally:
            self.source.release(src.offset, src.head_len)

    def data_tensors(self, file_index: int) -> list[TensorEntry]:
        """``file_tensors``, checked to tile the file's data section with no gap: what a
        restore writes after the header, in order."""
        pos = 0
        tensors = self.file_tensors(file_index)
        for t in tensors:
            if t.spec.begin != pos:
                raise FormatError(f"tensor {t.name!r}: data offsets leave a gap at {pos}")
            pos = t.spec.end
        return tensors

    def iter_file_chunks(self, file_index: int, check: bool = True) -> Iterator[memoryview]:
        """The bytes of a source safetensors file, in order (header, then tensor by tensor)."""
        f = self.container.files[file_index]
        yield memoryview(f.header)
        yield from self.iter_pieces(self.data_tensors(file_index), check)

    # ------------------------------------------------------------------ verify
    def verify(self, mode: str = "full", fraction: float = 0.1, seed: int = 0,
               progress: Any = None) -> VerifyReport:
        """'fast': structure and side information; 'sample': decode a fraction of the tensors;
        'full': decode everything and rebuild every file's sha256 (``io/verify_file.py``)."""
        from .verify_file import verify_container

        return verify_container(self, mode, fraction, seed, progress)


def _shard_source(path: Path) -> Any:
    from .shards import ShardSource

    return ShardSource(path)


def _when_ready(job: Any, ready: Callable[[int, int], None], first: int, end: int, out: np.ndarray) -> None:
    """Decode chunks ``first`` .. ``end - 1`` once their coded bytes are in (``_start``)."""
    offsets = job.offsets
    ready(int(offsets[min(first, len(offsets) - 1)]), int(offsets[min(end, len(offsets) - 1)]))
    job.run_range(first, end, out)


def alloc_bytes(entry: TensorEntry, alloc: Callable[[TensorEntry], Any] | None = None) -> Any:
    """The destination buffer of a tensor (``alloc``'s, else a numpy uint8 array), refused
    with ``InsufficientMemoryError`` when the tensor is larger than the memory available now.

    Why check first: sizes come from the index, and a few bytes of a crafted container can
    declare a constant tensor of a terabyte; with memory overcommit the allocation itself may
    succeed and the process is then killed while the buffer fills."""
    n = entry.spec.nbytes
    if n > 1 << 26:  # small tensors: not worth a system call
        import psutil

        avail = psutil.virtual_memory().available
        if n > avail:
            raise InsufficientMemoryError(
                f"tensor {entry.name!r} needs {n} bytes of memory, {avail} are available")
    try:
        return alloc(entry) if alloc is not None else np.empty(n, dtype=np.uint8)
    except (MemoryError, ValueError, RuntimeError) as exc:  # numpy's and torch's refusals
        raise InsufficientMemoryError(
            f"tensor {entry.name!r}: cannot allocate {n} bytes ({type(exc).__name__})") from None


def _codec(entry: TensorEntry) -> Codec:
    """The codec of a stored tensor; an unknown id raises UnknownCodecError naming the tensor."""
    try:
        return get_codec(entry.codec)
    except UnknownCodecError as exc:
        raise UnknownCodecError(f"tensor {entry.name!r}: {exc}") from None


def _problem(entry: TensorEntry, exc: BaseException) -> str:
    """A verify problem line: the error's message, prefixed with the tensor's name unless the
    message names it already (most do: "tensor 'x': ...")."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return msg if repr(entry.name) in msg else f"{entry.name}: {msg}"


def check_receipt(entry: TensorEntry, data: np.ndarray) -> None:
    if xxhash.xxh3_128_hexdigest(data.data) != entry.receipt.digest:
        raise _receipt_error(entry)


def _receipt_error(entry: TensorEntry) -> IntegrityError:
    return IntegrityError(f"tensor {entry.name!r}: decoded bytes do not match the stored checksum "
                          "(the file is corrupt)")


def decode_blob(entry: TensorEntry, blob: bytes | memoryview, out: np.ndarray, pool: Executor | None,
                workers: int = 1, job: Any = None) -> None:
    """Decode a blob into ``out``: its chunks in ``workers`` strided shares, one of them on the
    calling thread (which would otherwise sit idle waiting) and the others on ``pool``
    (``job``: its side information already parsed, ``BsFile._parsed``)."""
    _codec(entry)
    if job is None:
        job = plan_decode(entry.spec, entry.codec, entry.params, blob, entry.head_len,
                          entry.chunk_lens)
    g = job.groups(workers) if pool is not None else 1
    if g < 2:
        job.run_all(out)
        return
    futs = [pool.submit(job.run_group, k, g, out) for k in range(1, g)]  # type: ignore[union-attr]
    try:
        job.run_group(0, g, out)
    finally:
        for fut in futs:  # never return (or raise) while a worker still writes into ``out``
            fut.exception()
    for fut in futs:
        fut.result()
