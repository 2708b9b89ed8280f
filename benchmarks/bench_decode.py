"""Decode speed: the ``field`` / ``field8`` / ``fieldp`` kernels alone on real chunks, and whole
decode-into-memory.

Why both: the kernel figure (elements/s on one core, no Python in the loop) says how fast the
entropy decoder itself is; the decode-into-memory figure (open + read every tensor, receipts
checked, 1 and N threads) says what a user gets, and the gap between the two is shell overhead
(blob reads, side-information parsing, thread dispatch, checksums). The *kernel, no shell* line
runs the same prepared chunk jobs on 1 and N threads with nothing else in the process: the
thread scaling this machine allows right now (on a shared VM it moves with the neighbours' load),
against which the pipelined path's speed-up should be judged.

    python benchmarks/bench_decode.py [SRC.bs | SRC.safetensors] [--repeat 5] [--threads 2]

Without SRC it compresses the bf16 MiniLM of the test corpus into a temporary file first; a
``.safetensors`` SRC is compressed three times, with the prefix coder (format 1.2, ``fieldp``),
as format 1.1 (``field8``, the default) and as format 1.0 (``field``), and all three containers
are measured in this run.
All figures are medians of ``--repeat`` runs taken in this one process; MB/s counts decoded
(original) bytes. The kernel figure is CPU time of the decoding thread; decode-into-memory is
wall time (what a user waits), so it also shows how busy the machine is.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bigsmall.io.reader import BsFile
from bigsmall.plan.decode import DecodeJob, plan_decode


def _field_jobs(bs: BsFile) -> list[tuple[DecodeJob, np.ndarray]]:
    """(prepared job, output buffer) of every ``field``/``field8`` tensor: the kernels' real inputs."""
    jobs = []
    for t in bs.container.tensors:
        if t.codec not in ("field", "field8", "fieldp"):
            continue
        blob = bs.source.read(t.offset, t.length)
        job = plan_decode(t.spec, t.codec, t.params, blob, t.head_len, t.chunk_lens)
        jobs.append((job, np.empty(t.spec.nbytes, np.uint8)))
    return jobs


def _kernel_pass(jobs: list[tuple[DecodeJob, np.ndarray]]) -> tuple[float, int]:
    """One single-threaded pass of the numba kernel over every chunk: (CPU seconds of this
    thread, elements). CPU time, not wall time: on a shared machine other processes' load then
    does not count against the kernel."""
    n = 0
    t0 = time.thread_time()
    for job, out in jobs:  # one GIL-free kernel call per tensor (all its chunks)
        if not job.codec.decode_strided(job.state, job.spec, job.params, job.blob, job.offsets, 0, 1,
                                        out):
            raise RuntimeError(f"{job.spec.name}: no strided kernel")
        n += out.size // (job.state.lay.width // 8)
    return time.thread_time() - t0, n


def _kernel_threads(jobs: list[tuple[DecodeJob, np.ndarray]], threads: int) -> float:
    """Wall time of every prepared job's strided shares on ``threads`` threads, handed out in
    order from a shared queue: the kernel's own thread scaling, with no reads, parsing,
    allocation or checksums in the way."""
    tasks: queue.SimpleQueue[tuple[DecodeJob, int, int, np.ndarray]] = queue.SimpleQueue()
    for job, out in jobs:
        g = job.groups(threads)
        for k in range(g):
            tasks.put((job, k, g, out))

    def work() -> None:
        while True:
            try:
                job, k, g, out = tasks.get_nowait()
            except queue.Empty:
                return
            job.run_group(k, g, out)

    ts = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def _decode_all(path: Path, threads: int) -> float:
    """Open + read every tensor (receipts checked), as a user's load does."""
    t0 = time.perf_counter()
    with BsFile(path, threads=threads) as bs:
        for name in bs.names():
            bs.read_bytes(name)
    return time.perf_counter() - t0


def _iter_all(path: Path, threads: int) -> float:
    """Open + the pipelined ``iter_decoded`` over every tensor (what restore and load use)."""
    t0 = time.perf_counter()
    with BsFile(path, threads=threads) as bs:
        for _ in bs.iter_decoded(list(bs.container.tensors)):
            pass
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", nargs="?", help=".bs container or .safetensors file (default: MiniLM bf16)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bigsmall-bench-decode-") as d:
        if args.src is None:
            from bigsmall.testing.corpus import minilm_bf16

            src = Path(minilm_bf16())
        else:
            src = Path(args.src)
        if src.suffix != ".bs":
            import bigsmall

            paths = []
            for version, coder in (("1.2", "prefix"), ("1.1", "rans"), ("1.0", "rans")):
                paths.append(Path(d) / f"model-{version}-{coder}.bs")
                bigsmall.compress(src, paths[-1], force=True, format_version=version,
                                  coder=coder)
        else:
            paths = [src]
        for path in paths:
            _measure(path, args.repeat, args.threads)
    return 0


def _measure(path: Path, repeat: int, threads: int) -> None:
    """Print the kernel and decode-into-memory figures of one container."""
    with BsFile(path, threads=1) as bs:
        size = bs.original_size
        jobs = _field_jobs(bs)
        codecs = sorted({job.codec.codec_id for job, _ in jobs})
    _kernel_pass(jobs)  # JIT / cache load, page faults of the outputs
    med = statistics.median
    ks, n = [], 0
    for _ in range(repeat):
        s, n = _kernel_pass(jobs)
        ks.append(s)
    fbytes = sum(out.size for _, out in jobs)
    print(f"{path.name} ({size / 1e6:.1f} MB, {'/'.join(codecs)}: {n} elements, "
          f"{fbytes / 1e6:.1f} MB), repeat={repeat}, medians")
    print(f"  kernel, 1 thread     {n / med(ks) / 1e6:8.1f} M elements/s  "
          f"{fbytes / med(ks) / 1e6:8.1f} MB/s   (CPU time; best run "
          f"{n / min(ks) / 1e6:.1f} M elements/s)")
    _decode_all(path, 1)
    for label, fn in (("kernel, no shell", lambda _p, th: _kernel_threads(jobs, th)),
                      ("read_bytes", _decode_all), ("iter_decoded", _iter_all)):
        t1, tn = [], []
        for _ in range(repeat):  # interleaved: both see the same machine load
            t1.append(fn(path, 1))
            tn.append(fn(path, threads))
        print(f"  {label:<16} 1 thread  {size / med(t1) / 1e6:8.1f} MB/s   "
              f"{threads} threads {size / med(tn) / 1e6:8.1f} MB/s   "
              f"speed-up x{med(t1) / med(tn):.2f}")


if __name__ == "__main__":
    sys.exit(main())
