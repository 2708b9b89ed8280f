"""Cold-start cost of the command line: ``bigsmall info`` + ``bigsmall decompress`` of a small file.

What a user waits for on a tiny model is not decoding but start-up: interpreter, imports, numba
loading its cached kernels, shutdown. Each command runs in a fresh process (``python -m
bigsmall``), after one untimed warm-up run of each so that numba's on-disk cache is filled; the
figures are medians of ``--repeat`` runs, next to the bare interpreter and ``import numpy``
measured in the same run (the machine's floor, and its load at the time).

    python benchmarks/cold_start.py [--repeat 7] [--src FILE.safetensors] [--baseline DIR] [--numba]

``--baseline DIR`` also times the bigsmall package found in DIR (e.g. an older checkout:
``git archive HEAD | tar -x -C DIR``), interleaved with this one, same file, same run.

Python's bytecode cache is on for the runs, as on a user's machine (pip writes it at install,
and an editable checkout on first import): ``PYTHONDONTWRITEBYTECODE`` is removed from the
commands' environment, so the warm-up run fills ``__pycache__`` like it fills numba's cache. A
sandbox that sets it (this project's dev VM does) otherwise recompiles every bigsmall module
from source on each start: measured on that VM, ``decompress`` of the small file took 0.94 s
(median of 6) with the modules' ``.pyc`` files deleted before each run and 0.80 s with them,
alternating.

Without ``--src`` it builds a 1 MB file (issue 17's cold-start case): a 512x1024 bf16 matrix
and a 1024-element fp32 vector. With the C kernels built, neither command imports numba
(``bigsmall.native``: the decoders and table builders are C; ``native/jit.py`` imports numba
only when a numba kernel runs); ``BIGSMALL_NATIVE=0`` in the environment times the numba path.
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

import numpy as np

from bigsmall.testing.synthetic import write_safetensors

TARGET_S = 0.5  # info + decompress of a 1 MB file, issue 17's goal


def small_file(path: Path) -> Path:
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((512, 1024)) * 0.02).astype(np.float32)
    bf16 = (a.view(np.uint32) >> 16).astype(np.uint16)
    return write_safetensors(path, {"w": ("BF16", (512, 1024), bf16.tobytes()),
                                    "b": ("F32", (1024,), a[0].tobytes())})


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--src", type=Path, help="a .safetensors file (default: a built small file)")
    ap.add_argument("--baseline", type=Path, help="also time the bigsmall package in this folder")
    ap.add_argument("--numba", action="store_true",
                    help="also time BIGSMALL_NATIVE=0 (numba kernels), interleaved")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    py = sys.executable
    base_env = dict(os.environ)
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = args.src or small_file(work / "small.safetensors")
        bs = work / "small.bs"
        out = work / "out.safetensors"
        info = ["-m", "bigsmall", "info", str(bs)]
        dec = ["-m", "bigsmall", "decompress", str(bs), "-o", str(out), "-f"]
        variants: dict[str, dict[str, str]] = {"": base_env}
        if args.baseline is not None:
            variants["baseline "] = {**base_env, "PYTHONPATH": str(args.baseline.resolve())}
        if args.numba:  # the same package on the numba path, interleaved
            variants["numba "] = {**base_env, "BIGSMALL_NATIVE": "0"}
        cmds: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([py, "-c", "pass"], base_env),
            "import numpy": ([py, "-c", "import numpy"], base_env),
        }
        for tag, env in variants.items():
            cmds[f"{tag}info"] = ([py, *info], env)
            cmds[f"{tag}decompress"] = ([py, *dec], env)
        subprocess.run([py, "-m", "bigsmall", "compress", str(src), "-o", str(bs), "-f"],
                       check=True, stdout=subprocess.DEVNULL, env=base_env)
        for cmd, env in cmds.values():  # warm: numba cache filled, files in page cache
            wall(cmd, env)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.repeat):  # interleaved, so load changes hit every command alike
            for k, (cmd, env) in cmds.items():
                times[k].append(wall(cmd, env))
        if out.read_bytes() != Path(src).read_bytes():
            raise SystemExit("decompress did not restore the source bytes")
    med = {k: statistics.median(v) for k, v in times.items()}
    totals = {tag: med[f"{tag}info"] + med[f"{tag}decompress"] for tag in variants}
    if args.json:
        print(json.dumps({"median_s": med, "all_s": times, "info_plus_decompress_s": totals,
                          "target_s": TARGET_S,
                          "src": str(args.src or "built small file")}))
        return 0
    print(f"cold start, fresh processes, medians of {args.repeat} (min..max)")
    for k, v in times.items():
        print(f"  {k:22s} {med[k]:6.3f} s   ({min(v):.3f}..{max(v):.3f})")
    for tag, total in totals.items():
        print(f"  {tag}info + decompress {total:6.3f} s   (target <= {TARGET_S:.1f} s: "
              f"{'met' if total <= TARGET_S else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
