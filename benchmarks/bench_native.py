"""Decompress file -> file with the default coder: the C kernels, numba, and ZipNN 0.5.4.

Why interleaved in one run: the machine is shared, so each round runs every tool once, in turn,
and medians over rounds (and their ratios) are compared, never figures from different runs.
bigsmall is timed in this process (``bigsmall.decompress(..., durable=False)``, page cache warm,
every C kernel (``BIGSMALL_NATIVE=all``) or numba switched with ``bigsmall.native.use``); ZipNN runs in a child of the peers
venv (``BIGSMALL_PEERS_PYTHON``, as ``benchmarks/peers.py``), one decompress per round, timed
inside the child from reading its file to writing the output (neither side syncs); each
figure also as CPU time of the process (all threads). MB/s counts
the original file's bytes.

    BIGSMALL_PEERS_PYTHON=/tmp/peers/bin/python python benchmarks/bench_native.py \\
        [--models minilm-bf16,whisper-tiny-fp16,minilm-fp32] [--repeat 7] [--threads 2]
    python benchmarks/bench_native.py --kernels   # the kernels alone, CPU time of one thread
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory_decode import _models  # noqa: E402

import bigsmall  # noqa: E402
import bigsmall.native as native  # noqa: E402

_ZIPNN = r"""
import sys, time
from zipnn import ZipNN
mode, src, dst, dtype, threads = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
z = ZipNN(input_format="byte", bytearray_dtype=dtype, threads=threads)
t, c = time.perf_counter(), time.process_time()
data = open(src, "rb").read()
out = z.compress(data) if mode == "c" else z.decompress(data)
open(dst, "wb").write(out)
print(time.perf_counter() - t, time.process_time() - c)
"""
ZIPNN_DTYPE = {"minilm-bf16": "bfloat16", "whisper-tiny-fp16": "float16", "minilm-fp32": "float32"}


def _zipnn(py: str, mode: str, src: Path, dst: Path, dtype: str, threads: int) -> tuple[float, float]:
    res = subprocess.run([py, "-c", _ZIPNN, mode, str(src), str(dst), dtype, str(threads)],
                         capture_output=True, text=True, check=True)
    wall, cpu = res.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def _bigsmall(impl: str, bs: Path, out: Path, threads: int) -> tuple[float, float]:
    native.use("all" if impl == "native" else "0")
    t, c = time.perf_counter(), time.process_time()
    bigsmall.decompress(bs, out, force=True, threads=threads, durable=False)
    return time.perf_counter() - t, time.process_time() - c


def _kernel_jobs(bs_path: Path) -> list[tuple[Any, np.ndarray]]:
    """(prepared decode job, output) of every field8/fieldp tensor: the kernels' real inputs."""
    from bigsmall.io.reader import BsFile
    from bigsmall.plan.decode import plan_decode

    jobs = []
    with BsFile(bs_path) as bs:
        for t in bs.container.tensors:
            if t.codec in ("field8", "fieldp"):
                blob = bs.source.read(t.offset, t.length)
                job = plan_decode(t.spec, t.codec, t.params, blob, t.head_len, t.chunk_lens)
                jobs.append((job, np.empty(t.spec.nbytes, np.uint8)))
    return jobs


def _kernels_only(name: str, bs_path: Path, repeat: int) -> None:
    """Decode kernels alone (every field8/fieldp tensor, one thread, CPU time of the thread)
    and fieldp's chunk encoder alone, native against numba, interleaved."""
    from bigsmall.codecs.base import get_codec

    jobs = _kernel_jobs(bs_path)
    codecs = sorted({j.codec.codec_id for j, _ in jobs})
    nbytes = sum(out.nbytes for _, out in jobs)
    for job, out in jobs:
        job.run_all(out)
    # the encoder's input: the decoded tensors (copies: the decode loop below rewrites ``out``)
    models = [m for m in (get_codec("field8").model(out.copy(), j.spec, "fast")  # type: ignore[attr-defined]
                          for j, out in jobs if j.codec.codec_id == "fieldp") if m is not None]
    fp = get_codec("fieldp")
    ebytes = sum(m.values.nbytes for m in models)
    dec: dict[str, list[float]] = {"native": [], "numba": []}
    enc: dict[str, list[float]] = {"native": [], "numba": []}
    for r in range(repeat + 1):
        for impl in ("native", "numba") if r % 2 else ("numba", "native"):
            native.use("all" if impl == "native" else "0")
            t = time.thread_time()
            for job, out in jobs:
                job.codec.decode_strided(job.state, job.spec, job.params, job.blob, job.offsets,
                                         0, 1, out)
            d = time.thread_time() - t
            t = time.thread_time()
            for m in models:
                fp.plan(m, 1 << 18)  # type: ignore[attr-defined]
            if r:
                dec[impl].append(d)
                enc[impl].append(time.thread_time() - t)
    native.use(os.environ.get(native.ENV, "1"))
    md = {k: statistics.median(v) for k, v in dec.items()}
    me = {k: statistics.median(v) for k, v in enc.items()}
    print(f"{name:18s} decode kernels ({'+'.join(codecs)}, {nbytes / 1e6:.1f} MB): native "
          f"{nbytes / md['native'] / 1e6:5.0f} MB/s  numba {nbytes / md['numba'] / 1e6:5.0f} MB/s"
          f"  x{md['numba'] / md['native']:.2f};  fieldp chunk coding ({ebytes / 1e6:.1f} MB): "
          f"x{me['numba'] / me['native']:.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="minilm-bf16,whisper-tiny-fp16,minilm-fp32")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kernels", action="store_true",
                    help="the kernels alone instead (decode and fieldp chunk coding, CPU time)")
    args = ap.parse_args(argv)
    peers = os.environ.get("BIGSMALL_PEERS_PYTHON")
    print(f"kernels: {native.status()}; threads {args.threads}; repeat {args.repeat}; ZipNN: "
          f"{peers or 'not run (set BIGSMALL_PEERS_PYTHON)'} (interleaved rounds, medians; a "
          "shared machine: compare ratios)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, src in _models(args.models.split(",")).items():
            size = src.stat().st_size
            bs = work / f"{name}.bs"
            bigsmall.compress(src, bs, verify=False)
            if args.kernels:
                _kernels_only(name, bs, args.repeat)
                continue
            tools = ["native", "numba"] if native.built() is not None else ["numba"]
            if peers:
                _zipnn(peers, "c", src, work / "m.znn", ZIPNN_DTYPE[name], args.threads)
                tools.append("zipnn")
            times: dict[str, list[float]] = {k: [] for k in tools}
            cpus: dict[str, list[float]] = {k: [] for k in tools}
            for r in range(args.repeat + 1):  # round 0 warms up (kernels, page cache)
                # the order rotates: whoever follows the ZipNN child (its process start, its
                # 100 MB of I/O) would otherwise always start on cold caches
                for k in tools[r % len(tools):] + tools[: r % len(tools)]:
                    if k == "zipnn":
                        assert peers
                        s = _zipnn(peers, "d", work / "m.znn", work / "z.out",
                                   ZIPNN_DTYPE[name], args.threads)
                    else:
                        s = _bigsmall(k, bs, work / "b.out", args.threads)
                    if r:
                        times[k].append(s[0])
                        cpus[k].append(s[1])
            native.use(os.environ.get(native.ENV, "1"))
            assert (work / "b.out").read_bytes() == src.read_bytes()
            med = {k: statistics.median(v) for k, v in times.items()}
            cpu = {k: statistics.median(v) for k, v in cpus.items()}
            # wall (what a user waits) and CPU time of the process, all its threads (what the
            # work costs; on a loaded machine wall time mostly measures the neighbours)
            cols = "  ".join(f"{k} {size / med[k] / 1e6:5.0f} MB/s (cpu {size / cpu[k] / 1e6:5.0f})"
                             for k in tools)
            rel = "  ".join(f"{k}/zipnn x{med['zipnn'] / med[k]:.2f}" for k in tools
                            if "zipnn" in med and k != "zipnn")
            nn = (f"  native/numba x{med['numba'] / med['native']:.2f} (cpu "
                  f"x{cpu['numba'] / cpu['native']:.2f})" if "native" in med else "")
            print(f"{name:18s} {size / 1e6:6.1f} MB  {cols}  {rel}{nn}", flush=True)
            print(json.dumps({"model": name, "bytes": size, "median_s": med, "cpu_s": cpu}),
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
