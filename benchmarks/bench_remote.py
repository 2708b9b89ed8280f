"""Remote load: ``bigsmall.load(url)`` against fetching the raw safetensors from the same server.

A ``TestServer`` (bigsmall/testing/http_server.py, a threaded Python server on 127.0.0.1, in a
process of its own so that it does not share the GIL with the decoder) serves the model's
``.safetensors`` and ``.bs`` from one folder. Measured, each a median of
``--repeat`` runs with the variants interleaved (one of each per round):

- at a server-side bandwidth cap (``--cap-mbps``, default 100 MB/s, one clock shared by all
  connections): ``bigsmall.load(url)`` vs a plain GET of the raw ``.safetensors`` read into
  torch tensors (``safetensors.torch.load`` of the bytes); the floor ``compressed bytes / cap``
  is printed beside them;
- uncapped loopback: ``bigsmall.load(url)`` vs ``bigsmall.load(path)`` of the same ``.bs``; where
  nginx is installed, also ``load(url)`` from nginx (a real server, much lighter on the CPU
  the client shares with it);
- with ``--cut 0.1``: also the capped remote load through a server that cuts that fraction of
  response bodies in half (retries resume), bit-exactness checked against the local load;
- with ``--rss``: how much a load raises the peak RSS of a warm process (``_rss``), locally vs
  from the URL (uncapped), medians of ``--repeat`` children, interleaved;
- with ``--stream`` (MiniLM): ``StreamingModel(url)`` of the model folder's ``.bs`` at the cap:
  the bytes received and the time when block 0's forward had run, against the file's size and
  the whole forward pass's time, and the output's bits against a local full load.

    python benchmarks/bench_remote.py [--model minilm-bf16|whisper-fp16] [--cap-mbps 100]
                                      [--repeat 3] [--cut 0.1] [--rss] [--stream]

The Python server itself costs CPU (it shares the machine's cores with the decoder), so the
uncapped figure is a lower bound of what a real CDN allows. Beside each median time, the
client process's median CPU seconds (user + system, all threads; the servers' own CPU not
included): on a machine other work shares, it says what the client spent where the wall time
says mostly how busy the machine was.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bigsmall
from bigsmall.testing import corpus
from bigsmall.testing.http_server import Nginx, nginx_exe


def _raw_fetch(url: str) -> dict[str, Any]:
    """GET the whole safetensors file into memory, then torch tensors from the bytes. The GET
    reads into one preallocated buffer (``http.client`` ``readinto``, as ``RemoteSource`` does):
    the fastest plain download Python has, so the baseline is not slowed by a client's copies."""
    import http.client
    from urllib.parse import urlsplit

    from safetensors.torch import load

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=60)
    try:
        conn.request("GET", u.path)
        r = conn.getresponse()
        if r.status != 200:
            raise SystemExit(f"{url}: HTTP {r.status}")
        buf = bytearray(int(r.headers["content-length"]))
        view, pos = memoryview(buf), 0
        while pos < len(buf):
            n = r.readinto(view[pos:])
            if n <= 0:
                raise SystemExit(f"{url}: body cut at {pos}")
            pos += n
        view.release()
    finally:
        conn.close()
    return load(bytes(buf))


def _control(url: str, **faults: float) -> None:
    """Set the test server's faults (``/_control``) from this process."""
    from urllib.parse import urlencode
    from urllib.request import urlopen

    with urlopen(f"{url}/_control?{urlencode(faults)}", timeout=30) as r:
        r.read()


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(
        torch.equal(a[k].reshape(-1).view(torch.uint8), b[k].reshape(-1).view(torch.uint8)) for k in a)


def _cpu() -> float:
    """This process's CPU seconds (user + system, every thread)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, this process's CPU seconds, result) of ``fn()``."""
    c0, t0 = _cpu(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, _cpu() - c0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("minilm-bf16", "whisper-fp16"), default="minilm-bf16")
    ap.add_argument("--cap-mbps", type=float, default=100.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cut", type=float, default=0.0, help="also: fraction of bodies cut in half")
    ap.add_argument("--rss", action="store_true", help="also: peak RSS of a local vs a remote load")
    ap.add_argument("--stream", action="store_true", help="also: StreamingModel(url), first layer (MiniLM)")
    args = ap.parse_args()
    if args.stream and args.model != "minilm-bf16":
        raise SystemExit("--stream runs MiniLM (a text encoder's inputs)")
    src = corpus.minilm_bf16() if args.model == "minilm-bf16" else corpus.whisper_tiny_safetensors()
    with tempfile.TemporaryDirectory(prefix="bigsmall-bench-remote-") as d:
        root = Path(d)
        (root / "model.safetensors").write_bytes(src.read_bytes())
        bigsmall.compress(root / "model.safetensors", root / "model.bs", verify=False)
        raw_mb = (root / "model.safetensors").stat().st_size / 1e6
        bs_mb = (root / "model.bs").stat().st_size / 1e6
        reference = bigsmall.load(root / "model.bs")  # also warms the kernels
        proc = subprocess.Popen([sys.executable, "-m", "bigsmall.testing.http_server", str(root)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        (root / "nginx").mkdir()
        ngx = Nginx(root, root / "nginx") if nginx_exe() else None
        try:
            assert proc.stdout is not None
            url = f"http://127.0.0.1:{int(proc.stdout.readline())}"
            bs_url, raw_url = f"{url}/files/model.bs", f"{url}/files/model.safetensors"
            cases: dict[str, tuple[float, Callable[[], Any]]] = {
                "capped: bigsmall.load(url)": (args.cap_mbps, lambda: bigsmall.load(bs_url)),
                "capped: raw safetensors GET + load": (args.cap_mbps, lambda: _raw_fetch(raw_url)),
                "uncapped: bigsmall.load(url)": (0.0, lambda: bigsmall.load(bs_url)),
                "uncapped: bigsmall.load(local .bs)": (0.0, lambda: bigsmall.load(root / "model.bs")),
            }
            if ngx is not None:
                ngx_url = f"{ngx.url}/model.bs"
                cases["uncapped nginx: bigsmall.load(url)"] = (0.0, lambda: bigsmall.load(ngx_url))
            if args.cut:
                cases[f"capped, {args.cut:.0%} bodies cut: load(url)"] = (args.cap_mbps, lambda: bigsmall.load(bs_url))
            times: dict[str, list[float]] = {k: [] for k in cases}
            cpus: dict[str, list[float]] = {k: [] for k in cases}
            for _ in range(args.repeat):
                for name, (cap, fn) in cases.items():
                    cut = args.cut if "cut" in name else 0.0
                    _control(url, bandwidth=cap * 1e6, cut_fraction=cut)
                    t, c, out = _timed(fn)
                    if not _same(out, reference):
                        raise SystemExit(f"{name}: tensors differ from the local load")
                    times[name].append(t)
                    cpus[name].append(c)
                    del out
            _control(url, bandwidth=0, cut_fraction=0)
            rss = _rss(root / "model.bs", bs_url, args.repeat) if args.rss else None
            stream = ""
            if args.stream:
                bigsmall.compress(corpus.minilm_bf16_dir(), root / "folder.bs", verify=False)
                _control(url, bandwidth=args.cap_mbps * 1e6)
                stream = _stream(root / "folder.bs", f"{url}/files/folder.bs", args.repeat)
                _control(url, bandwidth=0)
        finally:
            proc.communicate(timeout=30)  # closes its stdin: the server stops
            if ngx is not None:
                ngx.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = bs_mb / args.cap_mbps
    print(f"{args.model}: safetensors {raw_mb:.1f} MB, .bs {bs_mb:.1f} MB; cap {args.cap_mbps:g} MB/s; "
          f"medians of {args.repeat}, interleaved")
    print(f"{'case':44s} {'median s':>9s} {'cpu s':>6s}  runs")
    for k, v in med.items():
        print(f"{k:44s} {v:9.3f} {statistics.median(cpus[k]):6.3f}  " + " ".join(f"{t:.3f}" for t in times[k]))
    cap_bs, cap_raw = med["capped: bigsmall.load(url)"], med["capped: raw safetensors GET + load"]
    print(f"capped: load(url) / (.bs MB / cap = {floor:.3f} s) = {cap_bs / floor:.2f}x; "
          f"raw fetch / load(url) = {cap_raw / cap_bs:.2f}x")
    un_url, un_local = med["uncapped: bigsmall.load(url)"], med["uncapped: bigsmall.load(local .bs)"]
    print(f"uncapped: load(url) speed = {un_local / un_url:.2f}x of load(local)")
    if "uncapped nginx: bigsmall.load(url)" in med:
        print(f"uncapped nginx: load(url) speed = {un_local / med['uncapped nginx: bigsmall.load(url)']:.2f}x "
              "of load(local)")
    if rss is not None:
        print(f"peak RSS growth of a load: local {rss[0]:.0f} MB, url {rss[1]:.0f} MB "
              f"({rss[1] - rss[0]:+.0f} MB)")
    if args.stream:
        print(stream)


def _stream(path: Path, url: str, repeat: int) -> str:
    """``StreamingModel(url)`` forward passes of MiniLM: when block 0 had run, how many body
    bytes had arrived and how long it had taken, against the file's size and the whole pass;
    the output's bits are checked against a local full load (medians of ``repeat``)."""
    import torch

    from bigsmall.torch.runner import digest

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (2, 32), generator=g)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    with torch.no_grad():
        want = digest(bigsmall.from_pretrained(path)(**inputs).last_hidden_state)
    size = path.stat().st_size
    rows: list[tuple[float, float, float]] = []
    for _ in range(repeat):
        first: list[tuple[int, float]] = []
        holder: list[Any] = []

        def on_layer(i: int, first: list[tuple[int, float]] = first, holder: list[Any] = holder) -> None:
            if i == 0:  # holder: [StreamingModel, start time]
                first.append((holder[0].loader._bs.source.stats.bytes, time.perf_counter() - holder[1]))

        t0 = time.perf_counter()
        with bigsmall.StreamingModel(url, on_layer=on_layer) as sm, torch.no_grad():
            holder += [sm, t0]
            got = digest(sm(**inputs).last_hidden_state)
            total_t = time.perf_counter() - t0
        if got != want:
            raise SystemExit("StreamingModel(url): output differs from a local full load")
        rows.append((first[0][0] / 1e6, first[0][1], total_t))
    mb, t1, tt = (statistics.median(r[k] for r in rows) for k in range(3))
    return (f"StreamingModel(url) at the cap, .bs {size / 1e6:.1f} MB: block 0 ran with {mb:.1f} MB "
            f"received ({mb * 1e6 / size:.0%}) after {t1:.3f} s; forward done after {tt:.3f} s; "
            "output bit-identical to a local full load; runs (MB, s, s): "
            + " ".join(f"{a:.1f}/{b:.3f}/{c:.3f}" for a, b, c in rows))


def _rss(path: Path, url: str, repeat: int) -> tuple[float, float]:
    """Median peak RSS growth (MB) of a load, local then from ``url``, interleaved: each in a
    fresh process that loads once to warm up (kernels, imports), frees it, resets the peak
    (``/proc/self/clear_refs``) and loads again; the peak (``VmHWM``) minus the RSS before."""
    code = (
        "import gc, sys, bigsmall\n"
        "def kb(key):\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))\n"
        "sd = bigsmall.load(sys.argv[1]); del sd; gc.collect()\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "base = kb('VmRSS:'); sd = bigsmall.load(sys.argv[1])\n"
        "print((kb('VmHWM:') - base) / 1024)\n")
    got: dict[str, list[float]] = {"local": [], "url": []}
    for _ in range(repeat):
        for key, src in (("local", str(path)), ("url", url)):
            out = subprocess.run([sys.executable, "-c", code, src], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"peak RSS child failed: {out.stderr.strip().splitlines()[-1:]}")
            got[key].append(float(out.stdout.split()[-1]))
    print("peak RSS growth runs (MB): " + "; ".join(f"{k} " + " ".join(f"{v:.1f}" for v in vs)
                                                   for k, vs in got.items()))
    return statistics.median(got["local"]), statistics.median(got["url"])


if __name__ == "__main__":
    main()
