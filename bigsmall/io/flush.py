"""Background ``fdatasync`` of an output while it is still being written.

Why: an output is fsynced before its rename (``atomic_file``), and on this VM's virtio disk a
flush costs in proportion to the data not yet flushed (~650 MB/s). Syncing only at the end
leaves the whole file to that last wait; syncing every ``FLUSH_BYTES`` in a thread of its own
lets the disk flush the first megabytes while the pool still decodes (restore) or codes
(compress) the rest, so the final fsync only waits for the tail. Measured on restores:
``sync_file_range`` (start writeback, no flush) left 100 ms of a 90 MB restore to the final
fsync; syncing in the background cut that restore 405-468 -> 305-340 ms (MiniLM fp32), and
4 MiB steps beat 16 MiB ones (``benchmarks/bench_restore_io.py --flush-mib 2,4,16``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

FLUSH_BYTES = 4 << 20  # a background fdatasync of the output every this many bytes written


class Flusher:
    """A thread that makes an output durable while it is still being written.

    ``wrote(size)`` after each write: every ``FLUSH_BYTES`` it asks for an ``fdatasync`` of
    everything written so far; the thread runs them one after the other (a request that
    arrives during a sync is served by the next one). ``close`` must be called before the file
    is closed (the thread holds its descriptor).

    An error of a background sync is kept and raised by ``close``: the kernel reports a write
    error once per open file, so the final fsync would not see it again."""

    def __init__(self, fh: Any):
        self._fh = fh
        self._fd = fh.fileno()
        self._cv = threading.Condition()
        self._want = self._done = 0
        self._kicked = 0
        self._stop = False
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="bigsmall-flush", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, fh: Any, durable: bool = True) -> Flusher | None:
        """A flusher for ``fh``, or None where there is nothing to do (not ``durable``, or no
        ``fdatasync`` on this platform)."""
        return cls(fh) if durable and hasattr(os, "fdatasync") else None

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._want <= self._done and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                want = self._want
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                with self._cv:
                    self.error = self.error or exc
                    self._cv.notify_all()
                    return
            with self._cv:
                self._done = want
                self._cv.notify_all()  # whoever waits for the sync (tests) sees it done

    def wrote(self, size: int) -> None:
        """``size`` bytes of the output are written: ask for a sync each ``FLUSH_BYTES``."""
        if size - self._kicked >= FLUSH_BYTES:
            self._fh.flush()  # bytes still buffered in the file object reach the OS first
            with self._cv:
                self._want = size
                self._cv.notify()
            self._kicked = size

    def close(self, report: bool = True) -> None:
        """Stop (after the sync in progress, if any); raise the first error of a sync unless
        not ``report`` (on the way out of another error, which is the one to see)."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join()
        if self.error is not None and report:
            raise self.error


@contextlib.contextmanager
def flushing(fh: Any, durable: bool = True) -> Iterator[Flusher | None]:
    """``Flusher.start(fh, durable)`` for the ``with`` block: closed at its end, where a
    background sync's error is raised; on the way out of another error it is only stopped."""
    f = Flusher.start(fh, durable)
    try:
        yield f
    except BaseException:
        if f is not None:
            f.close(report=False)
        raise
    if f is not None:
        f.close()
