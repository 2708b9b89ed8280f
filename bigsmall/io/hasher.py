"""A file's sha256, computed on a thread of its own while the file is written.

Why: a restore rebuilds each file's sha256 and checks it against the receipt before the
output is renamed into place. Hashed on the thread that writes, sha256 (~1.8 GB/s with the
CPU's SHA instructions) was a third of a MiniLM bf16 restore's wall time (35 of 104 ms),
spent while the pool's decoders waited for that thread to take their next pieces. ``hashlib``
releases the GIL while it hashes a large buffer, so a second thread hashes the pieces already
written while the writer moves on; the digest is the same, only where it is computed moves
(``benchmarks/bench_restore_io.py``).

The pieces handed over are views of decoded buffers: holding them keeps those buffers alive,
so at most ``LIMIT_BYTES`` may wait to be hashed (``update`` blocks beyond it) and the
restore's memory bound holds. Small files are hashed inline: a thread costs more than it saves
below ``THREAD_MIN_BYTES``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from typing import Any

LIMIT_BYTES = 64 << 20  # pieces waiting to be hashed, at most
THREAD_MIN_BYTES = 8 << 20  # smaller files are hashed on the writing thread


class Sha256:
    """``update`` / ``hexdigest`` like ``hashlib.sha256``; with ``threaded`` the updates run in
    order on a background thread. ``close`` stops the thread without a digest (an error path);
    ``hexdigest`` waits for every piece handed over."""

    def __init__(self, threaded: bool):
        self._sha = hashlib.sha256()
        self._thread: threading.Thread | None = None
        if threaded:
            self._cv = threading.Condition()
            self._queue: deque[Any] = deque()
            self._pending = 0
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="bigsmall-sha256", daemon=True)
            self._thread.start()

    @classmethod
    def for_size(cls, size: int) -> Sha256:
        return cls(size >= THREAD_MIN_BYTES)

    def update(self, piece: memoryview) -> None:
        if self._thread is None:
            self._sha.update(piece)
            return
        with self._cv:
            while self._pending > LIMIT_BYTES and self._queue:
                self._cv.wait()
            self._queue.append(piece)
            self._pending += piece.nbytes
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stop:
                    self._cv.wait()
                if not self._queue:
                    return
                piece = self._queue.popleft()
            self._sha.update(piece)  # outside the lock; hashlib releases the GIL
            with self._cv:
                self._pending -= piece.nbytes
                self._cv.notify_all()

    def close(self, discard: bool = False) -> None:
        """Stop the thread, after hashing the pieces already handed over (or dropping them:
        ``discard``, an error path); idempotent."""
        if self._thread is not None:
            with self._cv:
                self._stop = True
                if discard:
                    self._queue.clear()
                self._cv.notify_all()
            self._thread.join()
            self._thread = None

    def hexdigest(self) -> str:
        self.close()
        return self._sha.hexdigest()


class NoHash:
    """``Sha256``'s interface, hashing nothing: a restore with ``check="receipts"``, where every
    tensor's bytes are checked against its own xxh3-128 receipt instead (and the header comes
    from the container's checksummed index), so that the sha256's CPU (~25 ms per 45 MB here,
    ``hashlib`` at ~1.8 GB/s) is not spent. ``hexdigest`` is None: nothing to compare."""

    def update(self, piece: memoryview) -> None:
        pass

    def close(self, discard: bool = False) -> None:
        pass

    def hexdigest(self) -> None:
        return None
