"""Record the kernels the common commands compile into ``bigsmall/io/kernels.json``.

Runs ``bigsmall.testing.kernel_workload`` (synthetic model + the reference models) in a fresh
process with an empty numba cache, listening to numba's compile events; writes every outermost
compile of a bigsmall kernel (module, name, argument types, inclusive seconds). Twice: on the
numba reference path (``BIGSMALL_NATIVE=0``: every kernel) and on the C kernels' path (the
optional extensions, which must be built); an entry's ``native`` says whether the second run
compiled it too, so that ``bigsmall warmup`` compiles only what the process's path uses.
Rerun after adding or changing a kernel's signature or a C port (``tests/test_warmup.py``
says when):

    .venv/bin/python scripts/record_kernels.py [--no-corpus]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = r"""
import json, sys, time
from pathlib import Path
from numba.core import event as ev
from bigsmall.io.warmup import parse_type
stack, out = [], {}

class Listener(ev.Listener):
    def on_start(self, e):
        stack.append(time.perf_counter())

    def on_end(self, e):
        d = time.perf_counter() - stack.pop()
        if stack:
            return  # nested: compiled by its caller's compile
        f = e.data["dispatcher"].py_func
        if not f.__module__.startswith("bigsmall."):
            return
        sig = [str(t) for t in e.data["args"]]
        for s in sig:
            if str(parse_type(s)) != s:
                raise SystemExit(f"{f.__module__}.{f.__qualname__}: cannot record type {s!r}")
        key = (f.__module__, f.__qualname__, tuple(sig))
        out[key] = out.get(key, 0.0) + d

ev.register("numba:compile", Listener())
from bigsmall.testing import kernel_workload
kernel_workload.run(Path(sys.argv[1]), corpus=sys.argv[2] == "1")
json.dump([[m, n, list(s), round(d, 2)] for (m, n, s), d in sorted(out.items())], sys.stdout)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-corpus", action="store_true", help="synthetic model only")
    args = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    from bigsmall import native

    if native.built() is None or native.enc_kernels() is None:
        sys.exit("record_kernels: the C kernels' path needs the extensions built (pip install "
                 "-e .) and BIGSMALL_NATIVE unset")
    corpus = "0" if args.no_corpus else "1"
    reference = _record(root, corpus, "0")  # every kernel
    on_native = {(m, n, tuple(s)) for m, n, s, _ in _record(root, corpus, "1")}
    kernels = [{"module": m, "name": n, "sig": s, "seconds": sec,
                "native": (m, n, tuple(s)) in on_native} for m, n, s, sec in reference]
    dst = root / "bigsmall" / "io" / "kernels.json"
    dst.write_text(json.dumps({"recorded_by": "scripts/record_kernels.py",
                               "kernels": kernels}, indent=1) + "\n")
    total = sum(k["seconds"] for k in kernels)
    print(f"{len(kernels)} kernels, {total:.0f} s of compiles in one process -> {dst}; "
          f"{sum(k['native'] for k in kernels)} of them compiled with the C kernels too")
    return 0


def _record(root: Path, corpus: str, mode: str) -> list[list[object]]:
    """[module, name, sig, seconds] of every outermost compile, ``BIGSMALL_NATIVE=mode``."""
    with tempfile.TemporaryDirectory(prefix="bigsmall-record-") as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(d) / "numba-cache"),
                   PYTHONPATH=str(root), BIGSMALL_NATIVE=mode)
        r = subprocess.run([sys.executable, "-P", "-c", PROBE, d, corpus],
                           check=True, capture_output=True, text=True, env=env, cwd=d)
    return json.loads(r.stdout)  # type: ignore[no-any-return]


if __name__ == "__main__":
    sys.exit(main())
