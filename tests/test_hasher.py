"""``io.hasher.Sha256``: the restore's sha256 on a thread of its own gives hashlib's digest,
keeps at most ``LIMIT_BYTES`` of pieces waiting, and drops them on an error path."""

from __future__ import annotations

import hashlib
import os

import pytest

from bigsmall.io import hasher


@pytest.mark.parametrize("threaded", [False, True])
def test_digest_is_hashlibs(threaded: bool) -> None:
    pieces = [os.urandom(n) for n in (0, 1, 4095, 1 << 20, 3, 2 << 20)]
    h = hasher.Sha256(threaded)
    for p in pieces:
        h.update(memoryview(p))
    assert h.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert h.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()  # again: same


def test_for_size_threads_only_large_files() -> None:
    small, large = hasher.Sha256.for_size(1000), hasher.Sha256.for_size(hasher.THREAD_MIN_BYTES)
    try:
        assert small._thread is None and large._thread is not None
    finally:
        large.close()


def test_waiting_bytes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hasher, "LIMIT_BYTES", 1 << 16)
    h = hasher.Sha256(True)
    seen = []
    real = h._sha

    class Slow:  # records what is waiting each time the thread hashes a piece
        def update(self, piece: memoryview) -> None:
            with h._cv:
                seen.append(h._pending)
            real.update(piece)

        def hexdigest(self) -> str:
            return real.hexdigest()

    h._sha = Slow()  # type: ignore[assignment]
    data = [os.urandom(1 << 14) for _ in range(64)]
    for p in data:
        h.update(memoryview(p))
    assert h.hexdigest() == hashlib.sha256(b"".join(data)).hexdigest()
    assert seen and max(seen) <= (1 << 16) + (1 << 14)  # the limit, plus the piece that crossed it


def test_close_discard_stops_without_hashing_the_rest() -> None:
    h = hasher.Sha256(True)
    h.update(memoryview(b"x" * 100))
    h.close(discard=True)
    h.close()  # idempotent
    assert h._thread is None
