"""``decompress``: ``.bs`` -> the original file or folder, byte for byte.

Tensors are decoded in data order through the pipelined ``BsFile.iter_pieces`` (the pool
decodes the tensors ahead while this thread writes the bytes that are ready, a large tensor in
pieces of ``PIECE_BYTES`` as they complete), so memory stays at about ``AHEAD_BYTES`` + one
tensor; each file's sha256 is rebuilt on the way and must equal its receipt before the output
is renamed into place.

Where the time goes besides the kernel, and what this module does about it:

- the bytes go from each decoded tensor's buffer to the file in one ``write`` (the OS's copy
  into its page cache; no Python-side copy). A shared writable ``mmap`` of the output, decoded
  into directly, was measured slower on ext4 (45 MB: 113 ms to fill vs 42 ms to ``write``; its
  page faults and dirty tracking cost more than the copy). Recycling decode buffers between
  tensors of the same size was measured too and dropped: glibc already hands freed blocks back
  to the next allocation, and buffers held aside only made it map fresh pages (more faults);
- durability: ``atomic_file`` fsyncs before the rename; ``_Sink`` has a background thread
  ``fdatasync`` each ``flush.FLUSH_BYTES`` as soon as they are written (``flush.Flusher``), so
  the disk flushes while the pool decodes and the final fsync only waits for the tail. 4 MiB
  steps rather than 16: the disk starts earlier and the tail is shorter (restore x0.93 /
  x0.94 / x0.98 of the 16 MiB time on MiniLM bf16 / whisper-tiny fp16 / MiniLM fp32,
  ``benchmarks/bench_restore_io.py --flush-mib 2,4,16``; 2 MiB was no better).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import attrs

from ..container import schema
from ..errors import FormatError, IntegrityError, InvalidOptionError
from . import progress as prog
from .atomic import atomic_dir, atomic_file, check_target
from .flush import Flusher
from .hasher import NoHash, Sha256
from .progress import fetch_bar
from .reader import BsFile
from .remote import is_remote, remote_name

CHECKS = ("sha256", "receipts")  # what checks a restore's bytes (``decompress(check=...)``)


@attrs.frozen
class DecompressResult:
    src: str
    dst: str
    bytes_written: int
    files: int
    seconds: float
    durable: bool = True  # fsynced before the rename (``decompress(durable=...)``)
    check: str = "sha256"  # what checked the bytes (``decompress(check=...)``)
    remote: dict[str, Any] | None = None  # a URL/hf:// source: requests, bytes, retries

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["mb_per_s"] = self.bytes_written / 1e6 / self.seconds if self.seconds else None
        return d


def _plain_name(name: object) -> str | None:
    """``name`` if it is one plain file name (``schema.check_file_name``; on Windows also no
    drive colon), else None. Why: the stored name comes from the container, which may be
    crafted; ``.`` once made the default output the folder holding the ``.bs``."""
    try:
        plain = schema.check_file_name(name, "stored name")
    except FormatError:
        return None
    return None if os.sep != "/" and ":" in plain else plain


def default_output(src: Path, bs: BsFile) -> Path:
    """model.bs -> model.safetensors (the stored name) ; folder.bs -> folder.

    The stored name is used only if it is a plain file name; otherwise the ``.bs``'s own name
    gives it (``model.bs`` -> ``model.safetensors``, ``folder.bs`` -> ``folder``; a name
    without ``.bs`` gets ``.out``), so the output is always a new name beside the ``.bs``."""
    folder = bs.container.meta.get("root") == "folder"
    if not folder:
        meta = bs.container.meta
        stored = _plain_name(meta.get("name") or bs.container.files[0].path)
        if stored is not None and stored != src.name:
            return src.parent / stored
    stem = _plain_name(src.name[:-3]) if src.name.endswith(".bs") else None
    if stem is None:
        return src.parent / (src.name + ".out")
    if folder or stem.endswith(".safetensors"):
        return src.parent / stem
    return src.parent / (stem + ".safetensors")


def folder_mode(mode: int) -> int:
    """A restored folder's bits from the ``.bs``'s: the owner can always enter and write it
    (its files are created inside after the mode is set, and a read-only folder could not be
    deleted), group and others may list it where they may read the ``.bs`` (r -> r-x):
    0644 -> 0755, 0600 -> 0700, 0640 -> 0750, 0444 -> 0755."""
    return 0o700 | (mode & 0o077) | (mode & 0o044) >> 2


def _member_parts(files: Any) -> list[tuple[str, ...]]:
    """Each member path of a folder container, split: ``schema.member_parts`` (the index
    parser's own check, run again here because this is where files get written), and on
    Windows no drive colon or backslash in a component."""
    out = schema.member_parts([f.path for f in files])
    if os.sep != "/" and any(os.sep in p or ":" in p for parts in out for p in parts):
        raise IntegrityError("refusing a member path with a drive or backslash")
    return out


def _member_file(root: Path, parts: tuple[str, ...], mode: int) -> Any:
    """Create ``root/parts`` (a new file, never through a symlink) and return it open for
    writing; its folders are created first and must resolve inside ``root``."""
    target = root.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    inside = os.path.join(os.path.realpath(root), *parts[:-1])
    if os.path.realpath(target.parent) != inside:
        raise IntegrityError(f"refusing member path {'/'.join(parts)!r}: it leaves the output folder")

    def opener(path: str, flags: int) -> int:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), mode)
        os.fchmod(fd, mode)  # exactly the .bs's bits, not less the umask
        return fd

    return open(target, "xb", opener=opener)  # "x": a new file, never an existing one


class _Sink:
    """One output file being restored: writes each part in order, feeds its sha256, moves the
    progress bar and, when the file will be fsynced (``durable``), has a ``flush.Flusher`` sync
    every ``flush.FLUSH_BYTES`` written, so the final fsync has little left to wait for.

    Writes go through the file object (its ``write`` of a large buffer is one system call,
    no copy), which is also what the full-disk tests intercept. ``close`` must be called (it
    stops the flusher) before the file is closed."""

    def __init__(self, fh: Any, bar: Any, durable: bool, expected_size: int, sha256: bool = True):
        self.fh = fh
        self.bar = bar
        # on a thread of its own for a large file; none with check="receipts"
        self.sha: Sha256 | NoHash = Sha256.for_size(expected_size) if sha256 else NoHash()
        self.size = 0
        self._flusher = Flusher.start(fh, durable)

    def write(self, part: Any) -> None:
        mv = memoryview(part)
        self.fh.write(mv)
        self.sha.update(mv)
        self.size += mv.nbytes
        self.bar.update(mv.nbytes)
        if self._flusher is not None:
            self._flusher.wrote(self.size)

    def close(self, report: bool = True) -> None:
        self.sha.close(discard=not report)
        if self._flusher is not None:
            flusher, self._flusher = self._flusher, None
            flusher.close(report)


def _write_member(bs: BsFile, index: int, fh: Any, bar: Any, durable: bool,
                  check: str = "sha256") -> int:
    f = bs.container.files[index]
    by_receipts = check == "receipts" and f.kind != "blob"  # a blob's bytes: sha256-checked
    sink = _Sink(fh, bar, durable, f.size, sha256=not by_receipts)
    try:
        if f.kind == "blob":
            sink.write(bs.file_bytes(f))
        else:
            # the header, then decoded pieces in order; with sha256, the tensors' own receipts
            # are not hashed as well: the file's sha256 covers every byte (checked below)
            for part in bs.iter_file_chunks(index, check=by_receipts):
                sink.write(part)
    except BaseException:
        sink.close(report=False)  # the first error is the one to see
        raise
    sink.close()
    if sink.size != f.size or (not by_receipts and sink.sha.hexdigest() != f.receipt.digest):
        if f.kind != "blob":  # name the tensor at fault: decode again, checking each receipt
            for _ in bs.iter_file_chunks(index, check=True):
                pass
        what = "size" if by_receipts else "sha256 receipt"  # the receipts passed one by one
        raise IntegrityError(f"{f.path}: rebuilt file does not match its {what}")
    return sink.size


def decompress(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    threads: int | None = None,
    progress: bool | None = False,
    durable: bool = True,
    base: Any = None,
    check: str = "sha256",
) -> DecompressResult:
    """Restore the original ``.safetensors`` file (or model folder) from a ``.bs`` container.

    ``durable`` (default): the output is fsynced before it is renamed into place (and its
    folder after), so it survives a crash once this returns; the disk's write speed then
    bounds the restore (this VM: ~375 MB/s with ``dd conv=fdatasync``). ``durable=False``
    skips every sync, as ``cp``, ``zstd -d`` and ZipNN do: still written to a temporary file,
    checked against the sha256 receipt and renamed (no reader sees a partial file), but a
    crash or power loss soon after may lose or truncate it.

    ``check``: ``"sha256"`` (default): every restored file's sha256 is rebuilt and must equal
    its receipt (the original file's sha256, e.g. the Hub's LFS oid); ``"receipts"``: instead,
    every tensor's bytes must equal its own xxh3-128 receipt as they are decoded (the header
    bytes come from the container's checksummed index): every byte is still checked, at ~1/14
    of the hashing CPU (sha256 is ~20 % of a MiniLM bf16 restore here), but the file's sha256
    is not recomputed. Checked before anything is read or written.

    ``base``: the base model of a patch (``compress(delta_from=...)``; ``io/delta.py``): its
    tensors are checked against the patch's receipts before anything is written."""
    if threads is not None and threads < 1:
        raise InvalidOptionError(f"threads must be at least 1, not {threads}")
    if check not in CHECKS:
        raise InvalidOptionError(f"unknown check {check!r}; expected one of {', '.join(CHECKS)}")
    t0 = time.perf_counter()
    if not is_remote(src):
        from .source import is_dual_path

        if is_dual_path(src):  # a dual-fidelity .bsd file or folder: its exact members
            from . import dual_folder

            r = dual_folder.decompress(src, dst, force=force, durable=durable, progress=progress,
                                       check=check)
            return DecompressResult(str(src), r["dst"], r["bytes"], r["files"], time.perf_counter() - t0,
                                    durable, check)
    url = str(src) if is_remote(src) else None  # a URL or hf:// path: its output goes in "."
    src = Path(remote_name(url)) if url is not None else Path(src)
    inputs = [] if url is not None else [src]
    with BsFile(url or src, threads=threads, base=base) as bs:
        if "base" in bs.container.meta and bs.base is None:  # a patch: refused before any output
            from .delta import require

            require(None, bs.container)
        folder = bs.container.meta.get("root") == "folder"  # else one file (schema)
        parts = _member_parts(bs.container.files) if folder else []
        out = Path(dst) if dst is not None else default_output(src, bs)
        check_target(out, force, folder=folder, inputs=inputs)  # before a byte is decoded
        mode = bs.source.mode  # the outputs get the .bs's permission bits, as with gzip
        total = bs.original_size
        written = 0
        with prog.bar(total, f"decompress {src.name}", progress) as plain:
            bar = fetch_bar(plain, bs.source)  # a URL: bytes fetched beside bytes decoded
            if folder:
                with atomic_dir(out, force, durable, mode=folder_mode(mode), inputs=inputs) as tmp:
                    for i in range(len(bs.container.files)):
                        with _member_file(tmp, parts[i], mode) as fh:  # durable like a file
                            written += _write_member(bs, i, fh, bar, durable, check)
                            fh.flush()
                            if durable:
                                os.fsync(fh.fileno())
            else:
                with atomic_file(out, force, durable, mode=mode, inputs=inputs) as (_tmp, fh):
                    written += _write_member(bs, 0, fh, bar, durable, check)
    stats = getattr(bs.source, "stats", None)
    return DecompressResult(url or str(src), str(out), written, len(bs.container.files),
                            time.perf_counter() - t0, durable, check,
                            stats.as_dict() if stats is not None else None)
