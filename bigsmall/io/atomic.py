"""Atomic outputs: write to a temporary sibling, then rename into place.

Why: an interrupted or failed run must leave either the old state or the complete new file,
never a partial one, and must never clobber an existing output unless asked to.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import BigsmallIOError, OutputExistsError


def check_target(dst: Path, force: bool) -> None:
    if (dst.exists() or dst.is_symlink()) and not force:
        raise OutputExistsError(f"{dst} exists; pass --force (force=True) to overwrite it")


def _is_real_dir(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink()


def _place(tmp: Path, dst: Path, force: bool) -> None:
    if force:
        if (dst.exists() or dst.is_symlink()) and (tmp.is_dir() or _is_real_dir(dst)):
            # a rename cannot put a folder over a file, or anything over a non-empty folder:
            # move the old output aside, put the new one in place, then delete the old one
            old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
            os.replace(dst, old)
            try:
                os.replace(tmp, dst)
            except BaseException:
                os.replace(old, dst)
                raise
            if _is_real_dir(old):
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
            return
        os.replace(tmp, dst)
        return
    if tmp.is_dir():
        if dst.exists():
            raise OutputExistsError(f"{dst} appeared while writing; nothing was overwritten")
        os.replace(tmp, dst)
        return
    try:
        os.link(tmp, dst)  # fails if dst exists: no-clobber even against a racing writer
    except FileExistsError:
        raise OutputExistsError(f"{dst} appeared while writing; nothing was overwritten") from None
    except OSError:
        if dst.exists():
            raise OutputExistsError(f"{dst} exists; nothing was overwritten") from None
        os.replace(tmp, dst)
        return
    os.unlink(tmp)


def sync_dir(path: Path) -> None:
    """fsync a folder, so the names created, renamed or removed in it survive a crash.

    Best effort: some platforms and filesystems cannot open or sync a folder (Windows, some
    network mounts); the data itself was synced already, so that only weakens the rename's
    durability and is not an error."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it where possible (os.umask is racy in threads)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _output_parent(dst: Path, force: bool) -> Path:
    """Refuse an existing output (unless ``force``) and a missing folder; return the folder."""
    check_target(dst, force)
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise BigsmallIOError(f"output folder {parent} does not exist")
    return parent


@contextlib.contextmanager
def atomic_file(dst: Path, force: bool = False,
                durable: bool = True) -> Iterator[tuple[Path, object]]:
    """Yield (temp path, binary file object); on success fsync (unless not ``durable``) and
    move to ``dst``. Without ``durable`` the move is still atomic for readers (no one sees a
    partial file), but a crash or power loss soon after may lose or truncate the output."""
    dst = Path(dst)
    parent = _output_parent(dst, force)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise BigsmallIOError(f"cannot write in {parent}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        with os.fdopen(fd, "w+b") as fh:
            yield tmp, fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        _place(tmp, dst, force)
        if durable:
            sync_dir(dst.parent)  # the rename itself
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, (OutputExistsError, BigsmallIOError)):
            raise BigsmallIOError(f"writing {dst} failed: {exc.strerror or exc}; nothing was left behind") from exc
        raise


@contextlib.contextmanager
def atomic_dir(dst: Path, force: bool = False, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary folder; on success make its folders durable and rename it to ``dst``.

    The caller fsyncs the files it writes (``decompress`` does); this syncs every folder of
    the tree (their entries), then the parent after the rename (none of it without
    ``durable``: see ``atomic_file``)."""
    dst = Path(dst)
    parent = _output_parent(dst, force)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise BigsmallIOError(f"cannot write in {parent}: {exc.strerror or exc}") from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs get the usual mode
        yield tmp
        if durable:
            for sub, _dirs, _files in os.walk(tmp, topdown=False):
                sync_dir(Path(sub))
        _place(tmp, dst, force)
        if durable:
            sync_dir(dst.parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, (OutputExistsError, BigsmallIOError)):
            raise BigsmallIOError(f"writing {dst} failed: {exc.strerror or exc}; nothing was left behind") from exc
        raise
