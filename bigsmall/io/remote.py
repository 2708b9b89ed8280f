"""Read a ``.bs`` container over HTTP(S) with range requests: the remote twin of ``FileSource``.

``RemoteSource`` has ``FileSource``'s interface (``size``, ``read``, ``view``, ``release``,
``close``, ``path``, ``mode``), so ``BsFile`` decodes a remote container on exactly the local
decode path (every tensor still checked against its receipt); only where bytes come from differs.

Request pattern:

- the first round trip is two requests sent together: the first ``prefix_bytes`` (64 KiB: the
  fixed header, the file's size from ``Content-Range``, its validator ``ETag``) and the last
  ``tail_bytes`` (256 KiB, a suffix range: the index, which ends the file), so the header and
  the index cost one round trip; the index is a second one only when it is larger than the
  tail (or the tail's ETag differs). Meanwhile the other connections are opened (their TCP
  and TLS handshakes off the blob requests' path). A blob's part the prefix or the tail
  brought is not fetched again;
- ``BsFile``'s decode pipeline announces the blob ranges it will read, in order (``plan``);
  they are fetched ahead by ``connections`` threads: neighbouring ranges coalesced into one
  request, a large one split into ``request_bytes`` pieces fetched in parallel, and no more
  than ``window_bytes`` of fetched-but-unreleased bytes held (memory stays flat). A range read
  that was not announced (``BsFile.read`` of one tensor) jumps the queue: a tensor costs only its
  own blob.

Pinning (``If-Range``, ETag and size compared on every answer), retries that resume, and the
typed errors live in the request layer, ``http_range.RangeClient``.

Why threads and blocking connections rather than anyio + an async client: the consumer
(``BsFile``) is synchronous and decodes on a thread pool; a source's ``view`` must block until
its bytes are in. An event loop would need its own thread and a portal for every call, for
nothing gained at a handful of connections; a thread per connection blocks in the socket with
the GIL released, exactly like the decode threads block in compiled code. Each body is read
straight from the socket into the buffer of the blob it belongs to (``http.client``'s
``readinto``: one copy, the kernel's), which is what brought an uncapped loopback load to the
speed of a local one (httpx copied every byte 3-4 times, with Python work per 64 KiB).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import RemoteError, TruncatedError
from .http_range import FetchStats, RangeClient, RemoteOptions

SCHEMES = ("http://", "https://", "hf://")


def is_remote(path: object) -> bool:
    """A URL or ``hf://`` path (a str), not a local file."""
    return isinstance(path, str) and path.startswith(SCHEMES)


def open_source(path: Any, options: RemoteOptions | None = None) -> Any:
    """The byte source for ``path``: a ``FileSource`` for a local file (or an ``hf://`` file in
    the Hub cache), a ``RemoteSource`` for a URL (``hub.py`` resolves ``hf://``)."""
    if isinstance(path, str) and path.startswith("hf://"):
        from .hub import open_hf

        return open_hf(path, options)
    if is_remote(path):
        return RemoteSource(path, options=options)
    from .source import FileSource

    return FileSource(path)


def remote_name(url: str) -> str:
    """The file name a URL or ``hf://`` path ends in (``.../model.bs?x=1`` -> ``model.bs``)."""
    tail = url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return tail or "download"


class _Slot:
    """One announced (or asked-for) byte range and the buffer its bytes land in."""

    __slots__ = ("offset", "length", "uses", "announced", "buf", "pending", "got", "done", "error",
                 "waiting", "drop", "jobs", "streams")

    def __init__(self, offset: int, length: int):
        self.offset, self.length = offset, length
        self.uses = 0  # views still to come (announced) or not yet released
        self.announced = 0  # announced views (``plan``) not yet made: a view takes one of them
        self.buf: bytearray | memoryview | None = None
        self.pending = 0  # requests still filling it
        self.got = 0  # bytes received: done at ``length``, before the request that fills it ends
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.waiting = 0  # threads blocked in view(): its requests skip the window
        self.drop = False  # released before its bytes arrived: free on completion
        self.jobs: list[_Job] = []  # the requests that fill it (``ready`` watches their cursors)
        self.streams = 0  # stream_view()s not yet released (they keep its requests urgent)


class _Job:
    """One range request [start, end) filling one or more slots."""

    __slots__ = ("start", "end", "slots", "pos")

    def __init__(self, start: int, end: int, slot: _Slot):
        self.start, self.end, self.slots = start, end, [slot]
        self.pos = start  # every byte before it is in (a retry resumes here)
        slot.jobs.append(self)


class RemoteSource:
    """A container on an HTTP(S) server, read by range requests (module docstring)."""

    def __init__(self, url: str, *, options: RemoteOptions | None = None,
                 headers: dict[str, str] | None = None, display: str | None = None,
                 where: str | None = None):
        self.path = display or url  # what messages and ``BsFile.path`` show
        self.where = where or url  # what an error names (hf://: repository, revision, file)
        self.mode = 0o644  # the permission bits outputs restored from it get
        self.options = o = options or RemoteOptions.from_env()
        self.http = RangeClient(url, o, headers, self.where)
        self.stats = self.http.stats
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)  # a request's cursor moved
        self._slots: dict[tuple[int, int], _Slot] = {}
        self._queue: deque[_Job] = deque()
        self._held = 0
        self._inflight = 0
        self._stop = self.http.stop
        self._pool = ThreadPoolExecutor(o.connections, thread_name_prefix="bigsmall-http")
        self._prefix = b""
        self._tail_at, self._tail = 0, memoryview(b"")  # the file's end (``RangeClient.tail``)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        return self.http.url  # where a redirect led, after the first request

    @property
    def size(self) -> int:
        return self.http.size

    @property
    def etag(self) -> str | None:
        return self.http.etag

    @property
    def _fatal(self) -> BaseException | None:
        return self.http.fatal

    def _stopped(self) -> BaseException:
        return self.http.stopped()

    def _open(self) -> None:
        """The first round trip: the first ``prefix_bytes`` (header; size and ETag pinned) and,
        at the same time on a second connection, the last ``tail_bytes`` (the index, in all
        but huge files): the header and the index cost one round trip, not two. The tail is
        kept only if its ETag and size are the pinned ones. Then the other connections are
        opened while the caller parses the index."""
        o = self.options
        tail = self._pool.submit(self.http.tail, o.tail_bytes) if o.tail_bytes > 0 else None
        self._read_prefix()
        got = tail.result() if tail is not None else None
        if got is not None and got[3] == self.size == got[0] + len(got[1]) and got[2] == self.etag \
                and self.size > len(self._prefix):  # the same version, and its very end
            self._tail_at, self._tail = got[0], memoryview(bytes(got[1]))
        if self.size > len(self._prefix) + len(self._tail):
            for _ in range(o.connections - 1 - (tail is not None)):
                self._pool.submit(self.http.preconnect)

    def _read_prefix(self) -> None:
        """Request 1: the first ``prefix_bytes``; learns the size and pins the ETag."""
        buf = bytearray(self.options.prefix_bytes)
        view = memoryview(buf)

        def target(pos: int, n: int) -> memoryview:
            return view[pos:pos + n]

        self.http.get(0, len(buf), target, _no_wait, first=True)
        view.release()
        del buf[min(self.size, len(buf)):]
        self._prefix = bytes(buf)

    def _here(self, offset: int, length: int) -> memoryview | None:
        """Bytes ``[offset, offset + length)`` if the first round trip brought them."""
        if offset + length <= len(self._prefix):
            return memoryview(self._prefix)[offset:offset + length]
        a = offset - self._tail_at
        if self._tail and a >= 0 and a + length <= len(self._tail):
            return self._tail[a:a + length]
        return None

    # ------------------------------------------------------------------ slots and jobs
    def _jobs_for(self, slots: Iterable[_Slot]) -> list[_Job]:
        """Requests for ``slots``, in order: neighbours coalesced, large ranges split."""
        o = self.options
        jobs: list[_Job] = []
        cur: _Job | None = None
        for s in slots:
            here = self._here(s.offset, s.length)
            if here is not None:  # in the first round trip's bytes already
                s.buf = here
                s.done.set()
                continue
            a, end = self._missing(s)
            if a >= end:  # the prefix and the tail between them: no request
                self._alloc(s)
                s.done.set()
                continue
            while a < end:
                b = min(end, a + o.request_bytes)
                if cur is not None and cur.end <= a <= cur.end + o.coalesce_gap \
                        and b - cur.start <= o.request_bytes:
                    cur.end = b
                    if cur.slots[-1] is not s:
                        cur.slots.append(s)
                        s.jobs.append(cur)
                        s.pending += 1
                else:
                    cur = _Job(a, b, s)
                    s.pending += 1
                    jobs.append(cur)
                a = b
        return jobs

    def _missing(self, s: _Slot) -> tuple[int, int]:
        """The part of ``s`` to request: its ends that the prefix or the tail hold are not
        fetched again (``_alloc`` copies them in)."""
        a, end = max(s.offset, len(self._prefix)), s.offset + s.length
        if self._tail and self._tail_at < end:  # the tail holds every byte from ``_tail_at`` on
            end = max(a, self._tail_at)
        s.got = s.length - max(0, end - a)
        return a, end

    def _alloc(self, s: _Slot) -> None:
        """``s``'s buffer (under the lock), with the bytes the first round trip brought."""
        buf = s.buf = bytearray(s.length)
        self._held += s.length
        n = len(self._prefix) - s.offset
        if n > 0:
            buf[:n] = self._prefix[s.offset:]
        k = s.offset + s.length - self._tail_at
        if self._tail and 0 < k < s.length:
            buf[s.length - k:] = self._tail[:k]

    def plan(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Announce the ranges that will be ``view``-ed, in that order: fetched ahead."""
        new: list[_Slot] = []
        with self._lock:
            for off, n in ranges:
                if n <= 0 or off < 0 or off + n > self.size:
                    continue  # view() says what is wrong with it
                s = self._slots.get((off, n))
                if s is None:
                    s = self._slots[(off, n)] = _Slot(off, n)
                    new.append(s)
                s.uses += 1
                s.announced += 1
            self._queue.extend(self._jobs_for(new))
        self._pump()

    def _pump(self) -> None:
        """Start queued requests while connections are free and the byte window allows
        (a request a ``view`` waits for ignores the window: it cannot wait for itself)."""
        o = self.options
        with self._lock:
            while self._queue and self._inflight < o.connections and not self._stop.is_set():
                job = self._queue[0]
                fresh = [s for s in job.slots if s.buf is None]
                need = sum(s.length for s in fresh)
                urgent = any(s.waiting for s in job.slots)
                if not urgent and self._held and self._held + need > o.window_bytes:
                    break
                self._queue.popleft()
                for s in fresh:
                    self._alloc(s)
                self.stats.peak_held = max(self.stats.peak_held, self._held)
                self._inflight += 1
                self._pool.submit(self._run, job)

    def _run(self, job: _Job) -> None:
        slots = job.slots  # in file order, not overlapping; gaps between them are discarded
        k = 0
        scratch = memoryview(bytearray(0))

        def target(pos: int, n: int) -> memoryview:
            # the bytes go straight into the buffer of the slot they belong to
            nonlocal k, scratch
            while k < len(slots) and slots[k].offset + slots[k].length <= pos:
                k += 1
            if k < len(slots) and slots[k].offset <= pos:
                s = slots[k]
                top = min(n, s.offset + s.length - pos)
                buf = s.buf
                if isinstance(buf, bytearray):  # None: freed after another request failed
                    return memoryview(buf)[pos - s.offset:pos - s.offset + top]
            else:
                top = min(n, (slots[k].offset if k < len(slots) else job.end) - pos)
            if len(scratch) < top:
                scratch = memoryview(bytearray(top))
            return scratch[:top]

        def got(pos: int, n: int) -> None:
            # a slot is done as soon as its last byte is in, not when the (coalesced, larger)
            # request ends: decoding starts while the rest of the request still arrives
            hi = pos + n
            with self._progress:
                for s in slots[k:]:
                    if s.offset >= hi:
                        break
                    lo, top = max(pos, s.offset), min(hi, s.offset + s.length)
                    if top > lo:
                        s.got += top - lo  # a retry resumes after the bytes received: none twice
                        if s.got >= s.length:
                            s.done.set()
                job.pos = hi
                self._progress.notify_all()

        error: BaseException | None = None
        try:
            self.http.get(job.start, job.end, target, got)
        except BaseException as exc:  # noqa: BLE001 - handed to the view() that waits
            error = exc
        with self._lock:
            self._inflight -= 1
            self._progress.notify_all()
            for s in job.slots:
                if error is not None and s.error is None and s.got < s.length:
                    s.error = error
                s.pending -= 1
                if s.pending <= 0 or error is not None:
                    s.done.set()
                    if s.drop and s.pending <= 0:
                        self._free(s)
        self._pump()

    def _free(self, s: _Slot) -> None:
        if isinstance(s.buf, bytearray):
            self._held -= s.length
        s.buf = None
        if self._slots.get((s.offset, s.length)) is s:
            del self._slots[(s.offset, s.length)]

    def _wait(self, s: _Slot) -> None:
        while not s.done.wait(0.1):
            if self._stop.is_set() and self._inflight == 0 and not s.done.is_set():
                raise self._stopped()
        if self._fatal is not None:
            raise self._fatal
        if s.error is not None:
            raise s.error

    def _bounds(self, offset: int, length: int) -> None:
        if offset < 0 or offset + length > self.size:
            raise TruncatedError(f"{self.path}: truncated: needs bytes {offset}..{offset + length}, "
                                 f"file has {self.size}")

    # ------------------------------------------------------------------ FileSource's interface
    def view(self, offset: int, length: int) -> memoryview:
        """Bytes ``[offset, offset + length)``, waiting for them if they are still on the way."""
        if length == 0:
            return memoryview(b"")
        self._bounds(offset, length)
        with self._lock:
            s = self._slot_first(offset, length)
            s.waiting += 1
        try:
            self._pump()
            self._wait(s)
        finally:
            with self._lock:
                s.waiting -= 1
        assert s.buf is not None
        return memoryview(s.buf).toreadonly()

    def stream_view(self, offset: int, length: int) -> tuple[memoryview, Callable[[int, int], None]]:
        """The range's buffer at once, while its bytes may still be arriving, and ``ready(lo,
        hi)``, which waits until bytes ``[lo, hi)`` of it are in: ``BsFile`` decodes a large
        blob's chunks as they arrive rather than after its last byte. The range's requests
        go first (as ``view``'s) until it is released."""
        if length == 0:
            return memoryview(b""), _no_wait
        self._bounds(offset, length)
        with self._lock:
            s = self._slot_first(offset, length)
            s.streams += 1
            s.waiting += 1
        self._pump()
        with self._lock:
            if s.buf is None and s.error is None and self._fatal is None:
                # its requests wait for a free connection: their buffers are made now
                for j in [j for j in self._queue if s in j.slots]:
                    for t in j.slots:
                        if t.buf is None:
                            self._alloc(t)
            buf = s.buf
        if buf is None:
            self._wait(s)  # raises the error that left it without a buffer
            buf = s.buf
        assert buf is not None

        def ready(lo: int, hi: int) -> None:
            lo, hi = offset + lo, offset + min(hi, length)
            with self._progress:
                while True:
                    if self._fatal is not None:
                        raise self._fatal
                    if all(j.pos >= min(hi, j.end) for j in s.jobs if j.start < hi and j.end > lo):
                        return
                    if s.error is not None:
                        raise s.error
                    if self._stop.is_set() and self._inflight == 0:
                        raise self._stopped()
                    self._progress.wait(0.5)

        return memoryview(buf), ready

    def _slot_first(self, offset: int, length: int) -> _Slot:
        """The slot of a range a reader waits for now (under the lock): created with its
        requests queued first, or an announced one's requests moved there (``_urgent``)."""
        s = self._slots.get((offset, length))
        if s is None:
            s = self._slots[(offset, length)] = _Slot(offset, length)
            s.uses = 1
            self._urgent(self._jobs_for([s]))
            return s
        if s.announced > 0:  # the view plan() announced
            s.announced -= 1
        else:  # one more (another thread's, or a second read of a tensor): its own release
            s.uses += 1
        if not s.done.is_set():
            mine = [j for j in self._queue if s in j.slots]
            for j in mine:
                self._queue.remove(j)
            self._urgent(mine)
        return s

    def _urgent(self, jobs: list[_Job]) -> None:
        """Queue ``jobs`` behind the requests other readers already wait for and ahead of the
        rest: the pipeline asks for blob k, then k+1, ... without waiting, and k must still
        come first (at the very front, k+1's requests overtook k's)."""
        at = 0
        for j in self._queue:
            if not any(t.waiting for t in j.slots):
                break
            at += 1
        for k, j in enumerate(jobs):
            self._queue.insert(at + k, j)

    def release(self, offset: int, length: int) -> None:
        """The range's bytes were used (one view of it): free them once no view is to come."""
        with self._lock:
            s = self._slots.get((offset, length))
            if s is None:
                return
            if s.streams > 0:
                s.streams -= 1
                s.waiting -= 1
            s.uses -= 1
            if s.uses > 0:
                return
            if s.pending > 0 and s.error is None:
                s.drop = True
            else:
                self._free(s)
        self._pump()

    def read(self, offset: int, length: int) -> bytes:
        """A copy of bytes ``[offset, offset + length)`` (header, index, heads, small files)."""
        if length == 0:
            return b""
        self._bounds(offset, length)
        here = self._here(offset, length)
        if here is not None:
            return bytes(here)
        with self._lock:
            s = self._slots.get((offset, length))
            if s is not None and s.done.is_set() and s.error is None and s.buf is not None:
                return bytes(s.buf)
            s = _Slot(offset, length)  # unregistered: read only here
            self._urgent(self._jobs_for([s]))
            s.waiting = 1
        self._pump()
        self._wait(s)
        assert s.buf is not None
        data = bytes(s.buf)
        with self._lock:
            self._free(s)
        return data

    def close(self) -> None:
        """Stop every request now (a stalled one too: ``RangeClient.shutdown``)."""
        self._stop.set()
        with self._lock:
            self._queue.clear()
            for s in self._slots.values():
                if s.error is None and (s.buf is None or isinstance(s.buf, bytearray) and s.got < s.length):
                    s.error = RemoteError(f"{self.where}: closed while reading")  # never half a blob
                s.done.set()
            self._slots.clear()
            self._progress.notify_all()
        self.http.shutdown()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> RemoteSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _no_wait(lo: int, hi: int) -> None:
    """``ready`` of an empty range."""


__all__ = ["FetchStats", "RemoteOptions", "RemoteSource", "is_remote", "open_source",
           "remote_name"]
