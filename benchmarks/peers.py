"""Issue #3 benchmark: bigsmall next to zstd-3, byte-grouped zstd-3 and (optionally) ZipNN.

All tools run in the same invocation on the same files (page cache warm), file -> file, medians
of --repeat runs. Peers are never imported from this project: set BIGSMALL_PEERS_PYTHON to the
python of a separate venv that has them (``python -m venv /tmp/peers &&
/tmp/peers/bin/pip install torch==2.13.0 numpy zstandard safetensors && /tmp/peers/bin/pip install
--no-deps zipnn``); a child process runs them there.

    python benchmarks/peers.py [--repeat 3] [--json]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zstandard  # noqa: E402

import bigsmall  # noqa: E402
from bigsmall.testing import corpus  # noqa: E402

_ZIPNN_CHILD = r"""
import json, statistics, sys, time
from zipnn import ZipNN
src, work, dtype, repeat, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
raw = open(src, "rb").read()
z = ZipNN(input_format="byte", bytearray_dtype=dtype, threads=threads)
ct, dt = [], []
for _ in range(repeat):
    t = time.perf_counter(); data = open(src, "rb").read(); c = z.compress(data)
    open(work + "/m.znn", "wb").write(c); ct.append(time.perf_counter() - t)
for _ in range(repeat):
    t = time.perf_counter(); c = open(work + "/m.znn", "rb").read(); d = z.decompress(c)
    open(work + "/m.out", "wb").write(d); dt.append(time.perf_counter() - t)
assert bytes(d) == raw, "zipnn round trip differs"
print(json.dumps({"ratio": len(c) / len(raw), "compress_s": statistics.median(ct),
                  "decompress_s": statistics.median(dt)}))
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


def time_bigsmall(src: Path, work: Path, repeat: int, threads: int) -> dict[str, float]:
    ct, dt = [], []
    for _ in range(repeat):
        r = bigsmall.compress(src, work / "m.bs", force=True, threads=threads)
        ct.append(r.seconds)
    for _ in range(repeat):
        t = time.perf_counter()
        bigsmall.decompress(work / "m.bs", work / "m.out", force=True, threads=threads)
        dt.append(time.perf_counter() - t)
    size = src.stat().st_size
    return {"ratio": r.ratio, "compress_MBps": size / 1e6 / statistics.median(ct),
            "decompress_MBps": size / 1e6 / statistics.median(dt)}


def time_zipnn(py: str, src: Path, work: Path, repeat: int, threads: int, dtype: str) -> dict[str, float] | None:
    res = subprocess.run([py, "-c", _ZIPNN_CHILD, str(src), str(work), dtype, str(repeat), str(threads)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        print(f"zipnn failed: {res.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    d = json.loads(res.stdout.strip().splitlines()[-1])
    size = src.stat().st_size
    return {"ratio": d["ratio"], "compress_MBps": size / 1e6 / d["compress_s"],
            "decompress_MBps": size / 1e6 / d["decompress_s"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    peers_py = os.environ.get("BIGSMALL_PEERS_PYTHON")
    zipnn_dtype = {"minilm-bf16": "bfloat16", "whisper-tiny-fp16": "float16", "minilm-fp32": "float32"}
    models = {name: (src, zipnn_dtype[name]) for name, src in corpus.reference_models().items()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bigsmall-peers-") as d:
        work = Path(d)
        for name, (src, zdtype) in models.items():
            row: dict[str, object] = {"model": name, "MB": src.stat().st_size / 1e6}
            row["bigsmall"] = time_bigsmall(src, work, args.repeat, args.threads)
            row["zstd3"] = time_zstd(src, work, args.repeat, grouped=False)
            row["byte_grouped_zstd3"] = time_zstd(src, work, args.repeat, grouped=True)
            if peers_py:
                row["zipnn"] = time_zipnn(peers_py, src, work, args.repeat, args.threads, zdtype)
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"threads={args.threads} repeat={args.repeat} (medians; file -> file, page cache warm)")
    for row in rows:
        print(f"\n{row['model']} ({row['MB']:.1f} MB)")
        for tool in ("bigsmall", "zstd3", "byte_grouped_zstd3", "zipnn"):
            r = row.get(tool)
            if isinstance(r, dict):
                dec = r["decompress_MBps"]
                dec_s = "    n/a" if dec != dec else f"{dec:7.1f}"  # NaN: not measured
                print(f"  {tool:20s} ratio {r['ratio'] * 100:6.2f} %  compress {r['compress_MBps']:7.1f} MB/s  "
                      f"decompress {dec_s} MB/s")
        z, b = row.get("zipnn"), row["bigsmall"]
        if isinstance(z, dict) and isinstance(b, dict):
            print(f"  bigsmall / zipnn: decompress speed x{b['decompress_MBps'] / z['decompress_MBps']:.2f}, "
                  f"size x{b['ratio'] / z['ratio']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
