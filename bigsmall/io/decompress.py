"""``decompress``: ``.bs`` -> the original file or folder, byte for byte.

Tensors are decoded in data order through the pipelined ``BsFile.iter_decoded`` (the pool
decodes the tensors ahead while this thread writes the one that is ready), so memory stays at
about ``AHEAD_BYTES`` + one tensor; each file's sha256 is rebuilt on the way and must equal its
receipt before the output is renamed into place.

Where the time goes besides the kernel, and what this module does about it:

- the bytes go from each decoded tensor's buffer to the file in one ``write`` (the OS's copy
  into its page cache; no Python-side copy). A shared writable ``mmap`` of the output, decoded
  into directly, was measured slower on ext4 (45 MB: 113 ms to fill vs 42 ms to ``write``; its
  page faults and dirty tracking cost more than the copy). Recycling decode buffers between
  tensors of the same size was measured too and dropped: glibc already hands freed blocks back
  to the next allocation, and buffers held aside only made it map fresh pages (more faults);
- durability: ``atomic_file`` fsyncs before the rename; ``_Sink`` asks the OS to start writing
  each few MiB back as soon as it is written (``sync_file_range``), so the disk works while the
  kernel decodes and the final fsync only waits for the tail (MiniLM bf16: 29 -> 3 ms).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import attrs

from ..errors import IntegrityError
from . import progress as prog
from .atomic import atomic_dir, atomic_file, check_target
from .reader import AHEAD_BYTES, BsFile

WRITEBACK_BYTES = 8 << 20  # start the OS's writeback of the output every this many bytes


@attrs.frozen
class DecompressResult:
    src: str
    dst: str
    bytes_written: int
    files: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["mb_per_s"] = self.bytes_written / 1e6 / self.seconds if self.seconds else None
        return d


def default_output(src: Path, bs: BsFile) -> Path:
    """model.bs -> model.safetensors (the stored name) ; folder.bs -> folder"""
    meta = bs.container.meta
    if meta.get("root") == "folder":
        return src.parent / (src.name[:-3] if src.name.endswith(".bs") else src.name + ".out")
    name = str(meta.get("name") or bs.container.files[0].path)
    return src.parent / Path(name).name


@functools.cache
def _sync_file_range() -> Any:
    """libc's ``sync_file_range`` (Linux), or None where there is none.

    Looked up on first use, not at import: ``ctypes.util.find_library`` runs ``ldconfig`` (~30
    ms), which every ``bigsmall decompress`` would otherwise pay at start-up; the symbols of
    the libc already loaded into the process (``CDLL(None)``) are enough."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SYNC_FILE_RANGE_WRITE = 2  # start writeback of dirty pages in the range; do not wait


class _Sink:
    """One output file being restored: writes each part in order, feeds its sha256, moves the
    progress bar and, when the file will be fsynced (``durable``), starts the OS's writeback of
    every ``WRITEBACK_BYTES`` written, so the final fsync has little left to wait for.

    Writes go through the file object (its ``write`` of a large buffer is one system call,
    no copy), which is also what the full-disk tests intercept."""

    def __init__(self, fh: Any, bar: Any, durable: bool):
        self.fh = fh
        self.bar = bar
        self.sha = hashlib.sha256()
        self.size = 0
        self._kicked = 0
        self._sync = _sync_file_range() if durable else None
        self._fd = fh.fileno() if self._sync is not None else -1  # fileno only when it is used

    def write(self, part: Any) -> None:
        mv = memoryview(part)
        self.fh.write(mv)
        self.sha.update(mv)
        self.size += mv.nbytes
        self.bar.update(mv.nbytes)
        if self._sync is not None and self.size - self._kicked >= WRITEBACK_BYTES:
            # only a hint: an error here (e.g. a filesystem without it) changes nothing, the
            # fsync before the rename still makes the file durable and reports write errors
            self._sync(self._fd, self._kicked, self.size - self._kicked, _SYNC_FILE_RANGE_WRITE)
            self._kicked = self.size


def _write_member(bs: BsFile, index: int, fh: Any, bar: Any, durable: bool) -> int:
    f = bs.container.files[index]
    sink = _Sink(fh, bar, durable)
    if f.kind == "blob":
        sink.write(bs.file_bytes(f))
    else:
        sink.write(f.header)
        for _, out in bs.iter_decoded(bs.data_tensors(index), ahead_bytes=AHEAD_BYTES):
            sink.write(out)
    if sink.size != f.size or sink.sha.hexdigest() != f.receipt.digest:
        raise IntegrityError(f"{f.path}: rebuilt file does not match its sha256 receipt")
    return sink.size


def decompress(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    threads: int | None = None,
    progress: bool | None = False,
) -> DecompressResult:
    """Restore the original ``.safetensors`` file (or model folder) from a ``.bs`` container."""
    t0 = time.perf_counter()
    src = Path(src)
    with BsFile(src, threads=threads) as bs:
        out = Path(dst) if dst is not None else default_output(src, bs)
        check_target(out, force)
        total = bs.original_size
        written = 0
        with prog.bar(total, f"decompress {src.name}", progress) as bar:
            if bs.container.meta.get("root") == "folder":
                with atomic_dir(out, force) as tmp:
                    for i, f in enumerate(bs.container.files):
                        target = tmp / f.path
                        if ".." in Path(f.path).parts or Path(f.path).is_absolute():
                            raise IntegrityError(f"refusing unsafe member path {f.path!r}")
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with open(target, "wb") as fh:
                            written += _write_member(bs, i, fh, bar, durable=False)
            else:
                with atomic_file(out, force) as (_tmp, fh):
                    written += _write_member(bs, 0, fh, bar, durable=True)
    return DecompressResult(str(src), str(out), written, len(bs.container.files),
                            time.perf_counter() - t0)
