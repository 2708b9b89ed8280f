"""``compress``: safetensors file or model folder -> ``.bs`` container.

One pass: parse every safetensors header, order tensors (non-layer tensors first, then layer by
layer), code them on a thread pool with a bounded window (memory stays at a few tensors), check
each coded tensor by decoding it again (unless told not to), append blobs to a temporary file,
then write the index and header and rename into place.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import xxhash
import zstandard

from .. import __version__
from ..codecs import spread
from ..codecs.base import get_codec
from ..container import format as fmt
from ..container.parity import choose_geometry
from ..core import safetensors_header as sth
from ..core.layers import assign_layers
from ..core.types import (
    Container,
    FileEntry,
    Receipt,
    TensorEntry,
    TensorPlan,
    TensorSpec,
    qualified_key,
)
from ..errors import BigsmallError, BigsmallIOError, InvalidOptionError, InvalidSafetensorsError
from ..plan.planner import CHUNK_BYTES, check_options, chunk_units_for, plan_tensor
from . import delta as delta_io
from . import progress as prog
from . import resume as resume_mod
from .atomic import atomic_file, check_target
from .ecc import protect
from .flush import flushing
from .reader import default_threads
from .source import FileSource, not_regular
from .verify_plan import verify_plan


@attrs.frozen
class CompressResult:
    src: str
    dst: str
    original_bytes: int
    compressed_bytes: int
    tensors: int
    files: int
    seconds: float
    codecs: dict[str, int] = attrs.field(hash=False)
    level: str = "default"
    format_version: str = "1.2"
    coder: str = "auto"
    ecc: dict[str, Any] | None = attrs.field(default=None, hash=False)
    resumed_tensors: int = 0
    delta_from: str | None = None  # the base of a patch (``compress(delta_from=...)``)
    durable: bool = True  # fsynced before the rename (``compress(durable=False)``: not)

    @property
    def ratio(self) -> float:
        return self.compressed_bytes / self.original_bytes if self.original_bytes else 1.0

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["ratio"] = self.ratio
        d["mb_per_s"] = self.original_bytes / 1e6 / self.seconds if self.seconds else None
        return d


def default_output(src: Path) -> Path:
    """model.safetensors -> model.bs ; folder -> folder.bs"""
    src = Path(src)
    if src.is_dir():
        return src.parent / (src.name.rstrip("/") + ".bs")
    return src.with_suffix(".bs")


@attrs.frozen
class _Input:
    rel: str
    path: Path
    kind: str  # safetensors | blob
    size: int
    header: sth.SafetensorsHeader | None


def _discover(src: Path) -> tuple[list[_Input], str]:
    if src.is_file():
        return [_read_input(src, src.name, force_safetensors=True)], "file"
    if src.is_dir():
        # only regular files (symlinks followed): a FIFO, socket or device in the folder is
        # not model content, and reading one would block or never end
        try:
            paths = sorted(p for p in src.rglob("*") if p.is_file())
        except OSError as exc:  # an unreadable subfolder
            raise BigsmallIOError(f"{src}: cannot list it ({exc.strerror or exc}: "
                                  f"{exc.filename})") from None
        if not paths:
            raise BigsmallIOError(f"{src} is an empty folder: nothing to compress")
        inputs = [_read_input(p, p.relative_to(src).as_posix()) for p in paths]
        if not any(i.kind == "safetensors" for i in inputs):
            raise InvalidSafetensorsError(f"{src} holds no .safetensors file")
        return inputs, "folder"
    not_regular(src)  # it exists but is a FIFO, socket or device: say so
    if os.path.lexists(src):
        raise BigsmallIOError(f"{src}: cannot read it (a broken symlink, or no permission)")
    raise BigsmallIOError(f"{src}: no such file or folder")


def _read_input(path: Path, rel: str, force_safetensors: bool = False) -> _Input:
    """One input file; a safetensors one (``force_safetensors``: the single file given, any
    name) has its header parsed and checked. ``rel``: its name in the index; messages give
    the whole ``path``, so that the file at fault can be found."""
    if not (force_safetensors or path.suffix == ".safetensors"):
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise BigsmallIOError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        return _Input(rel, path, "blob", size, None)
    with FileSource(path) as s:  # refuses a FIFO, socket or device before reading
        size = s.size
        first = s.read(0, min(len(fmt.MAGIC), size))
        if first == fmt.MAGIC:
            raise InvalidSafetensorsError(
                f"{path} is not a safetensors file: it is a bigsmall container already "
                f"(use `bigsmall decompress` to restore it)")
        try:
            n = sth.header_length(first[:8], size)
            header = sth.parse_header(s.read(0, n), size)
        except InvalidSafetensorsError as exc:
            raise InvalidSafetensorsError(f"{path} is not a safetensors file: {exc}") from None
    return _Input(rel, path, "safetensors", size, header)


def _mode(src: Path) -> int | None:
    """The ``.bs``'s permission bits: the source file's (as gzip and zstd do), or for a
    folder its own bits less the execute ones (0755 -> 0644, 0700 -> 0600)."""
    try:
        bits = stat.S_IMODE(src.stat().st_mode)
    except OSError:
        return None
    return bits & 0o666 if src.is_dir() else bits


WINDOW_BYTES = 256 << 20  # input bytes in flight before the writer waits for the oldest tensor


def _sha256(path: Path, source: FileSource | None = None) -> str:
    """The file's sha256; through ``source``'s memory map when given (no copy of the file
    into fresh memory: ~100 -> ~65 ms of a pool thread for MiniLM fp32's 91 MB)."""
    h = hashlib.sha256()
    if source is not None:
        step = 8 << 20
        for off in range(0, source.size, step):
            n = min(step, source.size - off)
            h.update(_input(source, off, n))  # hashlib releases the GIL on large updates
            source.release(off, n)
        return h.hexdigest()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(8 << 20)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _input(source: FileSource, offset: int, length: int) -> memoryview | bytes:
    """A tensor's bytes: a view of the input's memory map, else (a file that cannot be
    mapped) a copy.

    Why a view: copying each tensor out of the page cache (``pread`` into fresh memory, whose
    page faults dominate) took the reading thread 75-81 ms of MiniLM fp32's 91 MB against
    16-23 ms for the views, and the coder threads wait for it; the copies also counted in the
    process's memory. ``release`` drops each tensor's pages from the process once coded."""
    try:
        return source.view(offset, length)
    except BigsmallIOError:
        return source.read(offset, length)


SPREAD_BYTES = 4 << 20
"""A tensor at least this large has its chunks (and its context search's candidates, and its
verify pass) spread over the pool while it is coded (``codecs/spread.py``); smaller ones are
coded by one thread each, as many at a time as the pool has threads."""


class _Spread:
    """A ``spread.Mapper`` over ``pool``: the pieces are queued on the pool, and the calling
    thread (itself a pool thread) runs them in order too, taking back each piece that no
    other thread has started (``Future.cancel``) and waiting only for pieces already running.
    So a piece never waits for a free thread (no deadlock when every thread is busy), and the
    results come back in the items' order: the bytes do not depend on which thread made them."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool

    PIECES = 16  # at most this many pieces: many small items (2470 row-group chunks) go in runs

    def __call__(self, fn: Any, items: Any) -> list[Any]:
        items = list(items)
        if len(items) < 2:
            return [fn(x) for x in items]
        step = -(-len(items) // self.PIECES)
        runs = [items[i : i + step] for i in range(0, len(items), step)]

        def run(xs: list[Any]) -> list[Any]:
            return [fn(x) for x in xs]

        futs = [self.pool.submit(run, xs) for xs in runs[1:]]
        try:
            out = run(runs[0])
            for xs, f in zip(runs[1:], futs, strict=True):
                out.extend(run(xs) if f.cancel() else f.result())
        except BaseException:
            for f in futs:
                f.cancel()
            raise
        return out


def _encode_one(data: np.ndarray, spec: TensorSpec, chunk_bytes: int, verify: bool,
                level: str = "default", version: tuple[int, int] = fmt.VERSION,
                coder: str = "rans", pool: ThreadPoolExecutor | None = None,
                threads: int = 1) -> TensorPlan:
    """Code one tensor; with ``verify``, decode it again and fall back to raw on any mismatch.

    The fallback is marked (codec 'raw', params 'fallback') so a codec bug shows up in stats
    and tests instead of as a corrupt file. With ``pool`` (``threads`` threads) a tensor of at
    least ``SPREAD_BYTES`` spreads its independent pieces over it (``_Spread``): the same
    bytes, sooner.
    """
    mapper = _Spread(pool) if pool is not None and threads > 1 and data.size >= SPREAD_BYTES else None
    with spread.using(mapper):
        plan = plan_tensor(data, spec, chunk_bytes, level, version, coder)
    if verify and plan.codec != "raw":
        try:
            ok = verify_plan(plan, data, spec, mapper)
        except BigsmallError:
            ok = False
        if not ok:
            raw = get_codec("raw").encode(data, spec, chunk_units_for(spec, chunk_bytes))
            assert raw is not None
            plan = attrs.evolve(raw, params={**raw.params, "fallback": plan.codec})
    return plan


def _encode_vs_base(data: np.ndarray, spec: TensorSpec, chunk_bytes: int, verify: bool,
                    level: str, version: tuple[int, int], coder: str,
                    base: delta_io.BaseModel, rel: tuple[str, str]) -> TensorPlan:
    """A tensor of a patch: a reference to its equal base tensor (zero bytes), else the
    smaller of its standalone and delta codings (``io/delta.py``)."""
    kind, of = rel
    if kind == "base":
        return TensorPlan("base", {"of": of})
    return delta_io.encode_delta(
        data, base.data(of), spec, of,
        lambda lvl: _encode_one(data, spec, chunk_bytes, verify, lvl, version, coder), level, verify)


def compress(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    threads: int | None = None,
    verify: bool = True,
    progress: bool | None = False,
    chunk_bytes: int = CHUNK_BYTES,
    level: str = "default",
    format_version: str | None = None,
    coder: str = "auto",
    ecc: float | None = None,
    resume: bool = False,
    delta_from: str | os.PathLike[str] | None = None,
    durable: bool = True,
) -> CompressResult:
    """Compress a ``.safetensors`` file or a model folder into one ``.bs`` container.

    ``durable`` (default): the output is fsynced (along the way, by ``flush.Flusher``, and
    before the rename) so that it survives a crash once this returns. ``durable=False`` skips
    every sync, as ``cp``, ``zstd`` and ZipNN do: still written to a temporary file and renamed
    (no reader sees a partial file), but a crash or power loss soon after may lose it.

    ``format_version``: ``"1.2"`` (the default) is needed by ``coder="prefix"`` and
    ``coder="auto"``; ``"1.1"`` (the default with ``coder="rans"``) codes floats with
    ``field8`` only; ``"1.0"`` writes files that every bigsmall reads.

    ``coder``: ``"auto"`` (default: per tensor, the prefix code where it costs at most 1 %
    of the tensor's size, 0.25 % at ``level="max"``, else rANS, ``codecs/auto.py``: on the
    corpus every float tensor becomes prefix-coded at the default level, bf16 stays mostly
    rANS at ``max``),
    ``"rans"`` (smallest files, codec ``field8``) or ``"prefix"`` (codec ``fieldp`` wherever
    it applies: decodes ~1.6x faster than rANS, ~0.1-0.2 points larger).

    ``level``: ``"default"`` searches each float tensor's row/column contexts (smallest files);
    ``"fast"`` uses one context per tensor (~2-2.5x faster, slightly larger); ``"max"`` searches
    as ``default`` and keeps rANS where the prefix code costs more than 0.25 % (``auto``: the
    smallest files, slower to decode). All write the same format; any bigsmall reads them. Checked before anything is read or written.

    ``ecc``: append ``ecc`` % of erasure-code parity (``io/ecc.py``: ``bigsmall repair``
    rebuilds damaged bytes from it). ``resume``: journal the run beside its temporary output,
    and continue a killed run's journaled temporary for the same output and inputs
    (``io/resume.py``); the file is byte-identical to an uninterrupted run's.

    ``delta_from``: a base model (safetensors file or folder, or ``.bs``): the output is a
    patch that decodes only with that base (``io/delta.py``, docs/delta.md): per tensor the
    smallest of a reference to the base tensor, the delta coding and the standalone coding.
    """
    if format_version is None:
        format_version = "1.1" if coder == "rans" else "1.2"
    if format_version not in fmt.FORMATS:
        raise InvalidOptionError(f"unknown format version {format_version!r}; this bigsmall writes "
                                 f"{', '.join(fmt.FORMATS)}")
    version = fmt.FORMATS[format_version]
    check_options(level, coder, version)
    if threads is not None and threads < 1:
        raise InvalidOptionError(f"threads must be at least 1, not {threads}")
    t0 = time.perf_counter()
    src = Path(src)
    out = Path(dst) if dst is not None else default_output(src)
    inputs, root = _discover(src)  # a bad input is reported before an existing output
    check_target(out, force, inputs=[src])
    if ecc is not None:
        choose_geometry(1 << 20, ecc)  # a bad percentage is refused before any work
    threads = threads or default_threads()
    mode = _mode(src)
    if delta_from is not None and resume:
        raise InvalidOptionError("a patch (delta_from) cannot be resumed: drop one of the two")
    base = delta_io.open_base(delta_from) if delta_from is not None else None
    by_digest = delta_io.digest_index(base) if base is not None else {}
    used: set[str] = set()

    specs: list[TensorSpec] = []
    for fi, inp in enumerate(inputs):
        if inp.header is not None:
            specs.extend(attrs.evolve(t, file=fi) for t in inp.header.tensors)
    layer_of, layer_keys = assign_layers(s.name for s in specs)
    # a name several files hold (two Dense modules' ``linear.weight``) is referenced as "file::name"
    shared = {n for n, c in Counter(s.name for s in specs).items() if c > 1}
    order = sorted(range(len(specs)), key=lambda i: (
        layer_of.get(specs[i].name, -1), specs[i].file, specs[i].begin, specs[i].end))
    total = sum(i.size for i in inputs)
    sources = {fi: FileSource(inp.path) for fi, inp in enumerate(inputs) if inp.kind == "safetensors"}
    codecs: dict[str, int] = {}
    fp = resume_mod.fingerprint([(i.rel, i.path, i.size) for i in inputs], {
        "chunk_bytes": chunk_bytes, "level": level, "version": list(version), "coder": coder,
        "verify": verify, "writer": __version__}) if resume else {}
    resumed = resume_mod.find(out, fp) if resume else None
    journal: resume_mod.Journal | None = None
    ecc_info = None
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="bigsmall") as pool, \
                atomic_file(out, force, durable, mode=mode, inputs=[src], resumable=resume,
                            adopt=resumed.tmp if resumed else None) as (tmp, fh), \
                flushing(fh, durable) as flusher, \
                prog.bar(total, f"compress {src.name}", progress) as bar:
            sha_futs = {fi: pool.submit(_sha256, inp.path, sources.get(fi))
                        for fi, inp in enumerate(inputs)}
            fh.write(b"\0" * fmt.HEADER_SIZE)  # type: ignore[attr-defined]
            pos = fmt.HEADER_SIZE
            entries: list[TensorEntry] = []
            seen: dict[tuple[str, str, int], TensorSpec] = {}
            if resume:
                journal = resume_mod.Journal(resume_mod.journal_path(tmp), fp, resumed)
            if resumed is not None:  # the journaled tensors are kept: replay their bookkeeping
                pos = resumed.end
                fh.truncate(pos)  # type: ignore[attr-defined]
                fh.seek(pos)  # type: ignore[attr-defined]
                for e in resumed.entries:
                    entries.append(e)
                    codecs[e.codec] = codecs.get(e.codec, 0) + 1
                    if e.codec != "ref" and e.spec.nbytes:
                        seen.setdefault((e.spec.dtype, e.receipt.digest, e.spec.nbytes), e.spec)
                    bar.update(e.spec.nbytes)
            window: deque[tuple[TensorSpec, str, Future[TensorPlan] | None, str | None]] = deque()
            inflight = 0  # input bytes of the tensors in ``window``

            def drain_one() -> None:
                nonlocal pos
                spec, digest, fut, ref = window.popleft()
                layer = layer_of.get(spec.name)
                receipt = Receipt("xxh3_128", digest)
                if fut is None:
                    entries.append(TensorEntry(spec, "ref", {"of": ref}, 0, 0, (), receipt, layer))
                    if journal is not None:
                        journal.record(entries[-1], xxhash.xxh3_64_intdigest(b""), pos)
                    codecs["ref"] = codecs.get("ref", 0) + 1
                else:
                    plan = fut.result()
                    fh.write(plan.head)  # type: ignore[attr-defined]
                    for c in plan.chunks:
                        fh.write(c)  # type: ignore[attr-defined]
                    entries.append(TensorEntry(spec, plan.codec, plan.params, pos if plan.coded_size else 0,
                                               len(plan.head), tuple(len(c) for c in plan.chunks),
                                               receipt, layer))
                    pos += plan.coded_size
                    if journal is not None:  # bytes reach the OS before the line that claims them
                        fh.flush()  # type: ignore[attr-defined]
                        bx = xxhash.xxh3_64()
                        for part in (plan.head, *plan.chunks):
                            bx.update(part)
                        journal.record(entries[-1], bx.intdigest(), pos)
                    codecs[plan.codec] = codecs.get(plan.codec, 0) + 1
                    if flusher is not None:
                        flusher.wrote(pos)
                bar.update(spec.nbytes)
                h = inputs[spec.file].header
                assert h is not None
                # done with its bytes: the input's pages leave this process (not the page cache)
                sources[spec.file].release(h.data_start + spec.begin, spec.nbytes)

            for i in order[len(entries):]:  # after a resume, the tensors not journaled
                spec = specs[i]
                hdr = inputs[spec.file].header
                assert hdr is not None
                raw = _input(sources[spec.file], hdr.data_start + spec.begin, spec.nbytes)
                data = np.frombuffer(raw, dtype=np.uint8)
                digest = xxhash.xxh3_128_hexdigest(raw)
                key = (spec.dtype, digest, spec.nbytes)
                first = seen.get(key) if spec.nbytes else None
                rel = delta_io.match(base, spec, data, digest, by_digest) if base is not None else None
                if rel is not None:
                    used.add(rel[1])
                    first = None
                if first is not None:  # same checksum: store once only if the bytes really match
                    fhdr = inputs[first.file].header
                    assert fhdr is not None
                    other = _input(sources[first.file], fhdr.data_start + first.begin, first.nbytes)
                    if not np.array_equal(np.frombuffer(other, dtype=np.uint8), data):
                        first = None
                if first is not None:
                    window.append((spec, digest, None, first.name if first.name not in shared
                                   else qualified_key(inputs[first.file].rel, first.name)))
                elif rel is not None:
                    window.append((spec, digest, pool.submit(_encode_vs_base, data, spec, chunk_bytes, verify, level, version, coder, base, rel), None))
                else:
                    if spec.nbytes and key not in seen:
                        seen[key] = spec
                    window.append((spec, digest, pool.submit(_encode_one, data, spec, chunk_bytes, verify, level, version, coder, pool, threads), None))
                inflight += spec.nbytes
                # Bound the tensors held (input copies and plans) by count *and* bytes: a count
                # alone stalls every thread behind one big tensor (MiniLM's embedding is half the
                # model; with 4 tensors in flight the other thread ran dry while it was coded).
                while len(window) > 2 * threads and inflight > WINDOW_BYTES:
                    inflight -= window[0][0].nbytes
                    drain_one()
            while window:
                drain_one()

            files: list[FileEntry] = []
            zc = zstandard.ZstdCompressor(level=12)
            for fi, inp in enumerate(inputs):
                receipt = Receipt("sha256", sha_futs[fi].result())
                if inp.kind == "safetensors":
                    assert inp.header is not None
                    files.append(FileEntry(inp.rel, "safetensors", inp.size, receipt, inp.header.header_bytes))
                    bar.update(inp.header.data_start)
                else:
                    stored = zc.compress(inp.path.read_bytes())
                    fh.write(stored)  # type: ignore[attr-defined]
                    files.append(FileEntry(inp.rel, "blob", inp.size, receipt, b"", (pos, len(stored))))
                    pos += len(stored)
                    bar.update(inp.size)
            container = Container(
                version, tuple(files), tuple(entries),
                {"writer": f"bigsmall {__version__}", "root": root, "name": src.name,
                 "layers": [list(k) for k in layer_keys],
                 **({"base": base.identity(used)} if base is not None else {})},
            )
            index = fmt.encode_index(container)
            fh.write(index)  # type: ignore[attr-defined]
            flen = pos + len(index)
            fh.seek(0)  # type: ignore[attr-defined]
            fh.write(fmt.pack_header(pos, len(index), flen, fmt.index_digest(index), version=version))  # type: ignore[attr-defined]
            if ecc is not None:
                ecc_info = protect(fh, flen, ecc)  # type: ignore[arg-type]
    except BaseException as exc:
        if journal is not None:  # an error: the temporary is gone; an interruption: resumable
            journal.close(remove=isinstance(exc, Exception))
            journal = None
        raise
    finally:
        if journal is not None:
            journal.close(remove=True)
        for s in sources.values():
            s.close()
        if base is not None:
            base.close()
    return CompressResult(str(src), str(out), total, out.stat().st_size, len(specs), len(inputs),
                          time.perf_counter() - t0, codecs, level, format_version, coder,
                          ecc_info.to_json() if ecc_info else None,
                          len(resumed.entries) if resumed else 0,
                          None if delta_from is None else str(delta_from), durable)
