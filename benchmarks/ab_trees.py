"""This checkout against another one (e.g. the commit before a change), on one operation.

Why: on a shared 2-core VM a change worth 5 % drowns in the minute-to-minute drift between two
runs; here fresh processes of the two trees alternate (A B B A ...), each doing two untimed
calls and then ``--calls`` timed ones, and the medians of all timed calls are compared, wall
and CPU (the process's, all threads). Each tree needs its C extensions built in place
(``git worktree add /tmp/old HEAD~ && cd /tmp/old && python setup.py build_ext --inplace``).

    python benchmarks/ab_trees.py /tmp/old [--op fast|default|decompress|read]
                                  [--models bf16,fp16,fp32] [--rounds 4] [--calls 5]

``fast``/``default``: ``compress`` at that level, ``--no-fsync``; ``decompress``: restore,
``--no-fsync``; ``read``: ``bigsmall.open`` and read every tensor (2 threads). The models are the
corpus's MiniLM bf16, Whisper tiny fp16 and MiniLM fp32; outputs are removed outside the clock.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, sys, time
from pathlib import Path
import bigsmall
from bigsmall.testing import corpus
op, model, calls, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
src = {"bf16": corpus.minilm_bf16, "fp16": corpus.whisper_tiny_safetensors,
       "fp32": corpus.minilm_safetensors}[model]()
bs = work / "in.bs"
if op in ("decompress", "read"):
    bigsmall.compress(src, bs, force=True, durable=False)
def one():
    out = work / "out"
    if out.exists():
        out.unlink()
    t, c = time.perf_counter(), time.process_time()
    if op in ("fast", "default"):
        bigsmall.compress(src, out, level=op, durable=False)
    elif op == "decompress":
        bigsmall.decompress(bs, out, durable=False)
    else:
        with bigsmall.open(bs, threads=2) as f:
            for name in f.names():
                f.read(name)
    return time.perf_counter() - t, time.process_time() - c
one(), one()
print(json.dumps([one() for _ in range(calls)]))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("other", help="the other checkout (its C extensions built in place)")
    ap.add_argument("--op", choices=("fast", "default", "decompress", "read"), default="fast")
    ap.add_argument("--models", default="bf16,fp16,fp32")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--calls", type=int, default=5)
    args = ap.parse_args(argv)
    trees = {"this": str(Path(__file__).resolve().parent.parent), "other": str(Path(args.other).resolve())}
    for model in args.models.split(","):
        res: dict[str, list[list[float]]] = {k: [] for k in trees}
        for r in range(args.rounds):
            for k in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                env = dict(os.environ, PYTHONPATH=trees[k])
                with tempfile.TemporaryDirectory() as work:
                    out = subprocess.run([sys.executable, "-c", _CHILD, args.op, model,
                                          str(args.calls), work], cwd=trees[k], env=env,
                                         capture_output=True, text=True)
                if out.returncode:
                    print(out.stderr[-2000:], file=sys.stderr)
                    return 1
                res[k] += json.loads(out.stdout.strip().splitlines()[-1])
        w = {k: statistics.median(x[0] for x in v) for k, v in res.items()}
        c = {k: statistics.median(x[1] for x in v) for k, v in res.items()}
        print(f"{args.op} {model}: this wall {w['this'] * 1e3:.1f} ms cpu {c['this'] * 1e3:.1f} | "
              f"other wall {w['other'] * 1e3:.1f} cpu {c['other'] * 1e3:.1f} | this is "
              f"x{w['other'] / w['this']:.3f} as fast (cpu x{c['other'] / c['this']:.3f})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
