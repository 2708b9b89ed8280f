"""HTTP range requests that survive faults: the request layer under ``remote.RemoteSource``.

``RangeClient.get(start, end, sink)`` fetches bytes ``[start, end)`` of one URL and hands them
to ``sink`` as they arrive. The first request learns the file's size (``Content-Range``) and
pins its ETag; every later one carries ``If-Range`` and has its ETag and size compared, so bytes
of two versions of a file are never mixed (``RemoteChangedError``, and every other request of
the client stops). Resets, cut bodies and stalls (no byte for ``read_timeout``) and 429/5xx
(``Retry-After`` honoured) are retried with exponential backoff and jitter, resuming at the
first byte not received; only tries in a row without progress count against ``retries``.
401/403 and 404/410 raise ``RemoteAuthError`` / ``RemoteNotFoundError`` at once. Each request,
byte and retry is counted in ``stats``; retries are logged on ``bigsmall.remote`` (DEBUG).
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import attrs

from ..errors import (
    InvalidOptionError,
    RemoteAuthError,
    RemoteChangedError,
    RemoteError,
    RemoteNotFoundError,
)

log = logging.getLogger("bigsmall.remote")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")


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


class RangeClient:
    """Range requests on one URL with retries, resume and ETag pinning (module docstring).
    Thread-safe: ``RemoteSource`` runs several ``get`` at once, one per connection."""

    def __init__(self, url: str, options: RemoteOptions, headers: dict[str, str] | None = None,
                 where: str | None = None):
        import httpx

        self.url = url
        self.where = where or url  # what an error names (hf://: repository, revision, file)
        self.options = o = options
        self.stats = FetchStats()
        self._headers = {"Accept-Encoding": "identity", **(headers or {})}
        self._client = httpx.Client(
            timeout=httpx.Timeout(o.connect_timeout, read=o.read_timeout, pool=None),
            limits=httpx.Limits(max_connections=o.connections + 1,
                                max_keepalive_connections=o.connections + 1),
            follow_redirects=True)
        self._lock = threading.Lock()
        self._active: set[Any] = set()  # sockets of the bodies being read (shutdown() shuts them)
        self.stop = threading.Event()
        self.fatal: BaseException | None = None  # the error that stopped every request
        self.size = -1
        self.etag: str | None = None
        self._if_range: str | None = None

    def get(self, start: int, end: int, sink: Callable[[int, Any], None], first: bool = False) -> None:
        """GET bytes [start, end) into ``sink(position, data)``; faults are retried from the
        first byte not yet received (module docstring)."""
        import httpx

        cursor = [start, end]
        fails = 0
        while True:
            if self.stop.is_set():
                raise self.stopped()
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
            if self.stop.is_set():
                raise self.stopped()
            fails = 0 if cursor[0] > before else fails + 1
            with self._lock:
                self.stats.retries += 1
                self.stats.faults[kind] = self.stats.faults.get(kind, 0) + 1
            if fails > self.options.retries:
                raise RemoteError(f"{self.where}: gave up after {fails} tries in a row without "
                                  f"progress ({kind}) at byte {cursor[0]}")
            if wait is None and fails == 0:
                wait = 0.0  # bytes came before the cut: resume at once (a cut is not a busy server)
            if wait is None:
                wait = self.options.backoff * 2 ** (fails - 1) * (0.5 + random.random() / 2)
            wait = min(wait, self.options.max_wait)
            log.debug("%s: %s at byte %d, retry %d in %.2f s", self.where, kind, cursor[0], fails, wait)
            self.stop.wait(wait)

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
            raise self.changed("the server sent the whole file instead of the range: it "
                                "no longer matches the ETag pinned at the first request")
        if status == 416:
            m = _UNSATISFIED.fullmatch(r.headers.get("content-range", "").strip())
            if first and m is not None and int(m.group(1)) == 0:
                self.size = cursor[1] = 0  # an empty file: parse_header says what it is
                self._pin(r)
                return
            raise self.changed("a range inside the file is no longer satisfiable")
        if status == 412:
            raise self.changed("precondition failed")
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
            raise self.changed(f"ETag {self.etag} -> {etag}, size {self.size} -> {total}")

    def changed(self, why: str) -> RemoteChangedError:
        exc = RemoteChangedError(f"{self.where}: the file changed on the server while it was "
                                 f"read ({why})")
        with self._lock:
            if self.fatal is None:
                self.fatal = exc
        self.stop.set()  # every other request stops too: their bytes may be of either version
        return exc

    def stopped(self) -> BaseException:
        return self.fatal or RemoteError(f"{self.where}: read after close")

    def shutdown(self) -> None:
        """Stop every request now, a stalled one too: its socket is shut under it (closing
        the httpx client does not wake a read blocked in it)."""
        self.stop.set()
        with self._lock:
            active = list(self._active)
        for sock in active:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._client.close()


def _socket_of(r: Any) -> Any:
    """The socket under an httpx response (httpcore's ``network_stream``), or None."""
    stream = r.extensions.get("network_stream")
    try:
        return stream.get_extra_info("socket") if stream is not None else None
    except Exception:  # noqa: BLE001 - another transport: close() then waits for the timeout
        return None


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
