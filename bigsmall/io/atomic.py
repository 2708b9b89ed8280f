"""Atomic outputs: write to a temporary sibling, then rename into place.

Why: an interrupted or failed run must leave either the old state or the complete new file,
never a partial one, and must never clobber an existing output unless asked to.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import BigsmallIOError, InvalidOptionError, OutputExistsError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, so stale temporaries are kept
    fcntl = None  # type: ignore[assignment]

#: an unlocked temporary whose writer's pid is still alive is only swept once this old: a live
#: writer locks its temporary microseconds after creating it, so only a reused pid gets here
STALE_AGE_S = 60.0
#: ``compress --resume``'s journal beside its temporary: ``<temporary>.journal`` (``io/resume.py``)
JOURNAL_SUFFIX = ".journal"


def _holds(folder: str, path: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _is_input(dst: Path, st: os.stat_result, src: Path) -> bool:
    """Would replacing ``dst`` (whose ``lstat`` is ``st``) destroy the input ``src``?

    A symlink is replaced itself, never what it points to, so it is harmless; a folder that
    is or holds the input, or a file that is the input (or a hard link to it), is not."""
    if stat.S_ISLNK(st.st_mode):
        return False
    try:
        if stat.S_ISDIR(st.st_mode):
            return _holds(os.path.realpath(dst), os.path.realpath(src))
        return os.path.samefile(dst, src)
    except OSError:
        return False


def check_target(dst: Path, force: bool, *, folder: bool = False,
                 inputs: Sequence[Path] = ()) -> None:
    """Refuse an output that must not be written: one that names no file (``.``, ``..``, a
    bare folder), one that is the input or a folder holding it (even with ``force``: a
    crafted stored name once made ``--force`` replace the folder of the ``.bs`` with the
    restored file), a folder to be replaced by a file, or a device, FIFO or socket (gzip and
    zstd refuse those too); and an existing output unless ``force``. ``folder``: the output
    is a folder (a folder may replace a folder or a file, a file only a file)."""
    dst = Path(dst)
    if dst.name in ("", ".", "..") or "\0" in str(dst):
        raise InvalidOptionError(f"output path {str(dst)!r} does not name a file or folder to write")
    try:
        st = os.lstat(dst)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BigsmallIOError(f"{dst}: cannot check the output ({exc.strerror or exc})") from None
    for src in inputs:
        if _is_input(dst, st, Path(src)):
            what = "is" if stat.S_ISREG(st.st_mode) or Path(src) == dst else "holds"
            raise OutputExistsError(f"{dst} {what} the input {src}; refusing to replace it, even with --force")
    if not force:
        raise OutputExistsError(f"{dst} exists; pass --force (force=True) to overwrite it")
    if stat.S_ISDIR(st.st_mode) and not folder:
        raise OutputExistsError(f"{dst} is a folder; refusing to replace a folder with a file, even with --force")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise OutputExistsError(f"{dst} is not a regular file (a device, FIFO or socket); "
                                f"refusing to replace it, even with --force")


# ---------------------------------------------------------------- stale temporaries

def _temp_prefix(dst: Path) -> str:
    """``.NAME.PID.``: the pid tells a sweeper whether the writer may still run (the name is
    cut so that prefix + random part + suffix stay within the usual 255-byte name limit)."""
    return f".{dst.name[:200]}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user
        return True
    return True


def _lock(fd: int) -> None:
    """Hold an exclusive ``flock`` on a temporary for as long as it is being written: a
    sweeper that can take the lock knows no live writer holds it (the kernel drops the lock
    of a killed process)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):  # no flock on this filesystem: pid and age decide
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def is_locked(path: Path) -> bool:
    """Does a live writer hold ``path``'s ``flock``? (False where flock does not exist.)"""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also drops the lock just taken
    return False


def _remove(path: Path, is_dir: bool) -> None:
    if is_dir:
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _sweep_temp(path: Path, pid: int | None) -> None:
    """Remove ``path``, a temporary of an earlier run, if no live writer holds it: it is
    unlocked and its writer's pid is gone (or, for a reused pid or a name from before pids
    were recorded, it is older than ``STALE_AGE_S``)."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    is_dir = stat.S_ISDIR(st.st_mode)
    if not (is_dir or stat.S_ISREG(st.st_mode)) or fcntl is None:
        return
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK
    try:
        fd = os.open(path, flags | (getattr(os, "O_DIRECTORY", 0) if is_dir else 0))
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a live writer (or no flock here: then keep it)
            return
        young = time.time() - st.st_mtime < STALE_AGE_S
        if young and (pid is None or _pid_alive(pid)):
            return
        _remove(path, is_dir)
    finally:
        os.close(fd)


def sweep_stale(dst: Path, keep_resumable: bool = False) -> None:
    """Remove what killed runs (``kill -9``, power loss) left beside ``dst``: temporaries
    ``.NAME.PID.XXXXXXXX.tmp`` (and ``.NAME.XXXXXXXX.tmp`` from older versions) that no live
    writer holds, and ``.NAME.old-PID`` (an old output moved aside by a ``force`` run whose
    pid is gone: deleted if ``dst`` is in place, else put back as ``dst``).

    Why here: nothing else ever removes them, and the next write to the same target is the
    one run that knows their names. Only these exact patterns are touched.

    ``keep_resumable`` (``compress --resume``): a temporary with a journal beside it
    (``<temporary>.journal``) is kept for the run to adopt; otherwise its journal goes with
    it, and a journal whose temporary is gone is removed."""
    dst = Path(dst)
    parent = dst.parent if str(dst.parent) else Path(".")
    try:
        names = os.listdir(parent)
    except OSError:
        return
    temp_re = re.compile(re.escape(f".{dst.name[:200]}.") + r"(?:(\d+)\.)?[a-z0-9_]{8}\.tmp\Z")
    old_re = re.compile(re.escape(f".{dst.name}.old-") + r"(\d+)\Z")
    journaled = {n[:-len(JOURNAL_SUFFIX)] for n in names if n.endswith(JOURNAL_SUFFIX)}
    for name in names:
        m = temp_re.match(name)
        if m:
            if keep_resumable and name in journaled:
                continue
            _sweep_temp(parent / name, int(m.group(1)) if m.group(1) else None)
            if name in journaled and not os.path.lexists(parent / name):
                _remove(parent / (name + JOURNAL_SUFFIX), False)  # its journal goes with it
            continue
        if name.endswith(JOURNAL_SUFFIX) and temp_re.match(name[:-len(JOURNAL_SUFFIX)]):
            if not (parent / name[:-len(JOURNAL_SUFFIX)]).exists():
                _remove(parent / name, False)
            continue
        m = old_re.match(name)
        if m and not _pid_alive(int(m.group(1))):
            old = parent / name
            if dst.exists() or dst.is_symlink():
                _remove(old, _is_real_dir(old))
            else:
                with contextlib.suppress(OSError):
                    os.replace(old, dst)


def _is_real_dir(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink()


def _place(tmp: Path, dst: Path, force: bool) -> None:
    if force:
        if _is_real_dir(dst) and not tmp.is_dir():  # appeared since ``check_target``
            raise OutputExistsError(f"{dst} is a folder; refusing to replace a folder with a file, even with --force")
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


def _output_parent(dst: Path, force: bool, folder: bool, inputs: Sequence[Path],
                   keep_resumable: bool = False) -> Path:
    """Sweep what killed runs left for ``dst``; refuse what ``check_target`` refuses and a
    missing folder; return the folder."""
    sweep_stale(dst, keep_resumable)
    check_target(dst, force, folder=folder, inputs=inputs)
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise BigsmallIOError(f"output folder {parent} does not exist")
    return parent


@contextlib.contextmanager
def atomic_file(dst: Path, force: bool = False, durable: bool = True, *,
                mode: int | None = None, inputs: Sequence[Path] = (), adopt: Path | None = None,
                resumable: bool = False) -> Iterator[tuple[Path, object]]:
    """Yield (temp path, binary file object); on success fsync (unless not ``durable``) and
    move to ``dst``. Without ``durable`` the move is still atomic for readers (no one sees a
    partial file), but a crash or power loss soon after may lose or truncate the output.

    ``mode``: the output's permission bits (gzip and zstd give an output its input's mode;
    default: 0666 less the umask). ``inputs``: paths that ``dst`` must never replace.
    The temporary stays ``flock``-ed until it is renamed, so that a later run's
    ``sweep_stale`` tells it from one left by a killed run.

    ``resumable`` (``compress --resume``): journaled temporaries are not swept, and an
    interruption (``KeyboardInterrupt``, ``SystemExit``: not an error) leaves the temporary
    for a later run; ``adopt``: continue in that temporary (kept as it is) instead of a new one."""
    dst = Path(dst)
    parent = _output_parent(dst, force, False, inputs, resumable)
    try:
        if adopt is not None:
            fd, name = os.open(adopt, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)), str(adopt)
        else:
            fd, name = tempfile.mkstemp(prefix=_temp_prefix(dst), suffix=".tmp", dir=parent)
    except OSError as exc:
        raise BigsmallIOError(f"cannot write in {parent}: {exc.strerror or exc}") from None
    tmp = Path(name)
    lock_fd = os.dup(fd)  # same open file: the lock lasts until this copy is closed too
    if adopt is not None and fcntl is not None:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            os.close(lock_fd)
            raise BigsmallIOError(f"{adopt} is being written by another run") from None
    else:
        _lock(lock_fd)
    try:
        # mkstemp makes 0600; outputs get the input's mode, else the usual one
        os.chmod(tmp, (mode & 0o777) if mode is not None else 0o666 & ~_umask())
        with os.fdopen(fd, "w+b") as fh:
            yield tmp, fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        _place(tmp, dst, force)
        if durable:
            sync_dir(dst.parent)  # the rename itself
    except BaseException as exc:
        if not (resumable and not isinstance(exc, Exception)):
            with contextlib.suppress(OSError):
                tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, (OutputExistsError, BigsmallIOError)):
            raise BigsmallIOError(f"writing {dst} failed: {exc.strerror or exc}; nothing was left behind") from exc
        raise
    finally:
        os.close(lock_fd)


@contextlib.contextmanager
def atomic_dir(dst: Path, force: bool = False, durable: bool = True, *,
               mode: int | None = None, inputs: Sequence[Path] = ()) -> Iterator[Path]:
    """Yield a temporary folder; on success make its folders durable and rename it to ``dst``.

    The caller fsyncs the files it writes (``decompress`` does); this syncs every folder of
    the tree (their entries), then the parent after the rename (none of it without
    ``durable``: see ``atomic_file``). ``mode``, ``inputs`` and the lock: as ``atomic_file``
    (``mode`` is the folder's own: 0777 less the umask by default)."""
    dst = Path(dst)
    parent = _output_parent(dst, force, True, inputs)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(dst), suffix=".tmp", dir=parent))
    except OSError as exc:
        raise BigsmallIOError(f"cannot write in {parent}: {exc.strerror or exc}") from None
    try:
        lock_fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BigsmallIOError(f"cannot write in {parent}: {exc.strerror or exc}") from None
    _lock(lock_fd)
    try:
        # mkdtemp makes 0700; outputs get the mode asked for, else the usual one
        os.chmod(tmp, (mode & 0o777) if mode is not None else 0o777 & ~_umask())
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
    finally:
        os.close(lock_fd)
