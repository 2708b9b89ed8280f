"""Issue #3 benchmark: bigsmall next to zstd-3, byte-grouped zstd-3 and (optionally) ZipNN and the
bigsmall 4.0 package from PyPI.

bigsmall runs at both levels (``bigsmall``: default, coder ``auto``; ``bigsmall_fast``:
``level="fast"``) and with each entropy coder forced (``bigsmall_rans``: ``coder="rans"``,
format 1.1; ``bigsmall_prefix``: ``coder="prefix"``, format 1.2), plus the fastest setting
(``bigsmall_fast_prefix``: ``level="fast", coder="prefix"``) and the smallest ``auto`` files
(``bigsmall_max``: ``level="max"``), each with compress's default
verify pass (every coded tensor decoded again before it is written).

All tools run in the same invocation on the same files (page cache warm), file -> file, in
--repeat interleaved rounds (each tool once per round), medians over the rounds. bigsmall's ``compress`` and ``decompress`` are durable by default (the output is fsynced
before the rename) and are also timed with ``durable=False`` (``--no-fsync``); ZipNN's timing is
reported as ZipNN's own benchmarks do (no fsync) and, next to it, with an fsync of its output
before the clock stops, so the two can be compared doing the same work either way. Peers are never imported from this project: set BIGSMALL_PEERS_PYTHON to the
python of a separate venv that has them (``python -m venv /tmp/peers &&
/tmp/peers/bin/pip install torch==2.13.0 numpy zstandard safetensors blosc2 constriction numba tqdm
huggingface-hub && /tmp/peers/bin/pip install --no-deps zipnn bigsmall==4.0.0``); a child
process runs them there (bigsmall 4.0 with its PyPI version check disabled).

    python benchmarks/peers.py [--repeat 5] [--models minilm-bf16,...,corpus-bf16] [--tools ...]
                               [--json] [--plot peers.png]

``corpus-bf16`` is the speed issue's larger file: every corpus tensor cast to bf16 (266 MB,
``bigsmall.testing.corpus.corpus_bf16``), so per-file fixed costs do not flatter the figures.

``--plot`` draws ratio against restore speed per tool and model (``bigsmall/io/plot.py``,
needs matplotlib); ``benchmarks/plots.py peers FILE.json`` redraws it from a saved ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zstandard  # noqa: E402

import bigsmall  # noqa: E402
from bigsmall.testing import corpus  # noqa: E402

_ZIPNN_CHILD = r"""
import json, os, statistics, sys, time
from zipnn import ZipNN
src, work, dtype, repeat, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
raw = open(src, "rb").read()
z = ZipNN(input_format="byte", bytearray_dtype=dtype, threads=threads)
# one untimed call of each first: this child is a fresh process each round, while bigsmall runs
# warm in the parent, so a first call's set-up (threads, allocations) must not count. (Not one
# untimed round trip: ZipNN 0.5.4 then restores wrong bf16/fp32 bytes, a compress after a
# decompress in one process; the order below is the one its round trip survives.)
def fresh(path):
    # outside the clock: truncating last round's output (pages still being written back) would
    # stall the write, and bigsmall's outputs are removed outside its clock too
    if os.path.exists(path):
        os.remove(path)
    return path
ct, dt = [], []
for i in range(repeat + 1):
    out = fresh(work + "/m.znn")
    t = time.perf_counter(); data = open(src, "rb").read(); c = z.compress(data)
    open(out, "wb").write(c)
    if i:
        ct.append(time.perf_counter() - t)
st = []
# one untimed restore first, written like the timed ones: the first write of a fresh process
# here stalled for ~100 ms (MiniLM bf16: 103 ms against ~10 ms for the next ones), and with one
# timed round per process that stall was ZipNN's figure (x2-3 too slow) while bigsmall runs warm
open(fresh(work + "/m.out"), "wb").write(z.decompress(open(work + "/m.znn", "rb").read()))
for _ in range(repeat):
    out = fresh(work + "/m.out")
    t = time.perf_counter(); c = open(work + "/m.znn", "rb").read(); d = z.decompress(c)
    open(out, "wb").write(d); dt.append(time.perf_counter() - t)
    # the same, made durable as bigsmall's restore is (fsync before the clock stops)
    fresh(work + "/m.out2")
    t = time.perf_counter(); c = open(work + "/m.znn", "rb").read(); d = z.decompress(c)
    with open(work + "/m.out2", "wb") as fh:
        fh.write(d); fh.flush(); os.fsync(fh.fileno())
    st.append(time.perf_counter() - t)
assert bytes(d) == raw, "zipnn round trip differs"
print(json.dumps({"ratio": len(c) / len(raw), "compress_s": statistics.median(ct),
                  "decompress_s": statistics.median(dt), "decompress_fsync_s": statistics.median(st)}))
"""


def time_zstd(src: Path, work: Path, repeat: int, grouped: bool) -> dict[str, float]:
    raw = src.read_bytes()
    cctx, dctx = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
    ct, dt = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        data = src.read_bytes()
        if grouped:  # 2-byte planes over the whole file: the cheap byte-grouping trick
            n = len(data) // 2 * 2
            import numpy as np

            planes = np.frombuffer(data[:n], np.uint8).reshape(-1, 2).T.copy()
            c = b"".join(cctx.compress(p.tobytes()) for p in planes) + data[n:]
        else:
            c = cctx.compress(data)
        (work / "z").write_bytes(c)
        ct.append(time.perf_counter() - t)
    for _ in range(repeat):
        t = time.perf_counter()
        c = (work / "z").read_bytes()
        if not grouped:
            (work / "z.out").write_bytes(dctx.decompress(c))
        dt.append(time.perf_counter() - t)
    size = len(raw)
    return {"ratio": len(c) / size, "compress_MBps": size / 1e6 / statistics.median(ct),
            "decompress_MBps": size / 1e6 / statistics.median(dt) if not grouped else float("nan")}


def _fresh(path: Path) -> None:
    if path.exists():
        path.unlink()


def time_bigsmall(src: Path, work: Path, repeat: int, threads: int, level: str = "default",
                  coder: str = "auto") -> dict[str, float]:
    """bigsmall as a user runs it: ``compress`` with its default verify pass, then
    ``decompress``, each durable (the default: fsync before the rename) and, interleaved with
    it, with ``--no-fsync`` (what ZipNN's own timing does). Outputs are removed outside the
    clock, as in ZipNN's child."""
    ct, cn, dt, nt, rt = [], [], [], [], []
    for _ in range(repeat):
        _fresh(work / "m2.bs")
        t = time.perf_counter()
        bigsmall.compress(src, work / "m2.bs", threads=threads, level=level, coder=coder,
                          durable=False)
        cn.append(time.perf_counter() - t)
        _fresh(work / "m.bs")
        t = time.perf_counter()
        r = bigsmall.compress(src, work / "m.bs", threads=threads, level=level, coder=coder)
        ct.append(time.perf_counter() - t)
    for _ in range(repeat):
        # the output removed outside the clock, as in ZipNN's child: renaming over last
        # round's 45-266 MB file made the kernel free its pages inside the timed call
        # (29 of 104 ms of a MiniLM bf16 restore), work ZipNN's timing never does
        _fresh(work / "m.out")
        t = time.perf_counter()
        bigsmall.decompress(work / "m.bs", work / "m.out", threads=threads)
        dt.append(time.perf_counter() - t)
        _fresh(work / "m.out")
        t = time.perf_counter()
        bigsmall.decompress(work / "m.bs", work / "m.out", threads=threads, durable=False)
        nt.append(time.perf_counter() - t)
        _fresh(work / "m.out")  # the same, checked by the tensors' receipts, not a sha256
        t = time.perf_counter()
        bigsmall.decompress(work / "m.bs", work / "m.out", threads=threads, durable=False,
                            check="receipts")
        rt.append(time.perf_counter() - t)
    size = src.stat().st_size
    return {"ratio": r.ratio, "compress_MBps": size / 1e6 / statistics.median(ct),
            "compress_nofsync_MBps": size / 1e6 / statistics.median(cn),
            "decompress_MBps": size / 1e6 / statistics.median(dt),
            "decompress_nofsync_MBps": size / 1e6 / statistics.median(nt),
            "decompress_receipts_MBps": size / 1e6 / statistics.median(rt)}


_BS4_CHILD = r"""
import hashlib, json, os, statistics, sys, time
os.environ["BIGSMALL_DISABLE_VERSION_CHECK"] = "1"  # 4.0 pings PyPI on import otherwise
import bigsmall
src, work, repeat, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
raw = open(src, "rb").read()
ct, dt = [], []
for _ in range(repeat):
    t = time.perf_counter(); bigsmall.compress(src, work + "/m4.bs", workers=threads, progress=False)
    ct.append(time.perf_counter() - t)
for _ in range(repeat):
    if os.path.exists(work + "/m4.out"):
        os.remove(work + "/m4.out")
    t = time.perf_counter(); bigsmall.decompress(work + "/m4.bs", work + "/m4.out", progress=False)
    dt.append(time.perf_counter() - t)
same = open(work + "/m4.out", "rb").read() == raw
print(json.dumps({"ratio": os.path.getsize(work + "/m4.bs") / len(raw), "compress_s": statistics.median(ct),
                  "decompress_s": statistics.median(dt), "file_identical": same}))
"""


def time_bigsmall4(py: str, src: Path, work: Path, repeat: int, threads: int) -> dict[str, Any] | None:
    """The bigsmall 4.0 package (PyPI), from the peers venv; says whether its restored file is
    byte-identical to the original (the tensors may be while the file is not)."""
    env = {**os.environ, "BIGSMALL_DISABLE_VERSION_CHECK": "1", "PYTHONPATH": ""}
    res = subprocess.run([py, "-c", _BS4_CHILD, str(src), str(work), str(repeat), str(threads)],
                         capture_output=True, text=True, env=env, cwd=str(work))
    if res.returncode != 0:
        print(f"bigsmall 4.0 failed: {res.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    d = json.loads(res.stdout.strip().splitlines()[-1])
    size = src.stat().st_size
    return {"ratio": d["ratio"], "compress_MBps": size / 1e6 / d["compress_s"],
            "decompress_MBps": size / 1e6 / d["decompress_s"], "file_identical": d["file_identical"]}


def time_zipnn(py: str, src: Path, work: Path, repeat: int, threads: int, dtype: str) -> dict[str, float] | None:
    res = subprocess.run([py, "-c", _ZIPNN_CHILD, str(src), str(work), dtype, str(repeat), str(threads)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        print(f"zipnn failed: {res.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    d = json.loads(res.stdout.strip().splitlines()[-1])
    size = src.stat().st_size
    return {"ratio": d["ratio"], "compress_MBps": size / 1e6 / d["compress_s"],
            "decompress_MBps": size / 1e6 / d["decompress_s"],
            "decompress_fsync_MBps": size / 1e6 / d["decompress_fsync_s"]}


def _median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key: the median of the rounds' numbers; a flag holds only if it held in every round."""
    out: dict[str, Any] = {}
    for key, value in results[0].items():
        values = [r[key] for r in results]
        out[key] = all(values) if isinstance(value, bool) else statistics.median(values)
    return out


TOOLS = ("bigsmall", "bigsmall_fast", "bigsmall_max", "bigsmall_rans", "bigsmall_prefix",
         "bigsmall_fast_prefix",
         "zstd3", "byte_grouped_zstd3", "zipnn", "bigsmall_4.0")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plot", metavar="PNG", help="also write a chart of ratio vs restore speed")
    ap.add_argument("--models", default="minilm-bf16,whisper-tiny-fp16,minilm-fp32",
                    help="comma-separated; also corpus-bf16 (every corpus tensor cast to bf16, "
                         "~266 MB: bigsmall.testing.corpus.corpus_bf16)")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help=f"comma-separated subset of {','.join(TOOLS)} (zipnn and bigsmall_4.0 "
                         "need BIGSMALL_PEERS_PYTHON)")
    args = ap.parse_args()
    tools = set(args.tools.split(","))
    unknown = tools - set(TOOLS)
    if unknown:
        ap.error(f"unknown tools: {sorted(unknown)}")
    if args.plot:  # before minutes of measuring: a missing matplotlib fails now
        from bigsmall.io.plot import require_matplotlib

        require_matplotlib()
    peers_py = os.environ.get("BIGSMALL_PEERS_PYTHON")
    zipnn_dtype = {"minilm-bf16": "bfloat16", "whisper-tiny-fp16": "float16", "minilm-fp32": "float32",
                   "corpus-bf16": "bfloat16"}
    available = {**corpus.reference_models(), "corpus-bf16": None}
    models = {}
    for name in args.models.split(","):
        if name not in available:
            ap.error(f"unknown model {name!r}; choose from {sorted(available)}")
        src = corpus.corpus_bf16() if name == "corpus-bf16" else available[name]
        models[name] = (src, zipnn_dtype[name])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bigsmall-peers-") as d:
        work = Path(d)
        for name, (src, zdtype) in models.items():
            row: dict[str, object] = {"model": name, "MB": src.stat().st_size / 1e6}
            variants = {
                "bigsmall": ("default", "auto"), "bigsmall_fast": ("fast", "auto"),
                "bigsmall_max": ("max", "auto"),
                "bigsmall_rans": ("default", "rans"), "bigsmall_prefix": ("default", "prefix"),
                "bigsmall_fast_prefix": ("fast", "prefix"),
            }
            runners: dict[str, Callable[[], dict[str, Any] | None]] = {}
            for tool, (level, coder) in variants.items():
                runners[tool] = partial(time_bigsmall, src, work, 1, args.threads, level, coder=coder)
            runners["zstd3"] = partial(time_zstd, src, work, 1, grouped=False)
            runners["byte_grouped_zstd3"] = partial(time_zstd, src, work, 1, grouped=True)
            if peers_py:
                runners["zipnn"] = partial(time_zipnn, peers_py, src, work, 1, args.threads, zdtype)
                runners["bigsmall_4.0"] = partial(time_bigsmall4, peers_py, src, work, 1, args.threads)
            # rounds: every tool once per round, so that a slow minute of this shared machine
            # hits all of them alike; each figure is the median over the rounds
            samples: dict[str, list[dict[str, Any]]] = {}
            for _ in range(args.repeat):
                for tool, run in runners.items():
                    if tool in tools and (r := run()) is not None:
                        samples.setdefault(tool, []).append(r)
            for tool, rs in samples.items():
                row[tool] = _median_of(rs)
            rows.append(row)
    if args.plot:
        from bigsmall.io.plot import plot_peers

        print(f"chart: {plot_peers(rows, args.plot)}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"threads={args.threads} repeat={args.repeat} (medians; file -> file, page cache warm)")
    for row in rows:
        print(f"\n{row['model']} ({row['MB']:.1f} MB)")
        for tool in TOOLS:
            r = row.get(tool)
            if isinstance(r, dict):
                dec = r["decompress_MBps"]
                dec_s = "    n/a" if dec != dec else f"{dec:7.1f}"  # NaN: not measured
                extra = ""
                if "file_identical" in r:
                    extra = "  restored file identical" if r["file_identical"] else "  restored file DIFFERS"
                if "decompress_fsync_MBps" in r:
                    extra = f"  (with fsync: {r['decompress_fsync_MBps']:.1f} MB/s)"
                if "decompress_nofsync_MBps" in r:
                    extra = (f"  (--no-fsync: compress {r['compress_nofsync_MBps']:.1f}, "
                             f"decompress {r['decompress_nofsync_MBps']:.1f} MB/s, with "
                             f"--check receipts {r['decompress_receipts_MBps']:.1f} MB/s)")
                print(f"  {tool:20s} ratio {r['ratio'] * 100:6.2f} %  compress {r['compress_MBps']:7.1f} MB/s  "
                      f"decompress {dec_s} MB/s{extra}")
        z = row.get("zipnn")
        for tool in ("bigsmall", "bigsmall_fast", "bigsmall_max", "bigsmall_rans",
                     "bigsmall_prefix", "bigsmall_fast_prefix"):
            b = row.get(tool)
            if isinstance(z, dict) and isinstance(b, dict):
                print(f"  {tool} / zipnn: decompress speed, both durable (fsync) "
                      f"x{b['decompress_MBps'] / z['decompress_fsync_MBps']:.2f}, neither "
                      f"x{b['decompress_nofsync_MBps'] / z['decompress_MBps']:.2f} (--check "
                      f"receipts x{b['decompress_receipts_MBps'] / z['decompress_MBps']:.2f}), bigsmall "
                      f"durable vs ZipNN not x{b['decompress_MBps'] / z['decompress_MBps']:.2f}; "
                      f"compress, neither syncing x"
                      f"{b['compress_nofsync_MBps'] / z['compress_MBps']:.2f}, bigsmall durable "
                      f"x{b['compress_MBps'] / z['compress_MBps']:.2f}; "
                      f"size x{b['ratio'] / z['ratio']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
