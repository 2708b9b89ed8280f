"""Compress speed: MB/s of ``bigsmall.compress`` on the reference models, 1 and N threads.

Each variant (this checkout, and with ``--baseline DIR`` the bigsmall package found in DIR, e.g.
an export of an older commit: ``git archive HEAD bigsmall | tar -x -C /tmp/base``) runs in its
own long-lived child process that compresses each file once to warm the kernels and then on
request. The variants' runs are *interleaved* (this, baseline, this, baseline, ...) so that both
see the same background load on a shared machine; the figures are medians of ``--repeat`` runs
(no verify pass unless ``--verify``, file in page cache, output to a temporary folder), and the
table says whether both variants wrote byte-identical containers. Next to the wall-time ratio
it prints the ratio of the median process CPU times (all threads): on a shared machine the
neighbours' load moves wall time far more than the CPU a compress needs.

    python benchmarks/bench_compress.py [--repeat 3] [--threads N] [--baseline DIR] [--verify]
                                        [--levels default,fast] [--json]

With several ``--levels`` each level is a row of its own (ratio included), the baseline timed
at every level too (so it must know them: a checkout from 2026-11-28 on).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

CHILD = r"""
import hashlib, json, sys, tempfile, time
from pathlib import Path
import bigsmall
verify = sys.argv[1] == "1"
with tempfile.TemporaryDirectory() as d:
    out = Path(d) / "m.bs"
    warm = set()
    for line in sys.stdin:
        src, threads, level = line.rstrip("\n").split("\t")
        kw = {} if level == "default" else {"level": level}
        if (src, level) not in warm:
            bigsmall.compress(src, out, force=True, verify=verify, threads=int(threads), **kw)
            warm.add((src, level))
        t, c = time.perf_counter(), time.process_time()
        bigsmall.compress(src, out, force=True, verify=verify, threads=int(threads), **kw)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        data = out.read_bytes()
        print(json.dumps({"seconds": dt, "cpu": dc, "sha256": hashlib.sha256(data).hexdigest(),
                          "bytes": len(data)}), flush=True)
"""


class Child:
    """One variant's worker process: send (file, threads), read back seconds and sha256."""

    def __init__(self, env: dict[str, str], verify: bool) -> None:
        # -P: do not put the working directory first on the import path, or a run from the
        # repository root imports ./bigsmall in both children whatever PYTHONPATH says
        self.proc = subprocess.Popen([sys.executable, "-P", "-c", CHILD, "1" if verify else "0"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)

    def run(self, src: Path, threads: int, level: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{src}\t{threads}\t{level}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"child failed (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="N (default: all cores)")
    ap.add_argument("--baseline", type=Path, help="also time the bigsmall package in this folder")
    ap.add_argument("--verify", action="store_true", help="time compress with its verify pass")
    ap.add_argument("--levels", default="default", help="comma-separated levels (default: default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    levels = args.levels.split(",")
    from bigsmall.testing import corpus

    here = Path(__file__).resolve().parent.parent
    envs = {"this": {**os.environ, "PYTHONPATH": str(here)}}
    if args.baseline is not None:
        envs["baseline"] = {**os.environ, "PYTHONPATH": str(args.baseline.resolve())}
    children = {tag: Child(env, args.verify) for tag, env in envs.items()}
    n = args.threads or os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    try:
        for name, src in corpus.reference_models().items():
            mb = src.stat().st_size / 1e6
            for level in levels:
                tags = list(children)
                for threads in sorted({1, n}):
                    row: dict[str, Any] = {"model": name, "MB": round(mb, 1), "level": level,
                                           "threads": threads}
                    times: dict[str, list[float]] = {tag: [] for tag in tags}
                    cpus: dict[str, list[float]] = {tag: [] for tag in tags}
                    for _ in range(args.repeat):
                        for tag in tags:
                            r = children[tag].run(src, threads, level)
                            times[tag].append(r["seconds"])
                            cpus[tag].append(r["cpu"])
                            row[f"{tag}_sha256"] = r["sha256"]
                            row[f"{tag}_ratio"] = round(100 * r["bytes"] / src.stat().st_size, 2)
                    for tag, ts in times.items():
                        row[f"{tag}_MBps"] = round(mb / statistics.median(ts), 2)
                        row[f"{tag}_cpu_s"] = round(statistics.median(cpus[tag]), 3)
                    rows.append(row)
    finally:
        for ch in children.values():
            ch.close()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    what = "with verify" if args.verify else "no verify"
    print(f"compress MB/s (medians of {args.repeat}, {what}, page cache warm, runs interleaved)\n")
    for r in rows:
        line = (f"  {r['model']:18s} {r['MB']:6.1f} MB  {r['level']:7s} {r['threads']} thread(s)"
                f"  {r['this_MBps']:7.2f} MB/s  {r['this_ratio']:6.2f} %")
        if "baseline_MBps" in r:
            same = "byte-identical" if r["baseline_sha256"] == r["this_sha256"] else "OUTPUT DIFFERS"
            line += (f"   baseline {r['baseline_MBps']:7.2f} MB/s  x{r['this_MBps'] / r['baseline_MBps']:.2f}"
                     f"  CPU time x{r['this_cpu_s'] / r['baseline_cpu_s']:.2f}  ({same})")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
