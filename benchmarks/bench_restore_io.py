"""What a durable, atomic restore costs: ``decompress`` of MiniLM bf16 with and without fsync,
into a fresh path and over an existing output.

``decompress`` writes a temporary file, fsyncs it and renames it over the target, so a crash
never leaves a half-written model. Peers that just ``open(..., "wb")`` skip the fsync; this
script measures how much of bigsmall's file -> file time is that durability (and, on some
filesystems, the cost of replacing an existing output), so side-by-side figures can be read
fairly. The no-fsync variant replaces ``os.fsync`` with a no-op *in this process only*; the
library has no such option.

    python benchmarks/bench_restore_io.py [--repeat 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import bigsmall
from bigsmall.testing import corpus


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    src = corpus.reference_models()["minilm-bf16"]
    mb = src.stat().st_size / 1e6
    real_fsync = os.fsync
    with tempfile.TemporaryDirectory(prefix="bigsmall-restore-io-") as d:
        work = Path(d)
        bs = work / "m.bs"
        bigsmall.compress(src, bs, verify=False)
        bigsmall.decompress(bs, work / "warm", threads=args.threads)

        def run(fresh: bool) -> float:
            ts = []
            for k in range(args.repeat):
                out = work / (f"out{k}" if fresh else "out")
                t = time.perf_counter()
                bigsmall.decompress(bs, out, force=True, threads=args.threads)
                ts.append(time.perf_counter() - t)
                if fresh:
                    out.unlink()
            return mb / statistics.median(ts)

        rows = []
        for fsync in (True, False):
            os.fsync = real_fsync if fsync else (lambda fd: None)  # type: ignore[assignment]
            try:
                rows.append((fsync, run(False), run(True)))
            finally:
                os.fsync = real_fsync
    print(f"decompress MiniLM bf16 ({mb:.1f} MB), {args.threads} threads, medians of {args.repeat}")
    for fsync, over, fresh in rows:
        print(f"  {'fsync   ' if fsync else 'no fsync'}  over an existing output {over:7.1f} MB/s   "
              f"fresh output {fresh:7.1f} MB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
