"""HTTP range requests that survive faults: the request layer under ``remote.RemoteSource``.

``RangeClient.get(start, end, target, got)`` fetches bytes ``[start, end)`` of one URL, read
from the socket straight into the buffers ``target`` names, telling ``got`` as they arrive.
Connections are the standard library's (``http.client``: kept alive, one per thread at a
time, through the proxy ``HTTP(S)_PROXY`` / ``NO_PROXY`` name; TLS with certifi's roots or
``SSL_CERT_FILE``, its context made once per process). The first request learns the file's size (``Content-Range``) and
pins its ETag; every later one carries ``If-Range`` and has its ETag and size compared, so bytes
of two versions of a file are never mixed (``RemoteChangedError``, and every other request of
the client stops). Resets, cut bodies and stalls (no byte for ``read_timeout``) and 429/5xx
(``Retry-After`` honoured) are retried with exponential backoff and jitter, resuming at the
first byte not received; only tries in a row without progress count against ``retries``.
401/403 and 404/410 raise ``RemoteAuthError`` / ``RemoteNotFoundError`` at once. Each request,
byte and retry is counted in ``stats``; retries are logged on ``bigsmall.remote`` (DEBUG).
"""

from __future__ import annotations

import base64
import http.client
import logging
import os
import random
import re
import socket
import ssl
import threading
import urllib.request
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

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
MAX_REDIRECTS = 10
Target = Callable[[int, int], memoryview]  # (position, most bytes) -> where they are read into
Got = Callable[[int, int], None]  # (position, bytes) just read


@attrs.frozen
class RemoteOptions:
    """How a remote container is fetched; ``from_env`` reads ``BIGSMALL_HTTP_*`` overrides."""

    connections: int = 4
    request_bytes: int = 4 << 20  # a larger range is split in pieces fetched in parallel
    window_bytes: int = 64 << 20  # fetched, not yet released (decoded) bytes held at most
    prefix_bytes: int = 64 << 10  # the first request: header (and a small file's index)
    tail_bytes: int = 256 << 10  # sent beside it: the file's end, the index (0: not asked)
    coalesce_gap: int = 4096  # neighbours this close are fetched in one request
    read_bytes: int = 256 << 10  # read from the socket at a time (a streamed blob's step)
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
                                 ("BIGSMALL_HTTP_BACKOFF", "backoff", float),
                                 ("BIGSMALL_HTTP_TAIL", "tail_bytes", int)):
            if env.get(key):
                try:
                    kw[field] = kind(env[key])
                except ValueError:
                    raise InvalidOptionError(f"{key}={env[key]!r} is not a number") from None
        opts = cls(**kw)
        if opts.connections < 1 or opts.retries < 0 or opts.read_timeout <= 0 or opts.tail_bytes < 0:
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
        self.url = url
        self.where = where or url  # what an error names (hf://: repository, revision, file)
        self.options = options
        self.stats = FetchStats()
        self._headers = {"Accept-Encoding": "identity", "User-Agent": "bigsmall", **(headers or {})}
        self._lock = threading.Lock()
        self._idle: list[tuple[tuple[str, str, int], http.client.HTTPConnection]] = []  # keep-alive
        self._active: set[Any] = set()  # sockets of the bodies being read (shutdown() shuts them)
        self.stop = threading.Event()
        self.fatal: BaseException | None = None  # the error that stopped every request
        self.size = -1
        self.etag: str | None = None
        self._if_range: str | None = None

    def get(self, start: int, end: int, target: Target, got: Got, first: bool = False) -> None:
        """GET bytes [start, end): each piece is read straight into ``target(pos, limit)`` (a
        writable view of at most ``limit`` bytes for position ``pos``), then ``got(pos, n)`` is
        told; faults are retried from the first byte not yet received (module docstring)."""
        cursor = [start, end]
        fails = 0
        while True:
            if self.stop.is_set():
                raise self.stopped()
            before = cursor[0]
            wait: float | None = None
            try:
                self._attempt(cursor, target, got, first)
                if cursor[0] >= cursor[1]:
                    return
                kind = "short"  # the body ended (cleanly) before the range did
            except _Retry as exc:
                kind, wait = exc.kind, exc.wait
            except RemoteError:
                raise
            except ssl.SSLCertVerificationError as exc:
                raise RemoteError(f"{self.where}: TLS certificate not trusted ({exc.verify_message})") from None
            except TimeoutError:
                kind = "stall"
            except (OSError, http.client.HTTPException):  # reset, cut body, refused connection
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

    def _attempt(self, cursor: list[int], target: Target, got: Got, first: bool) -> None:
        headers = dict(self._headers)
        headers["Range"] = f"bytes={cursor[0]}-{cursor[1] - 1}"
        if self._if_range is not None:
            headers["If-Range"] = self._if_range
        url = self.url
        hops = 0
        while hops <= MAX_REDIRECTS:
            key, conn, target_path, extra, kept = self._connection(url)
            sock = conn.sock
            with self._lock:
                self.stats.requests += 1
                self._active.add(sock)
            reuse = False
            try:
                if self.stop.is_set():
                    raise self.stopped()
                try:
                    conn.request("GET", target_path, headers={**headers, **extra})
                    r = conn.getresponse()
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if not kept:
                        raise
                    with self._lock:
                        self.stats.requests -= 1
                    continue  # a kept-alive connection the server had closed: a fresh one
                hops += 1
                if r.status in (301, 302, 303, 307, 308) and r.headers.get("location"):
                    url = urljoin(url, r.headers["location"])
                    r.read(1 << 16)  # a redirect's (small) body: the connection stays usable
                    reuse = r.isclosed() and not r.will_close
                    continue
                self._check(r, url, cursor, first and self.size < 0)
                step = self.options.read_bytes
                while cursor[0] < cursor[1]:
                    view = target(cursor[0], min(step, cursor[1] - cursor[0]))
                    n = r.readinto(view)  # straight from the socket into the buffer: no copy
                    if n <= 0:
                        if r.length:  # the connection ended mid-body: a cut (a reset)
                            raise http.client.IncompleteRead(b"", r.length)
                        break  # the body ended early: the caller retries from here
                    got(cursor[0], n)
                    cursor[0] += n
                    with self._lock:
                        self.stats.bytes += n
                reuse = r.isclosed() and not r.will_close
                return
            finally:
                with self._lock:
                    self._active.discard(sock)
                self._done_with(key, conn, reuse)
        raise RemoteError(f"{self.where}: more than {MAX_REDIRECTS} redirects")

    def tail(self, n: int) -> tuple[int, bytearray, str | None, int] | None:
        """Speculative, sent beside the first request (a ``.bs`` ends with its index): the
        file's last ``n`` bytes, their offset, ETag and the file's size. One try, nothing
        pinned: None on any failure, a redirect or a server without suffix ranges (the caller
        then reads the index as before, and compares the ETag itself)."""
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                key, conn, path, extra, _ = self._connection(url, fresh=True)
            except (OSError, http.client.HTTPException):
                return None
            got, url = self._tail_once(key, conn, path, extra, n, url)
            if url is None:
                return got
        return None

    def _tail_once(self, key: tuple[str, str, int], conn: http.client.HTTPConnection, path: str,
                   extra: dict[str, str], n: int, url: str,
                   ) -> tuple[tuple[int, bytearray, str | None, int] | None, str | None]:
        """One request of ``tail``: (its answer, None), or (None, where a redirect leads)."""
        sock, reuse = conn.sock, False
        with self._lock:
            self.stats.requests += 1
            self._active.add(sock)
        try:
            conn.request("GET", path, headers={**self._headers, **extra, "Range": f"bytes=-{n}"})
            r = conn.getresponse()
            if r.status in (301, 302, 303, 307, 308) and r.headers.get("location"):
                return None, urljoin(url, r.headers["location"])
            m = _CONTENT_RANGE.fullmatch(r.headers.get("content-range", "").strip())
            if r.status != 206 or m is None or m.group(3) == "*" \
                    or r.headers.get("content-encoding", "identity") != "identity":
                return None, None
            buf = bytearray(int(m.group(2)) + 1 - int(m.group(1)))
            view, pos = memoryview(buf), 0
            while pos < len(buf):
                k = r.readinto(view[pos:])
                if k <= 0:
                    return None, None
                pos += k
            view.release()
            with self._lock:
                self.stats.bytes += pos
            reuse = r.isclosed() and not r.will_close
            return (int(m.group(1)), buf, r.headers.get("etag"), int(m.group(3))), None
        except (OSError, ValueError, http.client.HTTPException):  # ValueError: a nonsense range
            return None, None
        finally:
            with self._lock:
                self._active.discard(sock)
            self._done_with(key, conn, reuse)

    def preconnect(self) -> None:
        """One more kept-alive connection to where the file is: its handshake (TCP, TLS) made
        while the index is read and parsed rather than in front of the first blob request."""
        try:
            key, conn, *_ = self._connection(self.url, fresh=True)
        except (OSError, http.client.HTTPException):
            return  # the request that needs it will connect (and retry) itself
        self._done_with(key, conn, True)

    def _connection(self, url: str, fresh: bool = False) -> tuple[tuple[str, str, int], http.client.HTTPConnection,
                                                               str, dict[str, str], bool]:
        """A connected connection for ``url`` (a kept-alive idle one, else a new one, through
        the proxy the environment names): its pool key, the connection, the request target,
        the headers the proxy wants, whether it was kept alive."""
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise RemoteError(f"{self.where}: not an http(s) URL: {url}")
        port = u.port or (443 if u.scheme == "https" else 80)
        key = (u.scheme, u.hostname, port)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        proxy = _proxy_for(u.scheme, u.hostname)
        extra = {}
        if proxy is not None and u.scheme == "http":  # absolute form, the proxy's credentials
            path = urlunsplit((u.scheme, u.netloc, u.path or "/", u.query, ""))
            extra = _proxy_auth(proxy)
        kept = False
        with self._lock:
            for i, (k, c) in enumerate(self._idle):
                if k == key and not fresh:
                    del self._idle[i]
                    conn, kept = c, True
                    break
            else:
                conn = self._new_connection(u.scheme, u.hostname, port, proxy)
        if conn.sock is None:
            kept = False
            conn.connect()
            conn.sock.settimeout(self.options.read_timeout)  # a stall: no byte for this long
        return key, conn, path, extra, kept

    def _new_connection(self, scheme: str, host: str, port: int, proxy: str | None) -> http.client.HTTPConnection:
        o = self.options
        if proxy is None:
            if scheme == "https":
                return http.client.HTTPSConnection(host, port, timeout=o.connect_timeout, context=tls_context())
            return http.client.HTTPConnection(host, port, timeout=o.connect_timeout)
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if scheme == "https":  # a CONNECT tunnel through the proxy, TLS to the server inside it
            conn = http.client.HTTPSConnection(p.hostname or "", p.port or 80, timeout=o.connect_timeout,
                                               context=tls_context())
            conn.set_tunnel(host, port, headers=_proxy_auth(proxy))
            return conn
        return http.client.HTTPConnection(p.hostname or "", p.port or 80, timeout=o.connect_timeout)

    def _done_with(self, key: tuple[str, str, int], conn: http.client.HTTPConnection, reuse: bool) -> None:
        if reuse and not self.stop.is_set():
            with self._lock:
                self._idle.append((key, conn))
            return
        conn.close()

    def _check(self, r: Any, url: str, cursor: list[int], first: bool) -> None:
        """The answer's status and validators, before a byte of its body is used."""
        status = r.status
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
                self._pin(r, url)
            else:
                self._same(r, total)
            return
        if status == 200:
            length = int(r.headers.get("content-length", -1))
            if first and 0 <= length <= cursor[1]:  # no Range support, but small: the whole file
                self.size = length
                cursor[1] = length
                self._pin(r, url)
                return
            if first:
                raise RemoteError(f"{where}: the server ignores range requests (no 206 answer)")
            raise self.changed("the server sent the whole file instead of the range: it "
                                "no longer matches the ETag pinned at the first request")
        if status == 416:
            m = _UNSATISFIED.fullmatch(r.headers.get("content-range", "").strip())
            if first and m is not None and int(m.group(1)) == 0:
                self.size = cursor[1] = 0  # an empty file: parse_header says what it is
                self._pin(r, url)
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

    def _pin(self, r: Any, url: str) -> None:
        if url != self.url:  # redirected: later requests go straight to where it led
            self.url = url
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
        """Stop every request now, a stalled one too: its socket is shut under it (closing a
        connection does not wake a read blocked in it)."""
        self.stop.set()
        with self._lock:
            active = list(self._active)
            idle, self._idle = self._idle, []
        for sock in active:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass
        for _, conn in idle:
            conn.close()


_TLS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_TLS_LOCK = threading.Lock()


def tls_context() -> ssl.SSLContext:
    """The process's client TLS context (certifi's roots, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``),
    made once: loading the roots costs ~50 ms, which every remote open used to pay."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _TLS_LOCK:
        ctx = _TLS.get(key)
        if ctx is None:
            cafile = key[0]
            if cafile is None and key[1] is None:
                try:
                    import certifi

                    cafile = certifi.where()
                except ImportError:
                    pass
            ctx = _TLS[key] = ssl.create_default_context(cafile=cafile, capath=key[1])
        return ctx


def _proxy_auth(proxy: str) -> dict[str, str]:
    """``Proxy-Authorization`` for credentials in a proxy URL (``http://user:pw@host:port``)."""
    p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not p.username:
        return {}
    token = base64.b64encode(f"{unquote(p.username)}:{unquote(p.password or '')}".encode()).decode()
    return {"Proxy-Authorization": f"Basic {token}"}


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy the environment names for ``scheme`` (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY``), unless ``NO_PROXY`` exempts ``host``."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


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
