"""Where a decode into memory spends its time, stage by stage and thread by thread (issue 17).

``bigsmall.open(bs, threads=N)`` then ``read`` every tensor, as ``bench_memory_decode.py``
does, with each stage wrapped to add up its CPU time (``time.thread_time``) and wall time per
thread: ``plan`` (side information: zstd, decode tables; ``plan_decode``), ``kernel`` (chunk
decoding; ``DecodeJob.run_group``), ``hash`` (the receipt check), ``alloc`` (the output
array), ``whole`` (a small tensor decoded whole ahead, ``io/read_window``: its plan, kernel
and hash are inside it). Why: a profile that adds all threads together cannot say what keeps
the second core idle; per thread it shows which thread does what, and the process CPU time
against wall time says how many cores were busy.

    python benchmarks/bench_decode_threads.py [--model minilm-bf16] [--threads 2] [--repeat 5]
        [--no-window]

Per-call wrappers cost a few microseconds each: compare variants of one run, not runs.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bigsmall
import bigsmall.native as native
from bigsmall.io import read_window, reader
from bigsmall.plan import decode as plan_mod

ACC: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])  # type: ignore[arg-type]


def _wrap(obj: Any, attr: str, label: str) -> None:
    real: Callable[..., Any] = getattr(obj, attr)

    def timed(*a: Any, **k: Any) -> Any:
        c0, w0 = time.thread_time(), time.perf_counter()
        try:
            return real(*a, **k)
        finally:
            acc = ACC[(label, threading.current_thread().name)]
            acc[0] += time.thread_time() - c0
            acc[1] += time.perf_counter() - w0
            acc[2] += 1

    setattr(obj, attr, timed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="minilm-bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-window", action="store_true", help="io/read_window off")
    args = ap.parse_args(argv)
    from bench_memory_decode import _models

    src = _models([args.model])[args.model]
    bs = Path(tempfile.mkdtemp()) / "m.bs"
    bigsmall.compress(src, bs, verify=False)
    native.use("all")
    if args.no_window:
        reader.SMALL_BYTES = -1
    _wrap(plan_mod.DecodeJob, "run_group", "kernel")
    _wrap(reader, "plan_decode", "plan")
    _wrap(reader, "check_receipt", "hash")
    _wrap(reader, "alloc_bytes", "alloc")
    _wrap(reader, "decode_whole", "whole")

    def run() -> int:
        with bigsmall.open(bs, threads=args.threads) as f:
            return sum(f.read(n).nbytes for n in f.names())

    run()
    ACC.clear()
    w0, c0 = time.perf_counter(), time.process_time()
    nbytes = sum(run() for _ in range(args.repeat)) // args.repeat
    wall, cpu = (time.perf_counter() - w0) / args.repeat, (time.process_time() - c0) / args.repeat
    print(f"{args.model} {nbytes / 1e6:.1f} MB, threads {args.threads}, window "
          f"{'off' if args.no_window else f'on (<= {read_window.SMALL_BYTES >> 20} MB tensors)'}: "
          f"wall {wall * 1e3:.1f} ms, process CPU {cpu * 1e3:.1f} ms ({cpu / wall:.2f} cores busy)")
    print("per run:  stage   thread        calls   cpu ms  wall ms")
    for (label, tname), (c, w, n) in sorted(ACC.items()):
        print(f"          {label:7s} {tname:12s} {n / args.repeat:6.0f} {c / args.repeat * 1e3:8.1f} "
              f"{w / args.repeat * 1e3:8.1f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
