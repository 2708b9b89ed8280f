"""The ``fieldp`` C kernel alone: this checkout's build against another checkout's, per model.

Why: a change to the kernel (``bigsmall/native/decodep.h``) moves a whole read by a few per
cent at most, less than a shared machine's noise between runs; the kernel alone, timed as CPU
time of one thread and interleaved call by call with the other build, shows it. Every
``decodep_chunks`` call a ``read`` of each tensor makes (one thread: whole tensors) is
recorded once, then replayed through each build in turn, round after round; the outputs and
return values of the builds are checked equal first.

    python benchmarks/bench_fieldp_kernel.py --compare /tmp/before [--models minilm-bf16,...]
        [--repeat 9]

``--compare DIR``: another checkout (``git worktree add DIR COMMIT``) whose
``bigsmall/native/_kernels*.so`` is built (``python setup.py build_ext --inplace`` there).
Without it, this build against itself (the noise floor). The models are those of
``bench_memory_decode.py``, compressed once with the default coder into a temporary folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory_decode import _models  # noqa: E402

import bigsmall  # noqa: E402
import bigsmall.native as native  # noqa: E402


def _load(tree: Path) -> ModuleType:
    """The ``_kernels`` extension built in checkout ``tree``, loaded beside this one."""
    so = sorted((tree / "bigsmall" / "native").glob("_kernels*.so"))
    if not so:
        raise SystemExit(f"{tree}: no built bigsmall/native/_kernels*.so")
    spec = importlib.util.spec_from_file_location("bigsmall.native._kernels", so[0])
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _calls(bs: Path, kern: ModuleType) -> list[tuple[Any, ...]]:
    """The arguments of every ``decodep_chunks`` call of a one-thread read of ``bs``."""
    calls: list[tuple[Any, ...]] = []

    class Recorder:
        def __getattr__(self, name: str) -> Any:
            if name != "decodep_chunks":
                return getattr(kern, name)

            def rec(*args: Any) -> Any:
                calls.append(tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args))
                return kern.decodep_chunks(*args)
            return rec

    saved = native.kernels
    native.kernels = lambda codec: Recorder() if codec == "fieldp" else saved(codec)  # type: ignore[assignment]
    try:
        with bigsmall.open(bs, threads=1) as f:
            for name in f.names():
                f.read(name)
    finally:
        native.kernels = saved  # type: ignore[assignment]
    return calls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="minilm-bf16,whisper-tiny-fp16,minilm-fp32")
    ap.add_argument("--compare", type=Path, default=None, help="another checkout, built")
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args(argv)
    this = native.built()
    if this is None:
        raise SystemExit("this checkout's native extension is not built")
    builds = {"this": this, "compare": _load(args.compare) if args.compare else this}
    print(f"fieldp kernel, CPU of one thread, medians of {args.repeat} interleaved rounds")
    with tempfile.TemporaryDirectory() as tmp:
        for name, src in _models(args.models.split(",")).items():
            bs = Path(tmp) / f"{name}.bs"
            bigsmall.compress(src, bs)
            calls = _calls(bs, this)
            units = sum(c[0].size for c in calls)
            for c in calls:  # same results first
                outs = []
                for mod in builds.values():
                    out = np.zeros_like(c[0])
                    outs.append((mod.decodep_chunks(out, *c[1:]), out.tobytes()))
                assert outs[0] == outs[1], f"{name}: the builds decode differently"
            times: dict[str, list[float]] = {k: [] for k in builds}
            for _ in range(args.repeat):
                for key, mod in builds.items():
                    t = time.thread_time()
                    for c in calls:
                        mod.decodep_chunks(*c)
                    times[key].append(time.thread_time() - t)
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"  {name:18s} {units / 1e6:6.1f} M units: this {med['this'] * 1e3:6.1f} ms "
                  f"({med['this'] * 1e9 / units:.2f} ns/unit), compare {med['compare'] * 1e3:6.1f} ms "
                  f"({med['compare'] * 1e9 / units:.2f} ns/unit): this x{med['compare'] / med['this']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
