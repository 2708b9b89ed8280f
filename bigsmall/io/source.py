"""Byte sources: read exact ranges of a container, wherever it lives.

Why a tiny interface: compress, decompress, open/read, verify and (later) remote streaming all
need just "give me bytes [offset, offset+n)"; the decode path does not care where they come from.
"""

from __future__ import annotations

import mmap
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BigsmallIOError, FormatError, IntegrityError, TruncatedError

if TYPE_CHECKING:
    from ..core.types import Container


def not_regular(path: Path, st: os.stat_result | None = None) -> None:
    """Raise the error for an input that exists but is not a regular file (a folder, FIFO,
    socket or device: a FIFO or ``/dev/zero`` would block or never end); return if it is one
    (or cannot be looked at)."""
    if st is None:
        try:
            st = os.stat(path)
        except OSError:
            return
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise BigsmallIOError(f"{path} is a folder, not a file")
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special")
    raise BigsmallIOError(f"{path} is not a regular file ({kind})")


#: how inputs are opened: O_NONBLOCK, because opening a FIFO for reading otherwise waits for a
#: writer, forever
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)


def is_dual_path(path: Any) -> bool:
    """Whether ``path`` is a local dual-fidelity ``.bsd`` (by its magic bytes, not its name).

    Here, not in ``io/dual.py``: every ``decompress`` and ``load`` asks, and importing the
    ``.bsd`` codec (its numba kernels) just to read 8 bytes cost every command ~20 ms of start-up.
    Only a regular file is read, opened without blocking: a FIFO, a folder or a missing path is
    "no", and the normal reader then gives its own clear error; a folder is "yes" when it is a
    ``.bsd`` folder (``bigsmall dual FOLDER``: its manifest ``bigsmall-dual.json`` is there)."""
    from ..container.dual_format import is_dual

    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):  # a .bsd folder (io/dual_folder.py): it holds its manifest
            return os.path.isfile(os.path.join(path, "bigsmall-dual.json"))
        if not stat.S_ISREG(mode):
            return False
        fd = os.open(path, _OPEN_FLAGS)
    except (OSError, TypeError, ValueError):
        return False
    try:
        return is_dual(os.read(fd, 8))
    except OSError:
        return False
    finally:
        os.close(fd)


class FileSource:
    """Positional reads (``os.pread``): thread-safe, no shared file position.

    ``view`` gives zero-copy access to a range through a read-only memory map, made on first
    use: the decode path reads every coded byte exactly once, so copying blobs out of the page
    cache first (``pread``) was pure overhead (MiniLM fp32: 62 ms of the caller thread's time
    for a 74 MB container, against a few ms of mapping faults). ``read`` stays a copy for the
    small pieces (header, index, heads) that are parsed as ``bytes``."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, _OPEN_FLAGS)
        except FileNotFoundError:
            raise BigsmallIOError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise BigsmallIOError(f"{self.path} is a folder, not a file") from None
        except OSError as exc:
            not_regular(self.path)  # a socket cannot be opened at all: say what it is
            raise BigsmallIOError(f"{self.path}: cannot open ({exc.strerror})") from None
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(self._fd)
            not_regular(self.path, st)
        self.size = st.st_size
        self.mode = stat.S_IMODE(st.st_mode)  # its permission bits, for the outputs made from it
        self._map: mmap.mmap | None = None
        self._map_lock = threading.Lock()

    def view(self, offset: int, length: int) -> memoryview:
        """Bytes ``[offset, offset + length)`` without a copy (a view of the file's memory map).

        The view stays valid after ``close`` (the map is released once no view refers to it).
        Like every memory map, it assumes the file is not truncated while it is read; bigsmall
        itself replaces files by rename, which never changes an open file's bytes."""
        if length == 0:
            return memoryview(b"")
        if offset < 0 or offset + length > self.size:
            raise TruncatedError(
                f"{self.path}: truncated: needs bytes {offset}..{offset + length}, file has {self.size}"
            )
        m = self._map
        if m is None:
            with self._map_lock:
                if self._map is None:
                    if self._fd < 0:
                        raise BigsmallIOError(f"{self.path}: read after close")
                    try:
                        self._map = mmap.mmap(self._fd, self.size, access=mmap.ACCESS_READ)
                    except (OSError, ValueError) as exc:  # e.g. a pipe or a special file
                        raise BigsmallIOError(f"{self.path}: cannot map ({exc})") from None
                m = self._map
        return memoryview(m)[offset : offset + length]

    def release(self, offset: int, length: int) -> None:
        """Drop this process's mapping of the whole pages inside ``[offset, offset + length)``.

        Why: pages of a file mapping count in the process's resident set once touched, so
        decoding a container through ``view`` would grow RSS by the container's size, layer
        after layer (measured on the streamed MiniLM fp32: +117 -> +191 MB). The page cache
        keeps the pages; a later ``view`` of the range faults them back in, with the same
        bytes (a shared read-only mapping), so it is safe while other views exist."""
        m = self._map
        advice = getattr(mmap, "MADV_DONTNEED", None)
        if m is None or advice is None or length <= 0:
            return
        page = mmap.PAGESIZE
        lo = -(-offset // page) * page
        hi = (offset + length) // page * page
        if hi > lo:
            try:
                m.madvise(advice, lo, hi - lo)
            except (OSError, ValueError):  # only a memory hint: never fail a read over it
                pass

    def read(self, offset: int, length: int) -> bytes:
        if length == 0:
            return b""
        if offset < 0 or offset + length > self.size:
            raise TruncatedError(
                f"{self.path}: truncated: needs bytes {offset}..{offset + length}, file has {self.size}"
            )
        parts = []
        got = 0
        while got < length:
            try:
                chunk = os.pread(self._fd, min(length - got, 1 << 30), offset + got)
            except OSError as exc:
                raise BigsmallIOError(f"{self.path}: read failed at offset {offset + got} ({exc.strerror})") from None
            if not chunk:
                raise TruncatedError(f"{self.path}: truncated at offset {offset + got}")
            parts.append(chunk)
            got += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, offset: int, buf: memoryview) -> None:
        """Fill ``buf`` from ``offset`` (no intermediate bytes object)."""
        n = len(buf)
        if offset < 0 or offset + n > self.size:
            raise TruncatedError(f"{self.path}: truncated: needs bytes {offset}..{offset + n}, file has {self.size}")
        done = 0
        while done < n:
            try:
                got = os.preadv(self._fd, [buf[done:]], offset + done)
            except OSError as exc:
                raise BigsmallIOError(f"{self.path}: read failed at offset {offset + done} ({exc.strerror})") from None
            if got <= 0:
                raise TruncatedError(f"{self.path}: truncated at offset {offset + done}")
            done += got

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # views still in use: the map goes when the last one does
                pass
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_container(source: FileSource) -> tuple[dict[str, Any], Container]:
    """The fixed header and the checked index of the container in ``source``: two reads.

    Kept apart from ``reader.BsFile`` (numpy, codecs) so that commands that only describe a
    container (``info``, ``stat``) start without importing numpy or numba.
    """
    from ..container import format as fmt

    try:
        header = fmt.parse_header(source.read(0, min(fmt.HEADER_SIZE, source.size)), source.size)
        stored = source.read(int(header["index_offset"]), int(header["index_length"]))
        return header, fmt.decode_index(stored, header)
    except (FormatError, IntegrityError) as exc:
        raise named(exc, source.path) from None


def named(exc: BaseException, path: Path) -> BaseException:
    """``exc`` with its message prefixed by ``path`` (same type, same traceback) unless it
    names the path already: the header and index parsers see bytes, not files, and a message
    like "bad magic" does not say which of the files on a command line is bad."""
    msg = str(exc)
    if str(path) in msg:
        return exc
    try:
        new = type(exc)(f"{path}: {msg}")
    except Exception:  # noqa: BLE001 - a constructor with other arguments: keep the original
        return exc
    return new.with_traceback(exc.__traceback__)
