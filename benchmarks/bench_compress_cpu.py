"""Where compress's CPU goes: per kernel, one thread, this checkout and (``--baseline DIR``)
another bigsmall package, e.g. an export of an older commit with its built extensions.

Each tensor of each model is coded and verified as ``compress`` does (``io.compress._encode_one``:
plan, then the verify pass), on the calling thread, once to warm up and then under
``cProfile`` with ``time.thread_time`` as its clock (CPU time of the thread: a neighbour's load
on a shared machine does not count). The file-level hashes (sha256 receipt, xxh3 per tensor)
are timed apart. Prints the total and the largest entries per model and level, the baseline's
beside it when given (run in a child process with ``PYTHONPATH=DIR``).

    python benchmarks/bench_compress_cpu.py [--models minilm-bf16,whisper-tiny-fp16,minilm-fp32]
                                            [--levels fast,default] [--top 8] [--repeat 3]
                                            [--baseline DIR]

Baseline: ``git archive <commit> bigsmall | tar -x -C DIR`` and copy the built
``bigsmall/native/*.so`` of that commit (or build them there).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import cProfile, hashlib, json, pstats, sys, time
from pathlib import Path
import numpy as np, xxhash
from bigsmall.testing import corpus
from bigsmall.io import compress as C
from bigsmall.io.source import FileSource
cache = corpus.default_cache_dir()
paths = {"minilm-bf16": lambda: corpus.minilm_bf16(cache), "minilm-fp32": corpus.minilm_safetensors,
         "whisper-tiny-fp16": lambda: corpus.whisper_tiny_safetensors(cache)}
models, levels, top = sys.argv[1].split(","), sys.argv[2].split(","), int(sys.argv[3])
out = {}
for name in models:
    p = paths[name]()
    inp = C._read_input(p, p.name, True)
    src = FileSource(p)
    tensors = [(s, np.frombuffer(C._input(src, inp.header.data_start + s.begin, s.nbytes), np.uint8))
               for s in inp.header.tensors]
    t = time.thread_time()
    hashlib.sha256(p.read_bytes()).hexdigest()
    sha = time.thread_time() - t
    t = time.thread_time()
    for s, d in tensors:
        xxhash.xxh3_128_hexdigest(d)
    xxh = time.thread_time() - t
    for level in levels:
        def run():
            for s, d in tensors:
                C._encode_one(d, s, C.CHUNK_BYTES, True, level, (1, 2), "auto")
        run()
        pr = cProfile.Profile(time.thread_time)
        t = time.thread_time()
        pr.enable(); run(); pr.disable()
        total = time.thread_time() - t
        st = pstats.Stats(pr).stats
        rows = sorted(((v[2], f"{k[2]}" if k[0] == "~" else f"{Path(k[0]).name}:{k[2]}")
                       for k, v in st.items()), reverse=True)[:top]
        out[f"{name} {level}"] = {"total": total, "sha256": sha, "xxh3": xxh,
                                  "top": [(n, round(s, 4)) for s, n in rows]}
print(json.dumps(out))
"""


def run(models: str, levels: str, top: int, pythonpath: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = pythonpath
    # -P: not the working directory first on the path, so PYTHONPATH picks the package
    res = subprocess.run([sys.executable, "-P", "-c", CHILD, models, levels, str(top)], env=env,
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"child failed ({pythonpath}):\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _median(runs: list[dict], key: str) -> dict:
    """Medians over runs of a model/level's total and of each of its top entries."""
    tops: dict[str, list[float]] = {}
    for r in runs:
        for n, t in r[key]["top"]:
            tops.setdefault(n, []).append(t)
    top = sorted(((statistics.median(v), n) for n, v in tops.items()), reverse=True)
    return {"total": statistics.median(r[key]["total"] for r in runs),
            "sha256": statistics.median(r[key]["sha256"] for r in runs),
            "xxh3": statistics.median(r[key]["xxh3"] for r in runs),
            "top": [(n, s) for s, n in top[: len(runs[0][key]["top"])]]}


def _short(name: str) -> str:
    return name.replace("<built-in method bigsmall.native.", "").replace(
        "<method 'compress' of 'zstandard.backend_c.ZstdCompressor' objects>", "zstd").rstrip(">")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="minilm-bf16,whisper-tiny-fp16,minilm-fp32")
    ap.add_argument("--levels", default="fast,default")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", default=None)
    a = ap.parse_args()
    root = str(Path(__file__).resolve().parents[1])
    here_runs, base_runs = [], []
    for _ in range(a.repeat):  # interleaved: both see the same neighbours
        here_runs.append(run(a.models, a.levels, a.top, root))
        if a.baseline:
            base_runs.append(run(a.models, a.levels, a.top, a.baseline))
    print(f"CPU seconds, one thread, plan + verify of every tensor (cProfile, thread_time clock;"
          f" medians of {a.repeat} interleaved runs; own time of the largest entries)\n")
    for key in here_runs[0]:
        r = _median(here_runs, key)
        b = _median(base_runs, key) if base_runs else None
        line = f"{key:28s} total {r['total']:.3f} s"
        if b:
            line += f"   baseline {b['total']:.3f} s  x{r['total'] / b['total']:.2f}"
        print(line + f"   (+ sha256 {r['sha256']:.3f} s, xxh3 {r['xxh3']:.3f} s per file)")
        for label, res in (("this", r), ("baseline", b)):
            if res is not None:
                print(f"    {label:9s}" + ", ".join(f"{_short(n)} {s:.3f}" for n, s in res["top"]))
        print()


if __name__ == "__main__":
    main()
