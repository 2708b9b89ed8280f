"""Decode into memory against this machine's limit for the same operation (issue 17).

For each model: ``bigsmall.open(bs)`` then ``read`` every tensor into fresh numpy arrays, with
every C kernel (``native``: ``BIGSMALL_NATIVE=all``) and with numba (``numba``, the
reference: ``BIGSMALL_NATIVE=0``), against *copy*: the same uncompressed tensors copied from the ``.safetensors`` file's
memory map into freshly allocated arrays, with the same number of threads (a thread pool, one
tensor per task; numpy's copy releases the GIL). Copy is the physical limit of "give me every
tensor as a new array" here (page faults of fresh memory included), so ``bigsmall / copy`` is
how close decoding gets to free.

Why interleaved: the machine is shared, so absolute figures move with the neighbours' load;
each round runs every variant once, in turn, and the medians over rounds (and their ratios)
are what to compare. Files are read once before timing (page cache warm). MB/s counts the
tensors' original bytes.

    python benchmarks/bench_memory_decode.py [--models minilm-bf16,whisper-tiny-fp16,minilm-fp32]
        [--repeat 7] [--threads 2] [--src FILE.safetensors ...] [--scaling] [--no-window]

``--scaling`` adds ``native 1t``: the same decode with every C kernel on one thread, in the same
rounds, and prints ``native/native 1t`` (the thread scaling of a decode into memory).
``--no-window`` adds ``native nw``: the same decode with ``io/read_window`` off (each tensor
split between threads by its own read, as before issue 17's fix), and ``native/native nw``.

Without ``--src`` the corpus models are used (``bigsmall.testing.corpus``), each compressed
once with the default coder into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

import bigsmall
import bigsmall.native as native


def _models(names: list[str]) -> dict[str, Path]:
    from bigsmall.testing import corpus

    known = {"minilm-bf16": corpus.minilm_bf16, "whisper-tiny-fp16": corpus.whisper_tiny_safetensors,
             "minilm-fp32": corpus.minilm_safetensors}
    return {n: Path(known[n]()) for n in names}


def _tensors(path: Path) -> tuple[mmap.mmap, list[tuple[int, int]]]:
    """The file's memory map and every tensor's (start, end) byte offsets in it."""
    f = path.open("rb")
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    f.close()
    n = int.from_bytes(mm[:8], "little")
    header = json.loads(mm[8 : 8 + n])
    spans = [(8 + n + v["data_offsets"][0], 8 + n + v["data_offsets"][1])
             for k, v in header.items() if k != "__metadata__"]
    return mm, spans


def _copy(mm: mmap.mmap, spans: list[tuple[int, int]], pool: ThreadPoolExecutor) -> int:
    view = np.frombuffer(mm, np.uint8)

    def one(span: tuple[int, int]) -> int:
        a = np.empty(span[1] - span[0], np.uint8)  # fresh memory: its page faults count
        a[...] = view[span[0] : span[1]]
        return a.nbytes

    return sum(pool.map(one, spans))


def _decode(bs_path: Path, threads: int) -> int:
    total = 0
    with bigsmall.open(bs_path, threads=threads) as f:
        for name in f.names():
            total += f.read(name).nbytes
    return total


def _run(impl: str, bs_path: Path, threads: int, window: bool = True) -> int:
    from bigsmall.io import read_window, reader

    native.use("all" if impl == "native" else "0")
    reader.SMALL_BYTES = read_window.SMALL_BYTES if window else -1  # -1: no tensor is small
    try:
        return _decode(bs_path, threads)
    finally:
        reader.SMALL_BYTES = read_window.SMALL_BYTES


def _measure(name: str, src: Path, bs_path: Path, threads: int, repeat: int,
             pool: ThreadPoolExecutor, scaling: bool = False, no_window: bool = False) -> None:
    bigsmall.compress(src, bs_path, verify=False)
    mm, spans = _tensors(src)
    bs_path.read_bytes()  # page cache warm
    variants: dict[str, Callable[[], int]] = {"copy": partial(_copy, mm, spans, pool)}
    if native.built() is not None:
        variants["native"] = partial(_run, "native", bs_path, threads)
    variants["numba"] = partial(_run, "numba", bs_path, threads)
    if scaling and "native" in variants:
        variants["native 1t"] = partial(_run, "native", bs_path, 1)
    if no_window and "native" in variants:
        variants["native nw"] = partial(_run, "native", bs_path, threads, False)
    for f in variants.values():  # warm-up: kernels loaded, caches filled
        f()
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpus: dict[str, list[float]] = {k: [] for k in variants}
    nbytes = 0
    order = list(variants)
    for r in range(repeat):
        for k in order[r % len(order):] + order[: r % len(order)]:  # rotated: no fixed neighbour
            f = variants[k]
            t0, c0 = time.perf_counter(), time.process_time()
            nbytes = f()
            times[k].append(time.perf_counter() - t0)
            cpus[k].append(time.process_time() - c0)
    native.use(os.environ.get(native.ENV, "1"))
    mm.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    # wall (what a user waits) and CPU time of the process, all threads (what it costs; on a
    # loaded machine the wall figure mostly measures the neighbours)
    line = "  ".join(f"{k} {nbytes / med[k] / 1e6:6.0f} MB/s (cpu {nbytes / cpu[k] / 1e6:6.0f})"
                     for k in variants)
    ratios = "  ".join(f"{k}/copy x{med['copy'] / med[k]:.3f}" for k in variants if k != "copy")
    if "native 1t" in med:
        ratios += f"  native/native 1t x{med['native 1t'] / med['native']:.2f}"
    if "native nw" in med:
        ratios += (f"  native/native nw x{med['native nw'] / med['native']:.2f} (cpu "
                   f"x{cpu['native nw'] / cpu['native']:.2f})")
    extra = (f"  native/numba x{med['numba'] / med['native']:.2f} (cpu "
             f"x{cpu['numba'] / cpu['native']:.2f})" if "native" in med else "")
    print(f"{name:20s} {nbytes / 1e6:6.1f} MB  {line}  {ratios}{extra}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="minilm-bf16,whisper-tiny-fp16,minilm-fp32")
    ap.add_argument("--src", nargs="*", default=[], help=".safetensors files instead of --models")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scaling", action="store_true", help="also time the C kernels on 1 thread")
    ap.add_argument("--no-window", action="store_true",
                    help="also time the C kernels with io/read_window off (before/after)")
    args = ap.parse_args(argv)
    srcs = ({Path(s).name: Path(s) for s in args.src} if args.src
            else _models(args.models.split(",")))
    print(f"kernels: {native.status()}; threads {args.threads}; repeat {args.repeat} "
          f"(interleaved rounds, medians; a shared machine: compare ratios)")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.threads) as pool:
        for name, src in srcs.items():
            _measure(name, src, Path(tmp) / f"{name}.bs", args.threads, args.repeat, pool,
                     args.scaling, args.no_window)
    return 0


if __name__ == "__main__":
    sys.exit(main())
