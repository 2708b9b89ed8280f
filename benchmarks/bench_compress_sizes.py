"""Per-tensor fixed costs of ``compress``: CPU of plan + verify by tensor size, this checkout
against another bigsmall package (issue 17).

Each model's tensors are split into ``tiny`` (< 64 KiB: biases, norms), ``mid`` (< 1 MiB) and
``big``; each group is coded and verified as ``compress`` does (``io.compress._encode_one``) on
one thread, ``--reps`` times after a warm-up, and the least ``time.thread_time`` (CPU of the
thread: a neighbour's load does not count) is kept. Each side runs in a child process
(``PYTHONPATH``), the two alternating for ``--rounds`` rounds; the least over the rounds is
printed with this checkout's time over the baseline's.

    python benchmarks/bench_compress_sizes.py --baseline DIR [--models minilm-bf16,...]
                                              [--level fast] [--reps 5] [--rounds 3]

Baseline: ``git archive <commit> | tar -x -C DIR`` and copy the built ``bigsmall/native/*.so``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
import numpy as np
from bigsmall.testing import corpus
from bigsmall.io import compress as C
from bigsmall.io.source import FileSource
names, level, reps = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3])
cache = corpus.default_cache_dir()
paths = {"minilm-bf16": lambda: corpus.minilm_bf16(cache), "minilm-fp32": corpus.minilm_safetensors,
         "whisper-tiny-fp16": lambda: corpus.whisper_tiny_safetensors(cache)}
out = {}
for name in names:
    p = paths[name]()
    inp = C._read_input(p, p.name, True)
    src = FileSource(p)
    groups = {"tiny": [], "mid": [], "big": []}
    for s in inp.header.tensors:
        g = "tiny" if s.nbytes < 65536 else "mid" if s.nbytes < (1 << 20) else "big"
        raw = C._input(src, inp.header.data_start + s.begin, s.nbytes)
        groups[g].append((np.frombuffer(raw, np.uint8), s))
    for g, items in groups.items():
        def run():
            for d, s in items:
                C._encode_one(d, s, C.CHUNK_BYTES, True, level, (1, 2), "auto")
        run()
        best = float("inf")
        for _ in range(reps):
            t = time.thread_time()
            run()
            best = min(best, time.thread_time() - t)
        out[f"{name}/{g}"] = (len(items), best)
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--models", default="minilm-bf16,whisper-tiny-fp16,minilm-fp32")
    ap.add_argument("--level", default="fast")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    here = str(Path(__file__).resolve().parent.parent)
    runs: dict[str, list[dict[str, list[float]]]] = {"this": [], "base": []}
    for _ in range(a.rounds):
        for who, pp in (("base", a.baseline), ("this", here)):
            env = dict(os.environ, PYTHONPATH=pp)
            o = subprocess.run([sys.executable, "-c", CHILD, a.models, a.level, str(a.reps)],
                               env=env, capture_output=True, text=True, cwd="/", check=True)
            runs[who].append(json.loads(o.stdout.strip().splitlines()[-1]))
    print(f"CPU of plan + verify, one thread, level {a.level}: least of {a.reps} runs x {a.rounds} "
          f"interleaved rounds")
    for k, (n, _) in runs["this"][0].items():
        t = min(r[k][1] for r in runs["this"])
        b = min(r[k][1] for r in runs["base"])
        print(f"  {k:26s} {n:4d} tensors  this {t * 1e3:7.1f} ms ({t / n * 1e6:6.0f} us each)  "
              f"baseline {b * 1e3:7.1f} ms  x{t / b:.3f}")


if __name__ == "__main__":
    main()
