"""A small real HTTP server on 127.0.0.1 for the remote tests and benchmark (never the internet).

It serves a folder with what a CDN and the Hugging Face Hub give a client: single byte ranges
(206 + ``Content-Range``), strong ``ETag``s, ``If-Range``, ``Content-Length``, keep-alive
(HTTP/1.1), and a Hub-shaped tree for ``HF_ENDPOINT``:

- ``/files/<path>``: a plain file server; ``/redirect/<path>`` answers 302 to it;
- ``/{org}/{repo}/resolve/{revision}/{file}``: ``root/hub/{org}/{repo}/{file}``; ``.bs`` and
  ``.safetensors`` answer 302 to ``/lfs/...`` (an absolute ``Location`` as the Hub's CDN
  redirect, with ``X-Linked-Etag`` and ``X-Linked-Size``), the rest directly; every answer
  carries ``X-Repo-Commit``; a repository listed in ``private`` wants ``Authorization: Bearer
  <token>`` (401 otherwise, with the Hub's ``X-Error-Code``);
- ``/api/models/{org}/{repo}[/revision/{rev}]``: the JSON ``model_info`` reads (``sha``,
  ``siblings``);
- a request in absolute form (``GET http://any.host/files/...``, as sent to an HTTP proxy) is
  answered as its path: the server stands in for a forward proxy (logged with the full URL).

``Faults`` (mutable, read by every request) injects what the client must survive: a bandwidth cap
shared by all connections, latency, a fraction of bodies cut in half (connection closed, or reset
with RST), N answers of 503 or 429 with ``Retry-After``, N stalls mid-body, and a file swapped for
other bytes (a new ETag) after N requests. ``log`` records every request (method, path, Range).
The server runs in a daemon thread and stops with ``close()`` (a context manager); a stalled
handler wakes at once when it does.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs

LFS_SUFFIXES = (".bs", ".safetensors")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@attrs.define
class Faults:
    """What the server does wrong; tests set the fields while it runs."""

    bandwidth: float = 0.0  # bytes/s over all connections (0: no cap)
    latency: float = 0.0  # seconds before each answer
    cut_fraction: float = 0.0  # of GET bodies: send half, then close
    reset: bool = False  # cut with a TCP reset (SO_LINGER 0) rather than a clean close
    status_503: int = 0  # the next N GETs answer 503
    status_429: int = 0  # the next N GETs answer 429
    retry_after: int = 0  # their Retry-After (seconds)
    stalls: int = 0  # the next N GET bodies stop half-way for ``stall_seconds``
    stall_seconds: float = 5.0
    swap_after: int = -1  # after N GETs of ``swap_path``, it serves ``swap_bytes`` (new ETag)
    swap_path: str = ""
    swap_bytes: bytes = b""
    seed: int = 0


@attrs.define
class _Entry:
    method: str
    path: str
    range: str | None
    status: int = 0


class TestServer:
    """``TestServer(root)``: serves ``root`` on 127.0.0.1 (a free port) until ``close()``."""

    __test__ = False  # not a pytest class

    def __init__(self, root: str | Path, *, private: dict[str, str] | None = None,
                 commit: str | None = None, tls: tuple[Path, Path] | None = None):
        """``tls``: (certificate, key) PEM files: serve HTTPS (``self_signed`` makes a pair)."""
        self.root = Path(root)
        self.faults = Faults()
        self.private = dict(private or {})  # "org/repo" -> token it wants
        self.commit = commit or hashlib.sha1(str(self.root).encode()).hexdigest()
        self.log: list[_Entry] = []
        self.extra_siblings: list[str] = []  # names the repository listing adds (hostile tests)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rng = random.Random(0)
        self._gets: dict[str, int] = {}
        self._bucket_t = time.monotonic()  # the bandwidth cap's clock: next free instant
        handler = type("Handler", (_Handler,), {"server_ref": self})
        self.httpd = _Quiet(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        if tls is not None:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="bigsmall-test-http", daemon=True)
        self._thread.start()

    def file_url(self, rel: str) -> str:
        return f"{self.url}/files/{rel}"

    def requests(self, path_part: str = "", method: str = "GET") -> list[_Entry]:
        with self._lock:
            return [e for e in self.log if path_part in e.path and e.method == method]

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self._gets.clear()

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> TestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- used by the handler
    def pace(self, n: int) -> None:
        """Wait until ``n`` more bytes fit under the bandwidth cap (one clock for all)."""
        bw = self.faults.bandwidth
        if bw <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._bucket_t, now)
            self._bucket_t = start + n / bw
            delay = start - now
        if delay > 0:
            self._stop.wait(delay)

    def decide(self, rel: str) -> dict[str, Any]:
        """This GET's faults (consumed from the counters), under the lock."""
        f = self.faults
        with self._lock:
            self._gets[rel] = self._gets.get(rel, 0) + 1
            d: dict[str, Any] = {"status": 0, "cut": False, "stall": False,
                                 "swapped": f.swap_after >= 0 and rel == f.swap_path
                                 and self._gets[rel] > f.swap_after}
            if f.status_503 > 0:
                f.status_503 -= 1
                d["status"] = 503
            elif f.status_429 > 0:
                f.status_429 -= 1
                d["status"] = 429
            elif f.stalls > 0:
                f.stalls -= 1
                d["stall"] = True
            elif f.cut_fraction > 0 and self._rng.random() < f.cut_fraction:
                d["cut"] = True
            return d

    def swapped(self, rel: str) -> bool:
        f = self.faults
        with self._lock:
            return f.swap_after >= 0 and rel == f.swap_path and self._gets.get(rel, 0) > f.swap_after


class _Quiet(ThreadingHTTPServer):
    """A client that goes away mid-answer (the faults do that on purpose) is not news."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def _etag(data_id: str) -> str:
    return '"' + hashlib.sha256(data_id.encode()).hexdigest()[:32] + '"'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_ref: TestServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    # ---------------------------------------------------------------- routing
    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._route(head=False)

    def _route(self, head: bool) -> None:
        srv = self.server_ref
        entry = _Entry(self.command, self.path, self.headers.get("Range"))
        with srv._lock:
            srv.log.append(entry)
        if srv.faults.latency:
            srv._stop.wait(srv.faults.latency)
        path, _, query = self.path.partition("?")
        if path.startswith(("http://", "https://")):  # absolute form: asked of it as of a proxy
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        parts = [p for p in path.split("/") if p]
        if parts == ["_control"]:
            return self._control(query, entry)
        if parts[:1] == ["files"] and len(parts) > 1:
            return self._file("/".join(parts[1:]), head, entry, {})
        if parts[:1] == ["redirect"] and len(parts) > 1:  # as a release page's link to its CDN
            entry.status = 302
            self.send_response(302)
            self.send_header("Location", "/files/" + "/".join(parts[1:]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if parts[:1] == ["lfs"] and len(parts) > 3:
            repo = "/".join(parts[1:3])
            if not self._authorized(repo, entry):
                return None
            return self._file(f"hub/{repo}/" + "/".join(parts[3:]), head, entry,
                              {"X-Repo-Commit": srv.commit})
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self._api("/".join(parts[2:4]), entry)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]), head, entry)
        return self._error(404, entry, "EntryNotFound")

    def _control(self, query: str, entry: _Entry) -> None:
        """``/_control?bandwidth=1e8&cut_fraction=0.1``: set faults from another process."""
        from urllib.parse import parse_qsl

        f = self.server_ref.faults
        for key, value in parse_qsl(query):
            kind = type(getattr(f, key, None))
            if key.startswith("_") or kind not in (int, float, bool, str):
                return self._error(400, entry, f"no fault {key!r}")
            setattr(f, key, value.lower() in ("1", "true") if kind is bool else kind(value))
        self._json(entry, {k: v for k, v in attrs.asdict(f).items() if k != "swap_bytes"})

    def _json(self, entry: _Entry, doc: Any) -> None:
        body = json.dumps(doc).encode()
        entry.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self, repo: str, entry: _Entry) -> bool:
        want = self.server_ref.private.get(repo)
        if want is None or self.headers.get("Authorization") == f"Bearer {want}":
            return True
        self._error(401, entry, "RepoNotFound")
        return False

    def _error(self, status: int, entry: _Entry, code: str = "", extra: dict[str, str] | None = None) -> None:
        entry.status = status
        body = json.dumps({"error": code or str(status)}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _repo_dir(self, repo: str) -> Path:
        return self.server_ref.root / "hub" / repo

    def _api(self, repo: str, entry: _Entry) -> None:
        srv = self.server_ref
        if not self._authorized(repo, entry):
            return
        d = self._repo_dir(repo)
        if not d.is_dir():
            return self._error(404, entry, "RepoNotFound")
        files = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()) + srv.extra_siblings
        self._json(entry, {"id": repo, "modelId": repo, "sha": srv.commit, "private": repo in srv.private,
                           "siblings": [{"rfilename": f} for f in files]})

    def _resolve(self, repo: str, rev: str, rel: str, head: bool, entry: _Entry) -> None:
        srv = self.server_ref
        if not self._authorized(repo, entry):
            return None
        if not self._repo_dir(repo).is_dir():
            return self._error(404, entry, "RepoNotFound")
        if rev not in ("main", srv.commit):
            return self._error(404, entry, "RevisionNotFound")
        target = self._repo_dir(repo) / rel
        if not target.is_file():
            return self._error(404, entry, "EntryNotFound", {"X-Repo-Commit": srv.commit})
        hub_rel = f"hub/{repo}/{rel}"
        if rel.endswith(LFS_SUFFIXES):
            etag, size, _ = self._content(hub_rel)
            entry.status = 302
            self.send_response(302)
            self.send_header("Location", f"{srv.url}/lfs/{repo}/{rel}")
            self.send_header("X-Repo-Commit", srv.commit)
            self.send_header("X-Linked-Etag", etag)
            self.send_header("X-Linked-Size", str(size))
            self.send_header("ETag", _etag("ptr" + rel))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._file(hub_rel, head, entry, {"X-Repo-Commit": srv.commit})

    # ---------------------------------------------------------------- files
    def _content(self, rel: str) -> tuple[str, int, Any]:
        """(ETag, size, read(lo, hi)) of the file as served now: the swapped bytes once a swap
        is due; else the file itself, its ETag from inode, size and mtime (as nginx makes it),
        read by range (a request never reads or hashes the whole file)."""
        srv = self.server_ref
        if srv.swapped(rel):
            data = srv.faults.swap_bytes
            return _etag(hashlib.sha256(data).hexdigest()), len(data), lambda lo, hi: data[lo:hi]
        path = srv.root / rel
        st = path.stat()

        def read(lo: int, hi: int) -> bytes:
            with open(path, "rb") as fh:
                fh.seek(lo)
                return fh.read(hi - lo)

        read.path = path  # type: ignore[attr-defined]  # _send may hand it to sendfile
        return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"', st.st_size, read

    def _file(self, rel: str, head: bool, entry: _Entry, extra: dict[str, str]) -> None:
        srv = self.server_ref
        path = srv.root / rel
        if ".." in Path(rel).parts or not path.is_file():
            return self._error(404, entry, "EntryNotFound", extra)
        d = srv.decide(rel) if not head else {"status": 0, "cut": False, "stall": False}
        if d["status"]:
            return self._error(d["status"], entry, "", {"Retry-After": str(srv.faults.retry_after)})
        etag, size, read = self._content(rel)
        lo, hi, status = 0, size, 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and (if_range is None or if_range == etag):
            m = _RANGE.fullmatch(rng.strip())
            if m is None or (not m.group(1) and not m.group(2)):
                return self._error(400, entry)
            if m.group(1):
                lo = int(m.group(1))
                hi = min(size, int(m.group(2)) + 1) if m.group(2) else size
            else:  # suffix range: the last N bytes
                lo = max(0, size - int(m.group(2)))
            if lo >= size or hi <= lo:
                return self._error(416, entry, "", {"Content-Range": f"bytes */{size}"})
            status = 206
        entry.status = status
        self.send_response(status)
        self.send_header("Content-Length", str(hi - lo))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Content-Type", "application/octet-stream")
        if status == 206:
            self.send_header("Content-Range", f"bytes {lo}-{hi - 1}/{size}")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return None
        n = hi - lo
        stop_at = lo + n // 2 if (d["cut"] or d["stall"]) and n > 1 else hi
        if not self._send(read, lo, stop_at):
            return None
        if d["stall"]:
            srv._stop.wait(srv.faults.stall_seconds)
            self._send(read, stop_at, hi)
        elif stop_at < hi:
            self._cut()
        return None

    def _send(self, read: Any, lo: int, hi: int) -> bool:
        """Bytes [lo, hi) of the file, 1 MiB read at a time, paced in 64 KiB writes under the
        bandwidth cap (uncapped: ``sendfile``, no copy through Python, as nginx serves a
        file: the server then takes less of the CPU the client shares with it); False if the
        client went away."""
        srv = self.server_ref
        step = 1 << 16
        try:
            path = getattr(read, "path", None)
            if path is not None and srv.faults.bandwidth <= 0:
                with open(path, "rb") as fh:
                    self.connection.sendfile(fh, lo, hi - lo)
                return True
            for a in range(lo, hi, 1 << 20):
                block = memoryview(read(a, min(hi, a + (1 << 20))))
                for i in range(0, len(block), step):
                    piece = block[i:i + step]
                    srv.pace(len(piece))
                    if srv._stop.is_set():
                        raise ConnectionAbortedError
                    self.wfile.write(piece)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
            return False
        return True

    def _cut(self) -> None:
        """End this connection mid-body: a reset (RST) or a clean close."""
        self.close_connection = True
        try:
            self.wfile.flush()
            if self.server_ref.faults.reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR) if not self.server_ref.faults.reset else None
        except OSError:
            pass


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (the ``openssl`` command), for ``TestServer(tls=)``;
    a client trusts it through ``SSL_CERT_FILE``."""
    import subprocess

    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def nginx_exe() -> str | None:
    """The nginx binary, if installed (``.ci/run`` installs nginx-light)."""
    import shutil

    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


class Nginx:
    """nginx serving ``root`` on 127.0.0.1 (a free port) until ``close()``: a real server's
    Range, ETag and If-Range, and far less CPU than the Python server. ``work`` holds its
    config, logs and pid file."""

    def __init__(self, root: Path, work: Path):
        import os
        import subprocess

        exe = nginx_exe()
        if exe is None:
            raise FileNotFoundError("nginx is not installed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        user = "user root;" if os.geteuid() == 0 else ""  # workers must read 0700 folders
        conf = work / "nginx.conf"
        temp = " ".join(f"{k}_temp_path {work};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf.write_text(
            f"{user} daemon off; worker_processes 1; pid {work}/nginx.pid; error_log {work}/error.log;\n"
            f"events {{ worker_connections 64; }}\n"
            f"http {{ access_log {work}/access.log; {temp}\n"
            f"  server {{ listen 127.0.0.1:{self.port}; root {root}; }} }}\n")
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc = subprocess.Popen([exe, "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                if self._proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.close()
        raise OSError(f"nginx did not start (see {work}/error.log)")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
        self._proc.wait(10)

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    """``python -m bigsmall.testing.http_server ROOT``: serve ROOT, print the port, stop when
    stdin closes (the parent's end of the pipe: a benchmark's server never outlives it)."""
    import sys

    srv = TestServer(sys.argv[1])
    print(srv.port, flush=True)
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    srv.close()


if __name__ == "__main__":
    main()
