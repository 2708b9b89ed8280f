"""Remote containers over HTTP: a real server on 127.0.0.1 (bigsmall/testing/http_server.py),
range requests, ETag pinning, fault injection. Never the internet."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.errors import RemoteChangedError, RemoteError, RemoteNotFoundError
from bigsmall.io.reader import BsFile
from bigsmall.io.remote import RemoteOptions, RemoteSource
from bigsmall.testing.http_server import TestServer
from bigsmall.testing.synthetic import write_safetensors

FAST = dict(backoff=0.01, read_timeout=5.0)


def _bf16(rng: np.random.Generator, shape: tuple[int, ...]) -> bytes:
    w = rng.normal(0, 0.02, shape).astype(np.float32)
    return (w.view(np.uint32) >> 16).astype(np.uint16).tobytes()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestServer, Path]]:
    """A folder with a multi-tensor synthetic model (``m.bs``, ~840 KB) and a tiny one, served."""
    root = tmp_path_factory.mktemp("www")
    rng = np.random.default_rng(7)
    t = {f"model.layers.{i}.w": ("BF16", (256, 300), _bf16(rng, (256, 300))) for i in range(8)}
    t["embed"] = ("F32", (100, 50), rng.normal(0, 1, (100, 50)).astype(np.float32).tobytes())
    t["head"] = ("F32", (100, 50), t["embed"][2])  # tied: a ref
    t["empty"] = ("F16", (0, 3), b"")
    write_safetensors(root / "m.safetensors", t, {"format": "pt"})
    bigsmall.compress(root / "m.safetensors", root / "m.bs")
    write_safetensors(root / "tiny.safetensors", {"x": ("F32", (3,), np.float32([1, -0.0, np.nan]).tobytes())})
    bigsmall.compress(root / "tiny.safetensors", root / "tiny.bs")
    with TestServer(root) as srv:
        yield srv, root


@pytest.fixture
def server(served: tuple[TestServer, Path]) -> Iterator[TestServer]:
    srv, _ = served
    srv.reset_log()
    srv.faults.__init__()  # type: ignore[misc]
    yield srv
    srv.faults.__init__()  # type: ignore[misc]


def _src(srv: TestServer, name: str = "m.bs", **kw: object) -> RemoteSource:
    return RemoteSource(srv.file_url(name), options=RemoteOptions(**{**FAST, **kw}))  # type: ignore[arg-type]


def _all_local(root: Path) -> dict[str, bytes]:
    with BsFile(root / "m.bs") as bs:
        return {n: bs.read_bytes(n).tobytes() for n in bs.names()}


def _all_remote(src: RemoteSource, ahead: int = 32 << 20) -> dict[str, bytes]:
    with BsFile(src.url, source=src) as bs:
        entries = list(bs.container.tensors)
        return {e.name: out.tobytes() for e, out in bs.iter_decoded(entries, ahead_bytes=ahead)}


def test_header_and_index_in_one_round_trip(server: TestServer) -> None:
    # the first request (header) and a suffix request (the index, at the end) go out together
    with _src(server, prefix_bytes=4096) as src, BsFile(src.url, source=src) as bs:
        assert src.stats.requests == 2 and src.stats.retries == 0
        assert len(src._tail) >= bs.header["index_length"]  # the index came with the tail
    assert sorted(e.range for e in server.requests("/files/m.bs")) == ["bytes=-262144", "bytes=0-4095"]
    server.reset_log()
    with _src(server, prefix_bytes=4096, tail_bytes=0) as src, BsFile(src.url, source=src):
        assert src.stats.requests == 2  # no tail asked for: the index is the second request
    second = server.requests("/files/m.bs")[1].range
    assert second is not None and second.startswith("bytes=") and not second.startswith("bytes=-")
    server.reset_log()
    with _src(server, "tiny.bs", tail_bytes=0) as src, BsFile(src.url, source=src) as bs:  # all in the prefix
        assert bs.read("x").view(np.uint32).tolist() == np.float32([1, -0.0, np.nan]).view(np.uint32).tolist()
        assert src.stats.requests == 1
    assert len(server.requests("/files/tiny.bs")) == 1


@pytest.mark.parametrize(("prefix", "tail"), [(300_000, 600_000), (4096, 500_000), (100_000, 4096)])
def test_bytes_of_the_first_round_trip_are_not_fetched_again(server: TestServer, prefix: int, tail: int) -> None:
    size = (server.root / "m.bs").stat().st_size
    with _src(server, prefix_bytes=prefix, tail_bytes=tail) as src:
        assert _all_remote(src) == _all_local(server.root)
        extra = src.stats.bytes - prefix - tail  # what the blob requests fetched
        if prefix + tail >= size:
            assert src.stats.requests == 2 and extra == 0  # the two halves overlap: all in hand
        else:
            assert 0 < extra <= size - prefix - tail  # only what neither of them brought


def test_tail_of_another_version_is_not_used(server: TestServer) -> None:
    # the file is replaced between the two first requests (same size, other bytes): whichever
    # came second does not match the other's ETag, so the tail is dropped (the index is then
    # read pinned to the first request's version, as without a tail)
    f = server.faults
    f.swap_path, f.swap_bytes, f.swap_after = "m.bs", (server.root / "m.bs").read_bytes()[:-1] + b"x", 1
    with _src(server, prefix_bytes=4096) as src:
        assert src.stats.requests == 2 and len(src._tail) == 0
    f.swap_after = -1
    with _src(server, prefix_bytes=4096) as src:  # the control: same file, the tail kept
        assert len(src._tail) == 256 << 10


def test_one_tensor_costs_only_its_blob(server: TestServer) -> None:
    with _src(server, prefix_bytes=4096) as src, BsFile(src.url, source=src) as bs:
        server.reset_log()
        entry = bs.entry("model.layers.2.w")
        got = bs.read_bytes("model.layers.2.w")
        ranges = [e.range for e in server.requests("/files/m.bs")]
        assert ranges == [f"bytes={entry.offset}-{entry.offset + entry.length - 1}"]
    with BsFile(server.root / "m.bs") as local:
        assert got.tobytes() == local.read_bytes("model.layers.2.w").tobytes()


def test_whole_load_is_bit_exact_coalesced_and_split(server: TestServer) -> None:
    want = _all_local(server.root)
    with _src(server, prefix_bytes=4096, request_bytes=1 << 20) as src:
        assert _all_remote(src) == want
        blob_reqs = src.stats.requests - 2
    size = (server.root / "m.bs").stat().st_size
    assert blob_reqs == 1  # every blob in one coalesced request (< 1 MiB in all)
    server.reset_log()
    with _src(server, prefix_bytes=4096, request_bytes=40_000, tail_bytes=0) as src:
        assert _all_remote(src) == want
        reqs = server.requests("/files/m.bs")[2:]
    spans = [tuple(int(v) for v in r.range[6:].split("-")) for r in reqs]  # type: ignore[index]
    assert all(b - a + 1 <= 40_000 for a, b in spans)
    assert len(spans) >= size // 40_000  # split into pieces
    assert len({a for a, _ in spans}) == len(spans)  # no byte range fetched twice


def test_byte_window_bounds_memory(server: TestServer) -> None:
    # the pipeline keeps at most ``ahead`` decoded bytes in flight; the source at most the
    # window of fetched bytes beyond what the pipeline holds
    with _src(server, prefix_bytes=4096, request_bytes=16_384, window_bytes=100_000) as src:
        assert _all_remote(src, ahead=50_000) == _all_local(server.root)
        largest = max(t.length for t in BsFile(server.root / "m.bs").container.tensors)
        size = (server.root / "m.bs").stat().st_size
        # the window + the blobs the pipeline holds (ahead: the one decoding, the next) + the
        # blob a started request fills
        assert 0 < src.stats.peak_held <= 100_000 + 3 * largest < size / 2


def test_load_into_torch_equals_local(server: TestServer) -> None:
    torch = pytest.importorskip("torch")
    local = bigsmall.load(server.root / "m.bs")
    remote = bigsmall.load(server.file_url("m.bs"))
    assert local.keys() == remote.keys()
    for k, v in local.items():
        assert v.dtype == remote[k].dtype and v.shape == remote[k].shape
        assert torch.equal(v.reshape(-1).view(torch.uint8), remote[k].reshape(-1).view(torch.uint8))


@pytest.mark.parametrize("fault", ["cut", "reset", "503", "429", "stall"])
def test_faults_are_retried_and_resume(server: TestServer, fault: str) -> None:
    want = _all_local(server.root)
    f = server.faults
    if fault == "cut":
        f.cut_fraction = 0.5
    elif fault == "reset":
        f.cut_fraction, f.reset = 0.5, True
    elif fault == "503":
        f.status_503, f.retry_after = 2, 1
    elif fault == "429":
        f.status_429, f.retry_after = 1, 0
    else:
        f.stalls, f.stall_seconds = 1, 3.0
    import time

    t0 = time.perf_counter()
    # faults of "the next N requests": no speculative tail request, which would take one of them
    # and never retry it
    tail = 256 << 10 if fault in ("cut", "reset") else 0
    with _src(server, request_bytes=64_000, read_timeout=0.5, tail_bytes=tail) as src:
        assert _all_remote(src) == want
        stats = src.stats
    elapsed = time.perf_counter() - t0
    if fault == "503":
        assert elapsed >= 2.0  # Retry-After: 1, twice (the backoff alone is 0.01 s)
    if fault == "stall":
        assert elapsed < 3.0  # the stall was cut at the read timeout, not waited out
    kind = {"cut": "reset", "reset": "reset", "503": "503", "429": "429", "stall": "stall"}[fault]
    assert stats.faults.get(kind, 0) >= 1 and stats.retries >= 1
    if fault in ("cut", "reset"):  # a cut body resumes where it stopped: few bytes twice
        resumed = [e.range for e in server.requests("/files/m.bs")]
        # + the first request's overlap with the blobs, + a cut (speculative) tail, thrown away
        assert stats.bytes <= (server.root / "m.bs").stat().st_size + 65536 + 262144
        assert len(resumed) > stats.retries
    if fault == "503":
        assert stats.faults["503"] == 2


def test_retries_are_bounded(server: TestServer) -> None:
    server.faults.status_503 = 1000
    with pytest.raises(RemoteError, match="gave up after 3 tries"):
        _src(server, retries=2)


def test_file_swapped_mid_read_is_a_typed_error_and_nothing_written(server: TestServer, tmp_path: Path) -> None:
    other = (server.root / "tiny.bs").read_bytes() * 50
    f = server.faults
    f.swap_path, f.swap_bytes, f.swap_after = "m.bs", other, 2  # after header + index
    out = tmp_path / "restored.safetensors"
    with pytest.raises(RemoteChangedError, match="changed on the server"):
        bigsmall.decompress(server.file_url("m.bs"), out, threads=1)
    assert list(tmp_path.iterdir()) == []


def test_not_found_names_the_url(server: TestServer) -> None:
    url = server.file_url("nope.bs")
    with pytest.raises(RemoteNotFoundError, match=url.replace("?", r"\?")):
        bigsmall.open(url)


def test_cli_info_verify_decompress_from_url(server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bigsmall.cli import main

    url = server.file_url("m.bs")
    assert main(["info", url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["compressed_bytes"] == (server.root / "m.bs").stat().st_size
    assert main(["verify", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    out = tmp_path / "r.safetensors"
    assert main(["decompress", url, "-o", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["remote"]["requests"] >= 2
    sha = hashlib.sha256((server.root / "m.safetensors").read_bytes()).hexdigest()
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
    assert main(["info", server.file_url("missing.bs")]) == 1
    assert "404" in capsys.readouterr().err


def test_minilm_over_http_is_bit_exact(minilm_bf16_folder_bs: Path, tmp_path: Path) -> None:
    """A real model (MiniLM bf16 folder container) loaded over HTTP equals the local load."""
    torch = pytest.importorskip("torch")
    link = tmp_path / "minilm.bs"
    link.symlink_to(minilm_bf16_folder_bs)
    with TestServer(tmp_path) as srv:
        srv.faults.cut_fraction = 0.1
        remote = bigsmall.load(srv.file_url("minilm.bs"))
    local = bigsmall.load(minilm_bf16_folder_bs)
    assert local.keys() == remote.keys()
    assert all(torch.equal(v.reshape(-1).view(torch.uint8), remote[k].reshape(-1).view(torch.uint8))
               for k, v in local.items())


def test_a_redirect_is_followed_once(server: TestServer) -> None:
    want = _all_local(server.root)
    with RemoteSource(f"{server.url}/redirect/m.bs", options=RemoteOptions(**FAST)) as src:  # type: ignore[arg-type]
        assert _all_remote(src) == want
    # the first round trip's two requests (header, tail) are redirected; the later ones go
    # straight where they led
    assert len(server.requests("/redirect/")) == 2
    assert len(server.requests("/files/m.bs")) >= 2


def test_close_stops_a_stalled_request_at_once(server: TestServer) -> None:
    import threading
    import time

    src_big = _src(server, prefix_bytes=4096, read_timeout=30.0)
    server.faults.stalls, server.faults.stall_seconds = 100, 30.0
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            src_big.view(100_000, 200_000)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    th = threading.Thread(target=reader)
    th.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    src_big.close()
    th.join(10)
    assert not th.is_alive() and time.perf_counter() - t0 < 5
    assert errors and isinstance(errors[0], RemoteError)


@pytest.fixture
def nginx(served: tuple[TestServer, Path], tmp_path: Path) -> Iterator[str]:
    """nginx (a real server: Range, ETag, If-Range as deployed) on 127.0.0.1 serving the same
    folder, started for the test and stopped with it. `.ci/run` installs nginx-light."""
    from bigsmall.testing.http_server import Nginx, nginx_exe

    if nginx_exe() is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    with Nginx(served[1], tmp_path) as srv:
        yield srv.url


def test_nginx_serves_a_bit_exact_load_in_ranges(nginx: str, served: tuple[TestServer, Path]) -> None:
    root = served[1]
    with RemoteSource(f"{nginx}/m.bs", options=RemoteOptions(prefix_bytes=4096, **FAST)) as src:  # type: ignore[arg-type]
        with BsFile(src.url, source=src) as bs:
            assert src.stats.requests == 2 and src.etag  # header + index; nginx's ETag pinned
            entry = bs.entry("model.layers.3.w")
            before = src.stats.bytes
            with BsFile(root / "m.bs") as local:
                assert bs.read_bytes(entry.name).tobytes() == local.read_bytes(entry.name).tobytes()
            assert src.stats.bytes - before == entry.length
    with RemoteSource(f"{nginx}/m.bs", options=RemoteOptions(request_bytes=100_000, **FAST)) as src:  # type: ignore[arg-type]
        assert _all_remote(src) == _all_local(root)
        assert src.stats.retries == 0


def test_bad_remote_files_are_typed_errors(server: TestServer) -> None:
    from bigsmall.errors import FormatError, TruncatedError

    (server.root / "empty.bs").write_bytes(b"")
    (server.root / "cut.bs").write_bytes((server.root / "m.bs").read_bytes()[:100_000])
    with pytest.raises(FormatError, match="empty file"):
        bigsmall.open(server.file_url("empty.bs"))
    with pytest.raises(FormatError, match="looks like a safetensors file"):
        bigsmall.open(server.file_url("m.safetensors"))
    with pytest.raises(TruncatedError, match="header promises"):
        bigsmall.open(server.file_url("cut.bs"))


def test_retries_are_logged(server: TestServer, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    server.faults.status_503, server.faults.retry_after = 1, 0
    with caplog.at_level(logging.DEBUG, logger="bigsmall.remote"), _src(server, tail_bytes=0):
        pass
    assert "503 at byte 0, retry 1" in caplog.text and server.file_url("m.bs") in caplog.text


def test_ranges_asked_for_in_order_are_fetched_in_order(server: TestServer) -> None:
    with _src(server, prefix_bytes=4096, connections=1) as src, BsFile(src.url, source=src) as bs:
        server.reset_log()
        blobs = [bs.entry(f"model.layers.{i}.w") for i in (5, 1, 3)]
        readies = [src.stream_view(e.offset, e.length)[1] for e in blobs]  # none waits
        for e, ready in zip(blobs, readies, strict=True):
            ready(0, e.length)
        starts = [int(r.range[6:].split("-")[0]) for r in server.requests("/files/m.bs")]  # type: ignore[index]
        assert starts == [e.offset for e in blobs]


def test_threads_read_tensors_at_once(server: TestServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    want = _all_local(server.root)
    with _src(server, prefix_bytes=4096, connections=2) as src, BsFile(src.url, source=src) as bs:
        names = [n for n in bs.names() for _ in range(3)]  # each tensor by three threads
        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(lambda n: (n, bs.read_bytes(n).tobytes()), names))
        assert all(data == want[n] for n, data in got)
        rep = bs.verify("fast")
        assert rep.ok and rep.tensors_checked == len(want)


def test_verify_fast_fetches_the_heads_ahead_in_parallel(server: TestServer) -> None:
    import time

    with BsFile(server.root / "m.bs") as local:
        want = local.verify("fast")
        heads = {(s.offset, s.head_len) for s in map(local._resolve, local.container.tensors) if s.head_len}
    server.faults.latency = 0.1  # per request: one by one, the heads would take len(heads) * 0.1 s
    with _src(server, prefix_bytes=4096, tail_bytes=0) as src, BsFile(src.url, source=src) as bs:
        before, t0 = src.stats.as_dict(), time.perf_counter()
        rep = bs.verify("fast")
        elapsed = time.perf_counter() - t0
        requests, fetched = src.stats.requests - before["requests"], src.stats.bytes - before["bytes"]
    assert rep == want and rep.ok and rep.tensors_checked == len(want.problems) + want.tensors_checked
    assert 1 <= requests <= len(heads)  # at most one request per head (neighbours coalesced)
    assert fetched <= sum(n for _, n in heads) + 4096 * len(heads)  # the heads, not the blobs
    assert len(heads) >= 8 and elapsed < 0.6 * len(heads) * 0.1, (elapsed, len(heads))


def test_http_proxy_from_the_environment(server: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # HTTP_PROXY names the test server; the file's own host does not exist: every byte came
    # through the proxy, asked for in absolute form
    for key in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("http_proxy", server.url)
    want = _all_local(server.root)
    with RemoteSource("http://models.invalid/files/m.bs", options=RemoteOptions(**FAST)) as src:  # type: ignore[arg-type]
        assert _all_remote(src) == want
        n = src.stats.requests
    proxied = server.requests("http://models.invalid/files/m.bs")
    assert len(proxied) == n >= 3 and all(e.status == 206 for e in proxied)


def test_https_with_a_trusted_and_an_untrusted_certificate(served: tuple[TestServer, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from bigsmall.testing.http_server import self_signed

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    _, root = served
    with TestServer(root, tls=self_signed(tmp_path)) as srv:
        url = srv.file_url("m.bs")
        assert url.startswith("https://127.0.0.1:")
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
        with RemoteSource(url, options=RemoteOptions(**FAST)) as src:  # type: ignore[arg-type]
            assert _all_remote(src) == _all_local(root)
        monkeypatch.delenv("SSL_CERT_FILE")  # certifi's roots: the certificate is not trusted
        with pytest.raises(RemoteError, match="certificate"):
            RemoteSource(url, options=RemoteOptions(**FAST))  # type: ignore[arg-type]
        assert len(srv.requests("/files/m.bs")) >= 3  # (the refused handshake logs no request)


def test_random_ranges_views_and_faults_give_the_file_bytes(server: TestServer) -> None:
    """The source's scheduling (plan, coalescing, splitting, window, urgency, release) against
    plain slicing of the file, on seeded random ranges, with bodies cut and reset."""
    import random

    rng = random.Random(2026)
    data = bytes(np.random.default_rng(1).integers(0, 256, 300_000, dtype=np.uint8))
    (server.root / "random.bin").write_bytes(data)
    server.faults.cut_fraction, server.faults.reset = 0.2, True
    for _ in range(3):
        opts = dict(prefix_bytes=rng.choice([512, 4096, 65536]), request_bytes=rng.choice([3000, 20_000, 1 << 20]),
                    window_bytes=rng.choice([10_000, 100_000, 1 << 20]), connections=rng.choice([1, 2, 4]),
                    coalesce_gap=rng.choice([0, 100, 4096]))
        with _src(server, "random.bin", **opts) as src:
            ranges = []
            for _ in range(25):
                a = rng.randrange(0, len(data))
                ranges.append((a, rng.randrange(1, min(30_000, len(data) - a) + 1)))
            planned = ranges[: rng.randrange(0, len(ranges))]
            src.plan(planned)
            for off, n in ranges:
                how = rng.choice(["view", "stream", "read"])
                if how == "read":
                    assert src.read(off, n) == data[off:off + n]
                    if (off, n) in planned:
                        assert bytes(src.view(off, n)) == data[off:off + n]
                        src.release(off, n)
                    continue
                if how == "view":
                    got = bytes(src.view(off, n))
                else:
                    buf, ready = src.stream_view(off, n)
                    ready(0, n)
                    got = bytes(buf)
                assert got == data[off:off + n], (how, off, n, opts)
                src.release(off, n)


def test_streaming_loader_from_a_url_is_bit_exact(minilm_bf16_folder_bs: Path, tmp_path: Path) -> None:
    """StreamingLoader takes a URL as it is (BsFile does): each layer costs its own ranges."""
    torch = pytest.importorskip("torch")
    from bigsmall.torch.streaming import StreamingLoader

    (tmp_path / "minilm.bs").symlink_to(minilm_bf16_folder_bs)
    local = bigsmall.load(minilm_bf16_folder_bs)
    with TestServer(tmp_path) as srv, StreamingLoader(srv.file_url("minilm.bs")) as sl:
        got = dict(sl.load_non_layer_tensors())
        layers = 0
        for _, tensors in sl.iter_layers():
            got.update(tensors)
            layers += 1
        requests = len(srv.requests("/files/minilm.bs"))
    assert layers == 6 and got.keys() == local.keys()
    assert all(torch.equal(v.reshape(-1).view(torch.uint8), got[k].reshape(-1).view(torch.uint8))
               for k, v in local.items())
    # header, index, then the blobs in 4 MiB requests at most, one more per layer (its start)
    assert requests <= 2 + -(-minilm_bf16_folder_bs.stat().st_size // (4 << 20)) + 7, requests


def test_cli_decompress_says_what_the_download_cost(server: TestServer, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from bigsmall.cli import main

    monkeypatch.setenv("BIGSMALL_HTTP_TAIL", "0")  # the 503 goes to the first request, retried
    server.faults.status_503, server.faults.retry_after = 1, 0
    assert main(["decompress", server.file_url("m.bs"), "-o", str(tmp_path / "x.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "fetched in" in out and "requests, 1 retried" in out


def test_from_pretrained_from_a_url_equals_the_local_model(minilm_bf16_folder_bs: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    (tmp_path / "minilm.bs").symlink_to(minilm_bf16_folder_bs)
    local = bigsmall.from_pretrained(minilm_bf16_folder_bs).state_dict()
    with TestServer(tmp_path) as srv:
        remote = bigsmall.from_pretrained(srv.file_url("minilm.bs")).state_dict()
    assert local.keys() == remote.keys()
    assert all(torch.equal(v.reshape(-1).view(torch.uint8), remote[k].reshape(-1).view(torch.uint8))
               for k, v in local.items())
