"""Issue #2 benchmark: ratio, speed and memory of bigsmall next to its yardsticks, same run.

For each real model (see docs/corpus.md): bigsmall ratio, compress and decompress MB/s
(file -> file, medians of --repeat runs), peak RSS of a decompress above the interpreter's
baseline (measured in a fresh child process), next to the per-tensor order-0 floor
Σ n·(H(sign,exp) + H(mantissa|exp)), zstd-3 and byte-grouped zstd-3 of the same file.

    python benchmarks/bench_core.py [--repeat 3] [--json] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baselines  # noqa: E402

import bigsmall  # noqa: E402
from bigsmall.testing import corpus  # noqa: E402

TARGETS = {"minilm-bf16": 65.6, "whisper-tiny-fp16": 83.6, "minilm-fp32": 81.5}

_RSS_CHILD = r"""
import json, sys, psutil
import bigsmall
from bigsmall.io.decompress import decompress
from bigsmall.codecs import rans  # numba kernels loaded (cached) before the baseline
base = psutil.Process().memory_info().rss
decompress(sys.argv[1], sys.argv[2], force=True, threads=int(sys.argv[3]))
# VmHWM: this process's own high-water mark (ru_maxrss can carry the parent's across exec)
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"baseline": base, "peak": peak}))
"""


def largest_tensor(path: Path) -> int:
    layout = baselines.read_safetensors_layout(path)
    return max((t.end - t.start for t in layout.tensors), default=0)


def bench(name: str, src: Path, work: Path, repeat: int, threads: int) -> dict[str, object]:
    size = src.stat().st_size
    bs = work / f"{name}.bs"
    out = work / f"{name}.out.safetensors"
    c_times, d_times = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        r = bigsmall.compress(src, bs, force=True, threads=threads)
        c_times.append(time.perf_counter() - t)
    for _ in range(repeat):
        t = time.perf_counter()
        bigsmall.decompress(bs, out, force=True, threads=threads)
        d_times.append(time.perf_counter() - t)
    same = out.read_bytes() == src.read_bytes()
    child = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(bs), str(out), str(threads)],
                           check=True, capture_output=True, text=True)
    rss = json.loads(child.stdout.strip().splitlines()[-1])
    floor = baselines.order0_floor(src)
    largest = largest_tensor(src)
    peak_above = rss["peak"] - rss["baseline"]
    rss_budget = 2 * largest + 200_000_000
    ratio = r.compressed_bytes / size * 100
    return {
        "model": name, "file_MB": size / 1e6, "ratio_pct": ratio,
        "target_pct": TARGETS.get(name), "meets_ratio_target": ratio <= TARGETS.get(name, 100.0),
        "order0_floor_pct": floor["ratio"] * 100,
        "vs_floor_pp": ratio - floor["ratio"] * 100,
        "zstd3_pct": baselines.zstd_ratio(src) * 100,
        "byte_grouped_zstd3_pct": baselines.byte_grouped_zstd_ratio(src) * 100,
        "compress_MBps": size / 1e6 / statistics.median(c_times),
        "decompress_MBps": size / 1e6 / statistics.median(d_times),
        "decompress_peak_rss_above_baseline_MB": peak_above / 1e6,
        "rss_budget_MB": rss_budget / 1e6, "meets_rss_target": peak_above <= rss_budget,
        "largest_tensor_MB": largest / 1e6, "restored_identical": same,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    models = corpus.reference_models()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bigsmall-bench-") as d:
        for name, src in models.items():
            rows.append(bench(name, src, Path(d), args.repeat, args.threads))
    machine = {"python": platform.python_version(), "machine": platform.machine(),
               "cpus": os.cpu_count(), "threads": args.threads, "repeat": args.repeat}
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
    else:
        print(f"machine: {machine}")
        hdr = (f"{'model':18s} {'ratio':>7s} {'target':>7s} {'floor':>7s} {'zstd3':>7s} {'bg-zstd':>7s} "
               f"{'comp MB/s':>9s} {'dec MB/s':>9s} {'dec RSS':>8s} {'budget':>8s}")
        print(hdr)
        for r in rows:
            print(f"{r['model']:18s} {r['ratio_pct']:6.2f}% {r['target_pct']:6.1f}% {r['order0_floor_pct']:6.2f}% "
                  f"{r['zstd3_pct']:6.2f}% {r['byte_grouped_zstd3_pct']:6.2f}% {r['compress_MBps']:9.1f} "
                  f"{r['decompress_MBps']:9.1f} {r['decompress_peak_rss_above_baseline_MB']:6.0f}MB "
                  f"{r['rss_budget_MB']:6.0f}MB")
    return 0 if all(r["restored_identical"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
