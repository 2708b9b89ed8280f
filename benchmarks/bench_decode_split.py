"""Where a decode's CPU time goes, stage by stage, and the thread split of a whole decode.

Two parts (issue 17: "most of a decompress's CPU is outside the entropy kernels"; measure it):

1. **Stages**, CPU time of one thread, each stage run alone over every tensor of the file
   (medians over ``--repeat`` rounds): mapping the blobs, allocating the outputs, parsing the
   side information (``plan_decode``: zstd of the head, decode tables), the entropy kernels
   (first touch of fresh outputs, then again into the same memory), the xxh3 receipts, the
   file's sha256 receipt, writing the bytes to a file, and the whole ``read`` of every tensor.
2. **Threads**: ``bigsmall.open(...).read`` of every tensor and ``bigsmall.decompress``
   (``durable=False``) at 1 and 2 threads, as wall time, CPU time of the process and CPU time
   of the calling thread (on a busy shared machine the wall time follows the neighbours; the
   calling thread's CPU is the serial share a quiet machine cannot spread over its cores).
   ``--compare DIR`` runs the same, interleaved round by round, with another checkout of
   bigsmall (``git worktree add DIR COMMIT``; warm its numba cache first) on ``PYTHONPATH``;
   with ``--own-files`` each checkout decodes the file that it compresses itself with its
   defaults (a change of the files' layout: coder choice, chunking), else both the same file.

    python benchmarks/bench_decode_split.py [--src FILE.safetensors] [--repeat 5]
        [--compare /tmp/before [--own-files]] [--rounds 3]

Without ``--src``: MiniLM bf16 from the corpus (``bigsmall.testing.corpus.minilm_bf16``),
compressed once with the default coder into a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, sys, time
import bigsmall
p, th, reps, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def read():
    with bigsmall.open(p, threads=th) as f:
        for n in f.names():
            f.read(n)
def dec():
    bigsmall.decompress(p, out, force=True, threads=th, durable=False)
read(); dec()
res = {"read": [], "decompress": []}
for _ in range(reps):
    for k, fn in (("read", read), ("decompress", dec)):
        t, c, tt = time.perf_counter(), time.process_time(), time.thread_time()
        fn()
        res[k].append((time.perf_counter() - t, time.process_time() - c, time.thread_time() - tt))
print(json.dumps(res))
"""


def stages(bs_path: Path, repeat: int, work: Path) -> None:
    import numpy as np
    import xxhash

    from bigsmall.io.reader import BsFile
    from bigsmall.plan.decode import plan_decode

    clock = time.thread_time
    res: dict[str, list[float]] = {}
    with BsFile(bs_path, threads=1) as f:
        ents = [f._resolve(f.entry(n)) for n in f.names()]
        total = sum(e.spec.nbytes for e in ents)
        for _ in range(repeat):
            d: dict[str, float] = {}
            t = clock()
            blobs = [f.source.view(e.offset, e.length) for e in ents]
            d["map the blobs (views)"] = clock() - t
            t = clock()
            outs = [np.empty(e.spec.nbytes, np.uint8) for e in ents]
            d["allocate outputs"] = clock() - t
            t = clock()
            jobs = [plan_decode(e.spec, e.codec, e.params, b, e.head_len, e.chunk_lens)
                    for e, b in zip(ents, blobs, strict=True)]
            d["side information (plan_decode)"] = clock() - t
            t = clock()
            for j, o in zip(jobs, outs, strict=True):
                j.run_all(o)
            d["kernels, fresh outputs"] = clock() - t
            t = clock()
            for j, o in zip(jobs, outs, strict=True):
                j.run_all(o)
            d["kernels, same outputs again"] = clock() - t
            t = clock()
            for o in outs:
                xxhash.xxh3_128_hexdigest(o.data)
            d["xxh3 receipts"] = clock() - t
            t = clock()
            h = hashlib.sha256()
            for o in outs:
                h.update(o.data)
            d["file sha256 (decompress only)"] = clock() - t
            t = clock()
            with open(work / "split.bin", "wb") as fh:
                for o in outs:
                    fh.write(o.data)
            d["write to a file (decompress only)"] = clock() - t
            os.unlink(work / "split.bin")
            del jobs, blobs
            t = clock()
            for n in f.names():
                f.read(n)
            d["TOTAL: read() of every tensor"] = clock() - t
            for k, v in d.items():
                res.setdefault(k, []).append(v)
    print(f"stages, CPU of one thread ({len(ents)} tensors, {total / 1e6:.1f} MB, medians of {repeat}):")
    for k, v in res.items():
        print(f"  {k:36s} {statistics.median(v) * 1e3:8.1f} ms")


def _env(tree: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = str(tree)
    return env


def threads(bs_path: Path, trees: dict[str, str | None], rounds: int, work: Path, size: int,
            own: dict[str, Path] | None = None) -> None:
    res: dict[tuple[str, int, str], list[list[float]]] = {}
    for r in range(rounds):
        names = list(trees) if r % 2 == 0 else list(trees)[::-1]
        for th in (1, 2):
            for name in names:
                env = _env(trees[name])
                path = own[name] if own else bs_path
                out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(th), "3",
                                      str(work / f"out-{name}-{th}.safetensors")], env=env,
                                     capture_output=True, text=True, check=True, cwd=work)
                for k, v in json.loads(out.stdout).items():
                    res.setdefault((k, th, name), []).extend(v)
    print(f"threads (medians of {rounds} rounds x 3; wall, CPU of the process, CPU of the caller):")
    for (k, th, name), v in sorted(res.items()):
        w, c, tt = (statistics.median(x[i] for x in v) for i in range(3))
        print(f"  {k:10s} threads {th} {name:8s} wall {w * 1e3:7.1f} ms ({size / w / 1e6:5.0f} MB/s)"
              f"  process {c * 1e3:6.1f} ms  caller {tt * 1e3:6.1f} ms")
    print(f"  load average {os.getloadavg()[0]:.1f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compare", default=None, help="another bigsmall checkout, run interleaved")
    ap.add_argument("--own-files", action="store_true",
                    help="with --compare: each checkout decodes its own default compression")
    args = ap.parse_args(argv)
    import bigsmall

    if args.src is None:
        from bigsmall.testing import corpus

        args.src = Path(corpus.minilm_bf16())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bs = work / "model.bs"
        bigsmall.compress(args.src, bs, verify=False)
        stages(bs, args.repeat, work)
        trees: dict[str, str | None] = {"this": str(Path(bigsmall.__file__).parents[1])}
        if args.compare:
            trees["compare"] = str(Path(args.compare).resolve())
        own = None
        if args.compare and args.own_files:
            own = {"this": bs, "compare": work / "compare.bs"}
            code = ("import sys, bigsmall; r = bigsmall.compress(sys.argv[1], sys.argv[2], verify=False); "
                    "print(f'compare: its own file, ratio {r.ratio * 100:.3f} %')")
            print(subprocess.run([sys.executable, "-c", code, str(args.src), str(own["compare"])],
                                 env=_env(trees["compare"]), capture_output=True, text=True,
                                 check=True, cwd=work).stdout.strip())
        print(f"this: ratio {bs.stat().st_size / args.src.stat().st_size * 100:.3f} % (container "
              "bytes / source bytes)")
        threads(bs, trees, args.rounds, work, args.src.stat().st_size, own)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
