"""Read a ``.bs`` container over HTTP(S) with range requests: the remote twin of ``FileSource``.

``RemoteSource`` has ``FileSource``'s interface (``size``, ``read``, ``view``, ``release``,
``close``, ``path``, ``mode``), so ``BsFile`` decodes a remote container on exactly the local
decode path (every tensor still checked against its receipt); only where bytes come from differs.

Request pattern:

- the first request asks for the first ``prefix_bytes`` (64 KiB): it gives the fixed header, the
  file's size (``Content-Range``) and its validator (``ETag``); the index is the second request
  unless it already lay in the prefix (a small file is one request in all);
- ``BsFile``'s decode pipeline announces the blob ranges it will read, in order (``plan``);
  they are fetched ahead by ``connections`` threads: neighbouring ranges coalesced into one
  request, a large one split into ``request_bytes`` pieces fetched in parallel, and no more
  than ``window_bytes`` of fetched-but-unreleased bytes held (memory stays flat). A range read
  that was not announced (``BsFile.read`` of one tensor) jumps the queue: a tensor costs only its
  own blob.

Pinning: every request after the first carries ``If-Range: <ETag>`` (a strong one) and every
answer's ``ETag`` and total size are compared with the first: a file replaced on the server
mid-read raises ``RemoteChangedError`` rather than mixing bytes of two versions.

Faults: a connection reset or a body cut short, a stall (no byte for ``read_timeout`` s) and
429/5xx answers (``Retry-After`` honoured) are retried with exponential backoff, each retry
resuming at the first byte not yet received; only tries that made no progress count against
``retries``. Every retry is counted in ``stats`` and logged (``bigsmall.remote``, DEBUG).
401/403/404 raise typed errors at once.

Why threads and the synchronous ``httpx.Client`` rather than anyio + ``AsyncClient``: the
consumer (``BsFile``) is synchronous and decodes on a thread pool; a source's ``view`` must
block until its bytes are in. An event loop would need its own thread and a portal for every
call, for nothing gained at a handful of connections; a thread per connection blocks in the
socket with the GIL released, exactly like the decode threads block in numba.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import attrs

from ..errors import (
    BigsmallError,
    InvalidOptionError,
    RemoteAuthError,
    RemoteChangedError,
    RemoteError,
    RemoteNotFoundError,
    TruncatedError,
)

log = logging.getLogger("bigsmall.remote")
SCHEMES = ("http://", "https://", "hf://")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")


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


@attrs.frozen
class RemoteOptions:
    """How a remote container is fetched; ``from_env`` reads ``BIGSMALL_HTTP_*`` overrides."""

    connections: int = 4
    request_bytes: int = 4 << 20  # a larger range is split in pieces fetched in parallel
    window_bytes: int = 64 << 20  # fetched, not yet released (decoded) bytes held at most
    prefix_bytes: int = 64 << 10  # the first request: header (and a small file's index)
    coalesce_gap: int = 4096  # neighbours this close are fetched in one request
    read_timeout: float = 30.0  # no byte for this long: a stall, retried
    connect_timeout: float = 10.0
    retries: int = 6  # tries in a row that made no progress
    backoff: float = 0.25  # first wait; doubles each failed try, with jitter
    max_wait: float = 30.0  # longest wait, Retry-After included

    @classmethod
    def from_env(cls) -> RemoteOptions:
        env = os.environ
        kw: dict[str, Any] = {}
        for key, field, kind in (("BIGSMALL_HTTP_CONNECTIONS", "connections", int),
                                 ("BIGSMALL_HTTP_TIMEOUT", "read_timeout", float),
                                 ("BIGSMALL_HTTP_RETRIES", "retries", int),
                                 ("BIGSMALL_HTTP_BACKOFF", "backoff", float)):
            if env.get(key):
                try:
                    kw[field] = kind(env[key])
                except ValueError:
                    raise InvalidOptionError(f"{key}={env[key]!r} is not a number") from None
        opts = cls(**kw)
        if opts.connections < 1 or opts.retries < 0 or opts.read_timeout <= 0:
            raise InvalidOptionError(f"invalid remote options {opts}")
        return opts


@attrs.define
class FetchStats:
    """What a remote read cost: requests, body bytes received, retries by kind of fault."""

    requests: int = 0
    bytes: int = 0
    retries: int = 0
    faults: dict[str, int] = attrs.Factory(dict)
    peak_held: int = 0  # most fetched-but-unreleased bytes held at once (the window's use)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "bytes": self.bytes, "retries": self.retries,
                "faults": dict(self.faults), "peak_held": self.peak_held}


class _Retry(Exception):
    """A fault a retry may cure (429, 5xx): kind for the counters, the server's wait if any."""

    def __init__(self, kind: str, wait: float | None = None):
        super().__init__(kind)
        self.kind, self.wait = kind, wait


class _Slot:
    """One announced (or asked-for) byte range and the buffer its bytes land in."""

    __slots__ = ("offset", "length", "uses", "buf", "pending", "got", "done", "error", "waiting",
                 "drop", "jobs", "streams")

    def __init__(self, offset: int, length: int):
        self.offset, self.length = offset, length
        self.uses = 0  # views still to come (announced) or not yet released
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
        import httpx

        self.url = url
        self.path = display or url  # what messages and ``BsFile.path`` show
        self.where = where or url  # what an error names (hf://: repository, revision, file)
        self.mode = 0o644  # the permission bits outputs restored from it get
        self.options = o = options or RemoteOptions.from_env()
        self.stats = FetchStats()
        self._headers = {"Accept-Encoding": "identity", **(headers or {})}
        self._client = httpx.Client(
            timeout=httpx.Timeout(o.connect_timeout, read=o.read_timeout, pool=None),
            limits=httpx.Limits(max_connections=o.connections + 1,
                                max_keepalive_connections=o.connections + 1),
            follow_redirects=True)
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)  # a request's cursor moved
        self._active: set[Any] = set()  # sockets of the bodies being read (close() shuts them)
        self._slots: dict[tuple[int, int], _Slot] = {}
        self._queue: deque[_Job] = deque()
        self._held = 0
        self._inflight = 0
        self._stop = threading.Event()
        self._fatal: BaseException | None = None  # the error that stopped every request
        self._pool = ThreadPoolExecutor(o.connections, thread_name_prefix="bigsmall-http")
        self.size = -1
        self.etag: str | None = None
        self._if_range: str | None = None
        self._prefix = b""
        try:
            self._read_prefix()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ requests
    def _read_prefix(self) -> None:
        """Request 1: the first ``prefix_bytes``; learns the size and pins the ETag."""
        buf = bytearray()

        def sink(pos: int, data: Any) -> None:
            buf[pos:pos + len(data)] = data

        self._get(0, self.options.prefix_bytes, sink, first=True)
        self._prefix = bytes(buf[: min(self.size, self.options.prefix_bytes)])

    def _get(self, start: int, end: int, sink: Callable[[int, Any], None], first: bool = False) -> None:
        """GET bytes [start, end) into ``sink(position, data)``; faults are retried from the
        first byte not yet received (module docstring)."""
        import httpx

        cursor = [start, end]
        fails = 0
        while True:
            if self._stop.is_set():
                raise self._stopped()
            before = cursor[0]
            wait: float | None = None
            try:
                self._attempt(cursor, sink, first)
                if cursor[0] >= cursor[1]:
                    return
                kind = "short"  # the body ended (cleanly) before the range did
            except _Retry as exc:
                kind, wait = exc.kind, exc.wait
            except httpx.TimeoutException:
                kind = "stall"
            except httpx.TransportError:  # reset, cut body, refused connection
                kind = "reset"
            if self._stop.is_set():
                raise self._stopped()
            fails = 0 if cursor[0] > before else fails + 1
            with self._lock:
                self.stats.retries += 1
                self.stats.faults[kind] = self.stats.faults.get(kind, 0) + 1
            if fails > self.options.retries:
                raise RemoteError(f"{self.where}: gave up after {fails} tries in a row without "
                                  f"progress ({kind}) at byte {cursor[0]}")
            if wait is None:
                wait = self.options.backoff * 2 ** max(fails - 1, 0) * (0.5 + random.random() / 2)
            wait = min(wait, self.options.max_wait)
            log.debug("%s: %s at byte %d, retry %d in %.2f s", self.where, kind, cursor[0], fails, wait)
            self._stop.wait(wait)

    def _attempt(self, cursor: list[int], sink: Callable[[int, Any], None], first: bool) -> None:
        headers = dict(self._headers)
        headers["Range"] = f"bytes={cursor[0]}-{cursor[1] - 1}"
        if self._if_range is not None:
            headers["If-Range"] = self._if_range
        with self._client.stream("GET", self.url, headers=headers) as r:
            sock = _socket_of(r)
            with self._lock:
                self.stats.requests += 1
                if sock is not None:
                    self._active.add(sock)
            try:
                self._check(r, cursor, first and self.size < 0)
                for chunk in r.iter_raw(1 << 16):
                    n = min(len(chunk), cursor[1] - cursor[0])
                    if n > 0:
                        sink(cursor[0], memoryview(chunk)[:n])
                        cursor[0] += n
                        with self._lock:
                            self.stats.bytes += n
                    if cursor[0] >= cursor[1]:
                        break
            finally:
                with self._lock:
                    self._active.discard(sock)

    def _check(self, r: Any, cursor: list[int], first: bool) -> None:
        """The answer's status and validators, before a byte of its body is used."""
        status = r.status_code
        where = f"{self.where}: HTTP {status}"
        if status in (200, 206) and r.headers.get("content-encoding", "identity") != "identity":
            raise RemoteError(f"{where}: the server sent {r.headers['content-encoding']}-encoded "
                              "bytes for a range (asked for identity)")
        if status == 206:
            m = _CONTENT_RANGE.fullmatch(r.headers.get("content-range", "").strip())
            if m is None or int(m.group(1)) != cursor[0]:
                raise RemoteError(f"{where} with a Content-Range that is not the range asked for")
            total = int(m.group(3)) if m.group(3) != "*" else -1
            if first:
                if total < 0:
                    raise RemoteError(f"{where}: the server does not say the file's size")
                self.size = total
                cursor[1] = min(cursor[1], total)
                self._pin(r)
            else:
                self._same(r, total)
            return
        if status == 200:
            length = int(r.headers.get("content-length", -1))
            if first and 0 <= length <= cursor[1]:  # no Range support, but small: the whole file
                self.size = length
                cursor[1] = length
                self._pin(r)
                return
            if first:
                raise RemoteError(f"{where}: the server ignores range requests (no 206 answer)")
            raise self._changed("the server sent the whole file instead of the range: it "
                                "no longer matches the ETag pinned at the first request")
        if status == 416:
            m = _UNSATISFIED.fullmatch(r.headers.get("content-range", "").strip())
            if first and m is not None and int(m.group(1)) == 0:
                self.size = cursor[1] = 0  # an empty file: parse_header says what it is
                self._pin(r)
                return
            raise self._changed("a range inside the file is no longer satisfiable")
        if status == 412:
            raise self._changed("precondition failed")
        if status in (401, 403):
            hint = "a token is missing or wrong" if status == 401 else "access is denied (gated or private?)"
            raise RemoteAuthError(f"{where}: {hint}")
        if status in (404, 410):
            raise RemoteNotFoundError(f"{where}: not found")
        if status == 429 or 500 <= status < 600:
            raise _Retry(str(status), _retry_after(r.headers.get("retry-after")))
        raise RemoteError(f"{where}: unexpected answer")

    def _pin(self, r: Any) -> None:
        if str(r.url) != self.url:  # redirected: later requests go straight to where it led
            self.url = str(r.url)
        etag = r.headers.get("etag")
        self.etag = etag
        if etag and not etag.startswith("W/"):  # If-Range takes strong validators only
            self._if_range = etag

    def _same(self, r: Any, total: int) -> None:
        etag = r.headers.get("etag")
        if (etag and self.etag and etag != self.etag) or (total >= 0 and total != self.size):
            raise self._changed(f"ETag {self.etag} -> {etag}, size {self.size} -> {total}")

    def _changed(self, why: str) -> RemoteChangedError:
        exc = RemoteChangedError(f"{self.where}: the file changed on the server while it was "
                                 f"read ({why})")
        with self._lock:
            if self._fatal is None:
                self._fatal = exc
        self._stop.set()  # every other request stops too: their bytes may be of either version
        return exc

    def _stopped(self) -> BaseException:
        return self._fatal or RemoteError(f"{self.where}: read after close")

    # ------------------------------------------------------------------ slots and jobs
    def _jobs_for(self, slots: Iterable[_Slot]) -> list[_Job]:
        """Requests for ``slots``, in order: neighbours coalesced, large ranges split."""
        o = self.options
        jobs: list[_Job] = []
        cur: _Job | None = None
        for s in slots:
            if s.offset + s.length <= len(self._prefix):  # already here
                s.buf = memoryview(self._prefix)[s.offset:s.offset + s.length]
                s.done.set()
                continue
            a, end = s.offset, s.offset + s.length
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
                    s.buf = bytearray(s.length)
                self._held += need
                self.stats.peak_held = max(self.stats.peak_held, self._held)
                self._inflight += 1
                self._pool.submit(self._run, job)

    def _run(self, job: _Job) -> None:
        def sink(pos: int, data: Any) -> None:
            # a slot is done as soon as its last byte is in, not when the (coalesced, larger)
            # request ends: decoding starts while the rest of the request still arrives
            hi = pos + len(data)
            for s in job.slots:
                lo, top = max(pos, s.offset), min(hi, s.offset + s.length)
                if top > lo:
                    s.buf[lo - s.offset:top - s.offset] = data[lo - pos:top - pos]  # type: ignore[index]
                    with self._lock:  # two requests may fill one split slot
                        s.got += top - lo  # a retry resumes after the bytes received: none twice
                        full = s.got >= s.length
                    if full:
                        s.done.set()
            with self._progress:
                job.pos = hi
                self._progress.notify_all()

        error: BaseException | None = None
        try:
            self._get(job.start, job.end, sink)
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
                            t.buf = bytearray(t.length)
                            self._held += t.length
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
        requests at the head of the queue, or an announced one's requests moved there."""
        s = self._slots.get((offset, length))
        if s is None:
            s = self._slots[(offset, length)] = _Slot(offset, length)
            s.uses = 1
            self._queue.extendleft(reversed(self._jobs_for([s])))
        elif not s.done.is_set():
            mine = [j for j in self._queue if s in j.slots]
            for j in mine:
                self._queue.remove(j)
            self._queue.extendleft(reversed(mine))
        return s

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
        if offset + length <= len(self._prefix):
            return self._prefix[offset:offset + length]
        with self._lock:
            s = self._slots.get((offset, length))
            if s is not None and s.done.is_set() and s.error is None and s.buf is not None:
                return bytes(s.buf)
            s = _Slot(offset, length)  # unregistered: read only here
            s.waiting = 1
            self._queue.extendleft(reversed(self._jobs_for([s])))
        self._pump()
        self._wait(s)
        assert s.buf is not None
        data = bytes(s.buf)
        with self._lock:
            self._free(s)
        return data

    def close(self) -> None:
        """Stop every request now (a stalled one too: its connection is closed under it)."""
        self._stop.set()
        with self._lock:
            self._queue.clear()
            for s in self._slots.values():
                if s.error is None and (s.buf is None or isinstance(s.buf, bytearray) and s.got < s.length):
                    s.error = RemoteError(f"{self.where}: closed while reading")  # never half a blob
                s.done.set()
            self._slots.clear()
            self._progress.notify_all()
            active = list(self._active)
        for sock in active:  # wakes a read blocked in it (closing the client does not)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._client.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> RemoteSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _socket_of(r: Any) -> Any:
    """The socket under an httpx response (httpcore's ``network_stream``), or None."""
    stream = r.extensions.get("network_stream")
    try:
        return stream.get_extra_info("socket") if stream is not None else None
    except Exception:  # noqa: BLE001 - another transport: close() then waits for the timeout
        return None


def _no_wait(lo: int, hi: int) -> None:
    """``ready`` of an empty range."""


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        import time

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def fetch_to(url: str, dst: Path, options: RemoteOptions | None = None) -> FetchStats:
    """Download a whole file by range requests into ``dst`` (a temporary the caller renames):
    the same retries, resume and ETag pinning as a container read."""
    with RemoteSource(url, options=options) as src, open(dst, "wb") as fh:
        step = src.options.request_bytes
        pieces = [(pos, min(step, src.size - pos)) for pos in range(0, src.size, step)]
        src.plan(pieces)  # fetched ahead, ``connections`` at a time, within the byte window
        for pos, n in pieces:
            fh.write(src.view(pos, n))
            src.release(pos, n)
        return src.stats


__all__ = ["FetchStats", "RemoteOptions", "RemoteSource", "is_remote", "open_source",
           "remote_name", "fetch_to", "BigsmallError"]
