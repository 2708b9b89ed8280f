"""Whole small tensors decoded ahead on the pool while a caller reads a file in order (issue 17).

Why: ``for n in f.names(): f.read(n)`` decoded one tensor at a time, each split between the
calling thread and one pool thread. On a model of many small tensors (MiniLM: ~100 of
0.1-1.2 MB) every tensor then pays its fixed costs (a pool hand-off, a wait for the slower
half, the receipt hash, Python between them) with the other core idle, and two threads ran
at only x1.06-x1.36 of one. Here the next few small tensors after the one being read are each
decoded *whole* by one pool thread, into a fresh array, and checked against their receipts
there: the pool's threads work on different tensors at once, and a read of a tensor that is
ready only takes it.

Checks and errors are those of a plain read: a tensor whose ahead decode failed (corrupt
bytes, a receipt that does not match, no memory) is simply decoded again by its own read,
which raises the error then. A read out of order drops what was queued (bounded:
``WINDOW_TENSORS`` tensors of at most ``SMALL_BYTES`` each, ``WINDOW_BYTES`` in all).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

from ..core.types import TensorEntry

SMALL_BYTES = 4 << 20  # a larger tensor is split between threads by its own read instead
WINDOW_BYTES = 16 << 20  # decoded bytes queued ahead at most
WINDOW_TENSORS = 4  # tensors queued ahead at most (2 pool threads busy, 2 more ready)
WINDOW_RANK = (1 << 62) - 1  # after a read's own chunks, before a parse-ahead


class ReadWindow:
    """The queue of whole tensors decoded ahead: ``(index, entry, future of the array)``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: deque[tuple[int, TensorEntry, Future[Any]]] = deque()

    def take(self, index: int, coded: bool) -> Future[Any] | None:
        """The future of tensor ``index`` if it was queued (dropping those queued before it);
        a coded tensor that was not queued is a read out of order: everything queued is
        dropped. Uncoded ones (constants, empty tensors) leave the queue as it is."""
        with self.lock:
            if any(i == index for i, _e, _f in self.items):
                while self.items:
                    i, _e, fut = self.items.popleft()
                    if i == index:
                        return fut
                    fut.cancel()
            elif coded:
                self._clear()
            return None

    def fill(self, index: int, following: list[tuple[int, TensorEntry, bool]],
             submit: Callable[[TensorEntry], Future[Any]]) -> TensorEntry | None:
        """Queue the small tensors of ``following`` (``(index, entry, small)``, in order after
        tensor ``index``) not queued yet, up to the window's bounds; the first large one met
        is returned (its read splits it between threads; the caller parses it ahead)."""
        with self.lock:
            last = self.items[-1][0] if self.items else index
            size = sum(e.spec.nbytes for _i, e, _f in self.items)
            for i, e, small in following:
                if i <= last:
                    continue
                if not small:
                    return e
                if len(self.items) >= WINDOW_TENSORS or size + e.spec.nbytes > WINDOW_BYTES:
                    return None
                self.items.append((i, e, submit(e)))
                size += e.spec.nbytes
        return None

    def clear(self) -> None:
        with self.lock:
            self._clear()

    def _clear(self) -> None:
        while self.items:
            self.items.popleft()[2].cancel()  # a task already running finishes into its own array


def decode_whole(entry: TensorEntry, src: TensorEntry, blob: Any, plan: Callable[..., Any],
                 alloc: Callable[[TensorEntry], Any], check: Callable[[TensorEntry, np.ndarray], None]) -> Any:
    """One tensor decoded by one thread into a fresh array and checked against its receipt."""
    job = plan(src.spec, src.codec, src.params, blob, src.head_len, src.chunk_lens)
    out = alloc(entry)
    job.run_all(out)
    check(entry, out)
    return out
