"""What a durable, atomic restore costs: ``decompress`` of MiniLM bf16 with and without fsync,
into a fresh path and over an existing output.

``decompress`` writes a temporary file, fsyncs it and renames it over the target, so a crash
never leaves a half-written model. Peers that just ``open(..., "wb")`` skip the fsync; this
script measures how much of bigsmall's file -> file time is that durability (and, on some
filesystems, the cost of replacing an existing output), so side-by-side figures can be read
fairly. The no-fsync variant replaces ``os.fsync`` with a no-op *in this process only*; the
library has no such option.

With ``--vs-dd`` it instead times a durable restore (fsync, fresh output) of each reference
model against ``dd if=RAW of=OUT bs=4M conv=fdatasync`` writing the same bytes from the page
cache, interleaved (issue 17's target: a durable restore within 10 % of the disk's own speed).

With ``--flush-mib 4,16`` it instead compares sizes of the background ``fdatasync`` step
(``flush.FLUSH_BYTES``) on the three reference models, runs interleaved (one restore
with each size in turn, ``--repeat`` rounds): the figures behind the default.

    python benchmarks/bench_restore_io.py [--repeat 5] [--threads 2] [--flush-mib 4,16] [--vs-dd]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import bigsmall
from bigsmall.io import flush as flush_mod
from bigsmall.testing import corpus


def flush_sizes(sizes_mib: list[int], repeat: int, threads: int) -> None:
    """Restore time per flush size on every reference model, sizes interleaved."""
    print(f"decompress (fsync, fresh output), {threads} threads, medians of {repeat}, "
          "sizes interleaved")
    with tempfile.TemporaryDirectory(prefix="bigsmall-restore-io-") as d:
        work = Path(d)
        for name, src in corpus.reference_models().items():
            bs = work / f"{name}.bs"
            bigsmall.compress(src, bs, verify=False)
            times: dict[int, list[float]] = {m: [] for m in sizes_mib}
            for k in range(repeat + 1):  # the first round warms up and is not counted
                for m in sizes_mib:
                    flush_mod.FLUSH_BYTES = m << 20
                    out = work / "out"
                    t = time.perf_counter()
                    bigsmall.decompress(bs, out, threads=threads)
                    if k:
                        times[m].append(time.perf_counter() - t)
                    out.unlink()
            base = statistics.median(times[sizes_mib[-1]])
            cells = "   ".join(f"{m:3d} MiB {1000 * statistics.median(times[m]):6.0f} ms "
                               f"(x{statistics.median(times[m]) / base:.2f})" for m in sizes_mib)
            print(f"  {name:<18} {cells}")


def vs_dd(repeat: int, threads: int) -> None:
    """Durable restore against ``dd conv=fdatasync`` of the same bytes, per reference model."""
    import subprocess

    print(f"durable restore (fsync, fresh output) vs dd conv=fdatasync of the same bytes, {threads} "
          f"threads, medians of {repeat}, interleaved")
    with tempfile.TemporaryDirectory(prefix="bigsmall-restore-io-") as d:
        work = Path(d)
        for name, src in corpus.reference_models().items():
            bs = work / f"{name}.bs"
            bigsmall.compress(src, bs, verify=False)
            src.read_bytes()  # page cache warm
            mb = src.stat().st_size / 1e6
            t_dd, t_bs = [], []
            for k in range(repeat + 1):  # the first round warms up and is not counted
                out = work / "dd.out"
                t = time.perf_counter()
                subprocess.run(["dd", f"if={src}", f"of={out}", "bs=4M", "conv=fdatasync"],
                               check=True, capture_output=True)
                if k:
                    t_dd.append(time.perf_counter() - t)
                out.unlink()
                out = work / "bs.out"
                t = time.perf_counter()
                bigsmall.decompress(bs, out, threads=threads)
                if k:
                    t_bs.append(time.perf_counter() - t)
                out.unlink()
            dd, b = mb / statistics.median(t_dd), mb / statistics.median(t_bs)
            print(f"  {name:<18} dd {dd:7.1f} MB/s   bigsmall decompress {b:7.1f} MB/s   x{b / dd:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flush-mib", help="compare these FLUSH_BYTES sizes (MiB, comma-separated; "
                    "ratios against the last)")
    ap.add_argument("--vs-dd", action="store_true", help="durable restore vs dd conv=fdatasync")
    args = ap.parse_args()
    if args.vs_dd:
        vs_dd(args.repeat, args.threads)
        return 0
    if args.flush_mib:
        flush_sizes([int(x) for x in args.flush_mib.split(",")], args.repeat, args.threads)
        return 0
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
