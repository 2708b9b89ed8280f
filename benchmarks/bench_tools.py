"""The figures of docs/tools.md: ``scan``'s speed and accuracy per corpus model, ``xray``'s
speed, and ``reshard``'s MB/s (split and merge) next to a plain file copy on the same disk.

For each model: ``scan`` (one warm-up run, which loads the kernels, then the median of
``--repeat``), the real ratio of ``compress`` at the default level, and their difference in
points; ``xray`` of the safetensors file (median of ``--repeat``). Then MiniLM fp32's ``.bs``
is split into 20 MB shards and merged back (without fsync, like ``cp``; and with it, the
default), interleaved with ``shutil.copyfile`` of the same ``.bs`` as the disk's yardstick.

    python benchmarks/bench_tools.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from timing import median_time  # benchmarks/timing.py (the script's folder is on sys.path)

import bigsmall
from bigsmall.io.reshard import reshard
from bigsmall.io.scan import scan
from bigsmall.io.xray import xray
from bigsmall.testing import corpus


def models() -> dict[str, Path]:
    out = dict(corpus.reference_models())
    out["minilm-fp8"] = corpus.minilm_fp8()
    try:
        out["whisper-base-fp16"] = corpus.whisper_base_safetensors()
    except corpus.CorpusUnavailable as exc:
        print(f"(whisper-base left out: {exc})", file=sys.stderr)
    return out


def bench_scan(work: Path, repeat: int) -> list[dict[str, Any]]:
    rows = []
    for name, src in models().items():
        scan(src)  # warm-up: loads the kernels
        secs = median_time(lambda s=src: scan(s), repeat)
        r = scan(src)
        real = bigsmall.compress(src, work / f"{name}.bs", force=True).ratio
        xsecs = median_time(lambda s=src: xray(s), max(1, repeat // 2))
        size = src.stat().st_size
        rows.append({"model": name, "bytes": size, "scan_s": secs, "scan_MBps": size / 1e6 / secs,
                     "predicted_ratio": r["predicted_ratio"], "real_ratio": real,
                     "diff_points": (r["predicted_ratio"] - real) * 100,
                     "sampled_bytes": r["sampled_bytes"], "xray_MBps": size / 1e6 / xsecs})
    return rows


def bench_reshard(work: Path, repeat: int) -> dict[str, Any]:
    bs = work / "minilm-fp32.bs"
    size = bs.stat().st_size
    times: dict[str, list[float]] = {k: [] for k in ("copy", "split", "merge", "split_fsync")}
    for _ in range(repeat):  # interleaved: the machine's load hits every variant alike
        t = time.perf_counter()
        shutil.copyfile(bs, work / "copy.bs")
        times["copy"].append(time.perf_counter() - t)
        (work / "copy.bs").unlink()
        t = time.perf_counter()
        reshard(bs, work / "shards", max_shard_size="20MB", durable=False)
        times["split"].append(time.perf_counter() - t)
        t = time.perf_counter()
        reshard(work / "shards", work / "merged.bs", durable=False)
        times["merge"].append(time.perf_counter() - t)
        assert (work / "merged.bs").read_bytes() == bs.read_bytes()
        (work / "merged.bs").unlink()
        shutil.rmtree(work / "shards")
        t = time.perf_counter()
        reshard(bs, work / "shards", max_shard_size="20MB")
        times["split_fsync"].append(time.perf_counter() - t)
        shutil.rmtree(work / "shards")
    return {"bytes": size, **{f"{k}_MBps": size / 1e6 / statistics.median(v) for k, v in times.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bigsmall-tools-", dir=os.environ.get("TMPDIR")) as d:
        work = Path(d)
        rows = bench_scan(work, args.repeat)
        rs = bench_reshard(work, args.repeat)
    if args.json:
        json.dump({"scan": rows, "reshard": rs}, sys.stdout, indent=1)
        print()
        return 0
    print(f"scan (medians of {args.repeat}, after a warm-up run) vs compress --level default")
    print(f"  {'model':18s} {'size':>8s} {'scan MB/s':>9s} {'predicted':>9s} {'real':>8s} "
          f"{'diff':>7s} {'sampled':>8s} {'xray MB/s':>9s}")
    for r in rows:
        print(f"  {r['model']:18s} {r['bytes'] / 1e6:6.1f}MB {r['scan_MBps']:9.0f} "
              f"{r['predicted_ratio'] * 100:8.2f}% {r['real_ratio'] * 100:7.2f}% "
              f"{r['diff_points']:+6.2f}p {r['sampled_bytes'] / r['bytes']:7.1%} {r['xray_MBps']:9.0f}")
    print(f"reshard of MiniLM fp32's .bs ({rs['bytes'] / 1e6:.1f} MB, 20 MB shards; medians of "
          f"{args.repeat}, interleaved)")
    print(f"  file copy (shutil.copyfile)  {rs['copy_MBps']:7.0f} MB/s")
    print(f"  split, no fsync              {rs['split_MBps']:7.0f} MB/s")
    print(f"  merge, no fsync              {rs['merge_MBps']:7.0f} MB/s")
    print(f"  split, fsync (default)       {rs['split_fsync_MBps']:7.0f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
