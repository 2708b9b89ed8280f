"""First run after an install: how long the first ``bigsmall compress`` / ``decompress`` /
``load`` spend compiling numba kernels, and which kernels cost the most.

numba compiles each kernel on first use and caches the machine code on disk (``cache=True``);
a fresh install (or a CI clone) pays the compile once. The C kernels (``bigsmall.native``:
``_kernels`` decoders, ``_enc`` table builders and encoder kernels) replace numba where they are
built, so what is left to compile depends on the path. Each run here is a fresh process
(``python -m bigsmall``, ``bigsmall.load`` in ``python -c``) with ``NUMBA_CACHE_DIR`` pointed
at an empty temporary folder, which numba uses instead of ``__pycache__``: a cold cache without
touching the checkout's. Then the same commands again on the now warm cache. Per command it
reports the wall time cold and warm, the **compile seconds** (cold - warm: what the empty
cache cost) and how many kernels numba compiled (index files it wrote to the cache); the
issue's target is <= 5 s of compiles for the first compress + decompress + load together.
With ``--kernels`` one more, cold, in-process compress records every compile (numba's
``numba:compile`` events; nested compiles subtracted) and prints the costliest kernels. With
``--warmup`` (a list of process counts) it also times, each on its own empty cache, ``bigsmall
warmup -j N`` and then the first ``compress`` and ``decompress`` after it.

    python benchmarks/first_run.py [--src FILE.safetensors] [--level default] [--kernels 15]
                                   [--warmup 1,2] [--json]

Without ``--src`` it uses MiniLM bf16 from the test corpus. ``compress`` verifies (decodes every
tensor again), so it compiles the decoder's kernels too where numba serves them.
``BIGSMALL_NATIVE=0`` in the environment measures the numba reference path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 5.0  # issue 17: compile seconds of the first compress + decompress + load

PROBE = r"""
import collections, json, sys, time
from numba.core import event as ev
own, stack = collections.Counter(), []

class Listener(ev.Listener):
    def on_start(self, e):
        stack.append([time.perf_counter(), 0.0])

    def on_end(self, e):
        t0, nested = stack.pop()
        d = time.perf_counter() - t0
        f = e.data["dispatcher"].py_func
        own[f"{f.__module__}.{f.__qualname__}"] += d - nested
        if stack:
            stack[-1][1] += d

ev.register("numba:compile", Listener())
import bigsmall
bigsmall.compress(sys.argv[1], sys.argv[2], force=True)
json.dump(own.most_common(), sys.stdout)
"""


def _timed(cmd: list[str], env: dict[str, str], cwd: str) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=cwd)
    return time.perf_counter() - t


def _cached_kernels(cache: Path) -> int:
    """Kernels numba has compiled into ``cache``: one ``.nbc`` file per compiled signature."""
    return sum(1 for _ in cache.rglob("*.nbc")) if cache.exists() else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", help=".safetensors file (default: MiniLM bf16 of the test corpus)")
    ap.add_argument("--kernels", type=int, default=0,
                    help="also list the N costliest kernel compiles (one more cold compress)")
    ap.add_argument("--warmup", default="",
                    help="comma-separated process counts: time `bigsmall warmup -j N` on an "
                    "empty cache, then the first compress/decompress after it")
    ap.add_argument("--level", default="default", help="compress level (default, fast, ...)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.src:
        src = Path(args.src)
    else:
        from bigsmall.testing.corpus import minilm_bf16

        src = Path(minilm_bf16())
    res: dict[str, object] = {"src": src.name, "size_mb": round(src.stat().st_size / 1e6, 1)}
    with tempfile.TemporaryDirectory(prefix="bigsmall-first-run-") as d:
        cache = Path(d) / "numba-cache"
        env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
        bs, out = Path(d) / "m.bs", Path(d) / "m.safetensors"
        py = [sys.executable, "-m", "bigsmall"]
        steps = {
            "compress": [*py, "compress", str(src), "-o", str(bs), "--force", "--no-progress",
                         "--level", args.level],
            "decompress": [*py, "decompress", str(bs), "-o", str(out), "--force", "--no-progress"],
            "load": [sys.executable, "-c", f"import bigsmall; bigsmall.load({str(bs)!r})"],
        }
        for phase in ("cold", "warm"):
            for step, cmd in steps.items():
                before = _cached_kernels(cache)
                res[f"{step}_{phase}_s"] = round(_timed(cmd, env, d), 2)
                res[f"{step}_{phase}_kernels"] = _cached_kernels(cache) - before
        for step in steps:
            res[f"{step}_compile_s"] = round(max(0.0, res[f"{step}_cold_s"] - res[f"{step}_warm_s"]), 2)  # type: ignore[operator]
        res["compile_s"] = round(sum(res[f"{step}_compile_s"] for step in steps), 2)  # type: ignore[misc]
        res["kernels_compiled"] = sum(res[f"{step}_cold_kernels"] for step in steps)  # type: ignore[misc]
        res["native"] = os.environ.get("BIGSMALL_NATIVE", "1")
        for n in [int(x) for x in args.warmup.split(",") if x]:
            env["NUMBA_CACHE_DIR"] = str(Path(d) / f"numba-cache-warmup-{n}")
            res[f"warmup_{n}_s"] = round(_timed([*py, "warmup", "-j", str(n), "--no-progress"], env, d), 1)
            res[f"warmup_{n}_then_compress_s"] = round(
                _timed([*py, "compress", str(src), "-o", str(bs), "--force", "--no-progress"], env, d), 1)
            res[f"warmup_{n}_then_decompress_s"] = round(
                _timed([*py, "decompress", str(bs), "-o", str(out), "--force", "--no-progress"], env, d), 1)
        if args.kernels:
            env["NUMBA_CACHE_DIR"] = str(Path(d) / "numba-cache-2")
            r = subprocess.run([sys.executable, "-c", PROBE, str(src), str(bs)], check=True,
                               capture_output=True, text=True, env=env, cwd=d)
            own = json.loads(r.stdout)
            res["compile_total_s"] = round(sum(s for _, s in own), 1)
            res["kernels"] = [[k, round(s, 2)] for k, s in own[: args.kernels]]
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{res['src']} ({res['size_mb']} MB), --level {args.level}, BIGSMALL_NATIVE="
          f"{res['native']}, fresh process each, NUMBA_CACHE_DIR empty then warm")
    for step in ("compress", "decompress", "load"):
        print(f"  {step:10}  cold {res[f'{step}_cold_s']:7.2f} s  warm {res[f'{step}_warm_s']:6.2f} s"
              f"  compile {res[f'{step}_compile_s']:6.2f} s  ({res[f'{step}_cold_kernels']} kernels)")
    print(f"  first compress + decompress + load: {res['compile_s']:.2f} s compiling, "
          f"{res['kernels_compiled']} kernels (target <= {TARGET_S:.0f} s)")
    for n in [int(x) for x in args.warmup.split(",") if x]:
        print(f"  warmup -j {n} {res[f'warmup_{n}_s']:7.1f} s, then compress "
              f"{res[f'warmup_{n}_then_compress_s']:.1f} s, decompress "
              f"{res[f'warmup_{n}_then_decompress_s']:.1f} s")
    if args.kernels:
        print(f"  compile time of a cold compress, in all: {res['compile_total_s']} s; costliest:")
        for k, s in res["kernels"]:  # type: ignore[union-attr]
            print(f"    {s:6.2f} s  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
