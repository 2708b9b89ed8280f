"""The entropy coders side by side: ``rans``, ``auto`` (the default) and ``prefix`` on the
reference models, size and restore speed, runs interleaved.

Why interleaved in one process: on a shared VM two runs minutes apart differ by up to 40 %,
far more than the coders do; alternating the coders round by round gives each the same
machine. Restores are ``bigsmall.decompress`` file -> file (durable: fsync before the rename),
page cache warm; compress runs (with the default verify pass) are interleaved the same way.

    python benchmarks/bench_coders.py [--repeat 7] [--coders rans,auto,prefix] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bigsmall
from bigsmall.io.reader import BsFile
from bigsmall.testing import corpus


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--coders", default="rans,auto,prefix")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    coders = args.coders.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bigsmall-coders-") as d:
        work = Path(d)
        for name, src in corpus.reference_models().items():
            size = src.stat().st_size
            ct: dict[str, list[float]] = {c: [] for c in coders}
            dt: dict[str, list[float]] = {c: [] for c in coders}
            ratio, codecs = {}, {}
            for _ in range(max(1, args.repeat // 3)):  # compress: fewer rounds (slow)
                for c in coders:
                    r = bigsmall.compress(src, work / f"{c}.bs", force=True, coder=c)
                    ct[c].append(r.seconds)
                    ratio[c] = r.ratio
            for c in coders:
                with BsFile(work / f"{c}.bs") as f:
                    by: collections.Counter[str] = collections.Counter()
                    for t in f.container.tensors:
                        by[t.codec] += t.spec.nbytes
                codecs[c] = {k: round(v / size, 4) for k, v in by.most_common()}
                bigsmall.decompress(work / f"{c}.bs", work / "out", force=True)  # warm
            for _ in range(args.repeat):
                for c in coders:
                    t0 = time.perf_counter()
                    bigsmall.decompress(work / f"{c}.bs", work / "out", force=True)
                    dt[c].append(time.perf_counter() - t0)
            if (work / "out").read_bytes() != src.read_bytes():
                raise SystemExit(f"{name}: restore differs from the source")
            base = statistics.median(dt[coders[0]])
            for c in coders:
                rows.append({
                    "model": name, "coder": c, "ratio": ratio[c],
                    "compress_MBps": size / 1e6 / statistics.median(ct[c]),
                    "decompress_MBps": size / 1e6 / statistics.median(dt[c]),
                    "decompress_time_vs_first": statistics.median(dt[c]) / base,
                    "bytes_by_codec": codecs[c],
                })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"coders interleaved, medians ({args.repeat} restores, {max(1, args.repeat // 3)} "
          f"compresses each); decompress time relative to {coders[0]}")
    for r in rows:
        top = ", ".join(f"{k} {v * 100:.0f} %" for k, v in r["bytes_by_codec"].items() if v >= 0.01)
        print(f"  {r['model']:18s} {r['coder']:7s} ratio {r['ratio'] * 100:6.2f} %  compress "
              f"{r['compress_MBps']:6.1f} MB/s  decompress {r['decompress_MBps']:6.1f} MB/s "
              f"(time x{r['decompress_time_vs_first']:.2f})  [{top}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
