"""Compile the numba kernels ahead of use, on every core: ``bigsmall warmup``.

Why: numba compiles each kernel the first time it is called and caches the machine code on
disk (``cache=True``). A fresh install's first ``compress`` therefore spends ~2 minutes
compiling on one core (``benchmarks/first_run.py``), and numba compiles one kernel at a time
per process (a global compiler lock). The kernels are independent, so N processes compile
them in about 1/N of the time, bounded by the largest (~16 s): once done, every later process
(the first ``compress`` included) loads them from the cache.

What to compile comes from ``kernels.json`` beside this module: the outermost kernels (and
their argument types) that the common commands compile, recorded by
``scripts/record_kernels.py`` with their compile times on the development machine (they only
order the work: the longest first), each marked with whether the C kernels' path
(``bigsmall.native``) compiles it too. :func:`needed` keeps what this process's path uses: with
the C kernels built and not disabled, only the kernels that have no C port in use (a handful);
with ``BIGSMALL_NATIVE=0`` or no extension, every one. A kernel the list misses is compiled on
first use as before; a stale entry costs its compile and nothing else (``tests/test_warmup.py``
checks that the list covers what a compress and decompress of every dtype compile).

The shell owns this module (processes, files); the workers are ``python -m
bigsmall.io.warmup --worker``, each compiling what it is handed on stdin.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from ..errors import InvalidOptionError, WarmupError

MANIFEST = Path(__file__).with_name("kernels.json")


@attrs.frozen
class Kernel:
    """One compile: ``module.name`` (a numba dispatcher) for the argument types ``sig``."""

    module: str
    name: str
    sig: tuple[str, ...]
    seconds: float = 0.0  # compile time when recorded (orders the work, longest first)
    native: bool = True  # compiled on the C kernels' path too (recorded; False: a C port serves it)

    @property
    def label(self) -> str:
        return f"{self.module}.{self.name}"


@attrs.frozen
class WarmupReport:
    kernels: int
    processes: int
    seconds: float
    compile_seconds: float  # summed over the workers


def load_manifest(path: Path = MANIFEST) -> list[Kernel]:
    data = json.loads(path.read_text())
    return [Kernel(k["module"], k["name"], tuple(k["sig"]), float(k.get("seconds", 0.0)),
                   bool(k.get("native", True))) for k in data["kernels"]]


def needed(kernels: list[Kernel]) -> list[Kernel]:
    """The kernels this process's path compiles: with the C kernels in use (built, and
    ``BIGSMALL_NATIVE`` not ``0``), those the recording saw compiled there too; else all.
    Compiling the others would only fill the cache with kernels no command loads."""
    from ..native import built, enc_kernels

    if built() is None or enc_kernels() is None:
        return list(kernels)
    return [k for k in kernels if k.native]


_ARRAY = re.compile(r"^(unaligned )?(readonly )?array\((\w+), (\d+)d, ([CFA])\)$")


def parse_type(text: str) -> Any:
    """The numba type whose ``str`` is ``text``: arrays (any flags), and named scalars.
    ValueError for anything else (the recorder refuses to write such an entry)."""
    from numba.core import types

    m = _ARRAY.match(text)
    if m:
        dtype = getattr(types, m[3], None)
        if isinstance(dtype, types.Type):
            layout: Any = m[5]
            return types.Array(dtype, int(m[4]), layout, readonly=bool(m[2]), aligned=not m[1])
    t = getattr(types, text, None)
    if isinstance(t, types.Type) and str(t) == text:
        return t
    raise ValueError(f"no numba type for {text!r}")


def dispatcher(k: Kernel) -> Any:
    import importlib

    return getattr(importlib.import_module(k.module), k.name)


def compile_one(k: Kernel) -> float:
    """Compile (or load from numba's cache) one kernel in this process; seconds taken."""
    t = time.perf_counter()
    dispatcher(k).compile(tuple(parse_type(s) for s in k.sig))
    return time.perf_counter() - t


def _worker() -> int:
    """Worker loop: a JSON kernel per stdin line, a JSON result per stdout line."""
    for line in sys.stdin:
        raw = json.loads(line)
        k = Kernel(raw["module"], raw["name"], tuple(raw["sig"]), float(raw["seconds"]))
        try:
            res: dict[str, Any] = {"ok": True, "seconds": compile_one(k)}
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
            res = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()
    return 0


def warmup(processes: int | None = None, kernels: list[Kernel] | None = None,
           progress: Callable[[Kernel, float], None] | None = None) -> WarmupReport:
    """Compile ``kernels`` (default: what this process's path needs of the manifest,
    :func:`needed`) in ``processes`` worker processes (default:
    the cores available), longest first, each handed the next kernel when it is free; then,
    with several processes, one pass that loads them all (see below). ``progress(kernel,
    seconds)`` is called as each first finishes. WarmupError if one fails."""
    if processes is not None and processes < 1:
        raise InvalidOptionError(f"processes must be at least 1, not {processes}")
    todo = sorted(needed(load_manifest()) if kernels is None else kernels,
                  key=lambda k: -k.seconds)
    from .reader import default_threads  # the cores available to this process

    n = max(1, min(processes or default_threads(), len(todo) or 1))
    lock = threading.Lock()
    errors: list[str] = []
    spent: list[float] = []

    def run(report: bool = True) -> None:
        proc = subprocess.Popen([sys.executable, "-m", "bigsmall.io.warmup", "--worker"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            while True:
                with lock:
                    if not todo or errors:
                        break
                    k = todo.pop(0)
                try:
                    proc.stdin.write(json.dumps(attrs.asdict(k)) + "\n")
                    proc.stdin.flush()
                    line = proc.stdout.readline()
                except OSError:  # the worker is gone (a broken pipe)
                    line = ""
                res: dict[str, Any] = (json.loads(line) if line
                                       else {"ok": False, "error": "worker process died"})
                with lock:
                    if not res["ok"]:
                        errors.append(f"{k.label}: {res['error']}")
                        break
                    spent.append(float(res["seconds"]))
                    if progress is not None and report:
                        progress(k, float(res["seconds"]))
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
            proc.wait()

    t0 = time.perf_counter()
    every = list(todo)
    threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if not errors and n > 1:
        # One more pass in one process, over everything: numba's cache index has no lock, so
        # two workers that save two signatures of one function at the same moment can lose
        # one. Here each kernel just loads from the cache (~2 s for all of them), and one that
        # was lost compiles again.
        todo[:] = every
        run(report=False)
    if errors:
        raise WarmupError(f"kernel compile failed: {errors[0]}")
    return WarmupReport(len(every), n, time.perf_counter() - t0, sum(spent))


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        sys.exit(_worker())
    sys.exit("usage: python -m bigsmall.io.warmup --worker (or: bigsmall warmup)")
