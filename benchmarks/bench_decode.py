"""Decode speed: the ``field`` kernel alone on real chunks, and whole decode-into-memory.

Why both: the kernel figure (elements/s on one core, no Python in the loop) says how fast the
entropy decoder itself is; the decode-into-memory figure (open + read every tensor, receipts
checked, 1 and N threads) says what a user gets, and the gap between the two is shell overhead
(blob reads, side-information parsing, thread dispatch, checksums). The *kernel, no shell* line
runs the same prepared chunk jobs on 1 and N threads with nothing else in the process: the
thread scaling this machine allows right now (on a shared VM it moves with the neighbours' load),
against which the pipelined path's speed-up should be judged.

    python benchmarks/bench_decode.py [SRC.bs | SRC.safetensors] [--repeat 5] [--threads 2]

Without SRC it compresses the bf16 MiniLM of the test corpus into a temporary file first.
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

from bigsmall.codecs import rans
from bigsmall.codecs.field import _UINT
from bigsmall.core.decode import DecodeJob, plan_decode
from bigsmall.io.reader import BsFile


def _field_jobs(bs: BsFile) -> list[tuple[DecodeJob, np.ndarray]]:
    """(prepared job, output buffer) of every ``field`` tensor: the kernel's real inputs."""
    jobs = []
    for t in bs.container.tensors:
        if t.codec != "field":
            continue
        blob = bs.source.read(t.offset, t.length)
        job = plan_decode(t.spec, t.codec, t.params, blob, t.head_len, t.chunk_lens)
        jobs.append((job, np.empty(t.spec.nbytes, np.uint8)))
    return jobs


def _kernel_pass(jobs: list[tuple[DecodeJob, np.ndarray]]) -> tuple[float, int]:
    """One single-threaded pass of the numba kernel over every chunk: (CPU seconds of this
    thread, elements). CPU time, not wall time: on a shared machine other processes' load then
    does not count against the kernel."""
    calls = []
    for job, out in jobs:
        st = job.state
        lay = st.lay
        per = int(job.params["chunk"])
        ncols = int(job.params["matrix"][1])
        for idx, chunk, b, e in job.chunks:
            dst = out[b:e].view(_UINT[lay.width // 8])
            calls.append((dst, idx * per, ncols, st, lay, np.frombuffer(chunk, np.uint8)))
    n = 0
    t0 = time.thread_time()
    for dst, k0, ncols, st, lay, buf in calls:
        rc = rans.decode_chunk(dst, k0, ncols, st.rowctx, st.colctx, st.tsym, st.tfc, st.prob_bits,
                               st.msym, st.mfc, st.mprob_bits, lay.p, lay.eb, lay.mb, st.rshift, buf)
        if rc != 0:
            raise RuntimeError(f"kernel returned {rc}")
        n += dst.shape[0]
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

            path = Path(d) / "model.bs"
            bigsmall.compress(src, path, force=True)
        else:
            path = src
        with BsFile(path, threads=1) as bs:
            size = bs.original_size
            jobs = _field_jobs(bs)
        _kernel_pass(jobs)  # JIT / cache load, page faults of the outputs
        med = statistics.median
        ks, n = [], 0
        for _ in range(args.repeat):
            s, n = _kernel_pass(jobs)
            ks.append(s)
        fbytes = sum(out.size for _, out in jobs)
        print(f"{path} ({size / 1e6:.1f} MB, field: {n} elements, {fbytes / 1e6:.1f} MB), "
              f"repeat={args.repeat}, medians")
        print(f"  kernel, 1 thread     {n / med(ks) / 1e6:8.1f} M elements/s  "
              f"{fbytes / med(ks) / 1e6:8.1f} MB/s   (CPU time; best run "
              f"{n / min(ks) / 1e6:.1f} M elements/s)")
        _decode_all(path, 1)
        for label, fn in (("kernel, no shell", lambda _p, th: _kernel_threads(jobs, th)),
                          ("read_bytes", _decode_all), ("iter_decoded", _iter_all)):
            t1, tn = [], []
            for _ in range(args.repeat):  # interleaved: both see the same machine load
                t1.append(fn(path, 1))
                tn.append(fn(path, args.threads))
            print(f"  {label:<16} 1 thread  {size / med(t1) / 1e6:8.1f} MB/s   "
                  f"{args.threads} threads {size / med(tn) / 1e6:8.1f} MB/s   "
                  f"speed-up x{med(t1) / med(tn):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
