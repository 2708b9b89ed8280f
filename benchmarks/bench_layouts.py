"""The decode kernels of this tree against another checkout's, interleaved in one process:
the ``fieldp`` layout kernels (per layout) and the ``field8`` kernel, M elements/s, CPU time
of the decoding thread.

Why in one process: on a shared VM the same kernel's speed moves by ±30 % between processes
(measured: 219-311 M elements/s for one unchanged kernel in three runs), more than most kernel
changes gain. Here both versions of a layout's kernel (``bigsmall/codecs/_generated/decodep_layouts``),
and of ``bigsmall/codecs/_generated/decode8.py``, are loaded side by side, fed the same prepared chunks of real tensors, and timed in alternate
rounds; the figure that matters is the median of the per-round speed-ups.

    python benchmarks/bench_layouts.py --baseline DIR [SRC.bs ...] [--rounds 15] [--json]

``DIR`` holds the other ``bigsmall`` package (``git archive <commit> bigsmall | tar -x -C DIR``).
Without SRC it compresses MiniLM bf16 with ``--coder prefix`` and with ``--coder rans``
(``field8``) and Whisper tiny fp16 with the default coder (mostly ``fieldp``) into a
temporary folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bigsmall.codecs import field
from bigsmall.io.reader import BsFile
from bigsmall.plan.decode import DecodeJob, plan_decode


def _load(path: Path, package: str, tag: str) -> Any:
    """``decode_chunks`` of the kernel module at ``path``, loaded under its own name inside
    ``package`` (its relative imports resolve to this tree's ``loads``, the same for both)."""
    spec = importlib.util.spec_from_file_location(f"{package}.{tag}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.decode_chunks


def _kernel_file(codecs_dir: Path, key: str) -> tuple[Path, str] | None:
    """The module of kernel ``key`` in the tree at ``codecs_dir`` and the package its relative
    imports resolve in: under ``_generated/``, or where trees before that move kept it."""
    if key == "decode8":
        places = [(codecs_dir / "_generated" / "decode8.py", "bigsmall.codecs._generated"),
                  (codecs_dir / "_decode8.py", "bigsmall.codecs")]
    else:
        places = [(codecs_dir / "_generated" / "decodep_layouts" / f"{key}.py",
                   "bigsmall.codecs._generated.decodep_layouts"),
                  (codecs_dir / "_decodep_layouts" / f"{key}.py", "bigsmall.codecs._decodep_layouts")]
    return next(((p, pkg) for p, pkg in places if p.exists()), None)


def _jobs(path: Path) -> dict[str, list[tuple[DecodeJob, np.ndarray]]]:
    """The prepared ``fieldp`` jobs of a container and output buffers, by layout kernel
    module name, and its ``field8`` jobs under ``decode8``."""
    by: dict[str, list[tuple[DecodeJob, np.ndarray]]] = defaultdict(list)
    with BsFile(path, threads=1) as bs:
        for t in bs.container.tensors:
            if t.codec not in ("fieldp", "field8"):
                continue
            blob = bs.source.read(t.offset, t.length)
            job = plan_decode(t.spec, t.codec, t.params, blob, t.head_len, t.chunk_lens)
            key = ("k_" + "_".join(str(int(x)) for x in t.params["layout"])
                   if t.codec == "fieldp" else "decode8")
            by[key].append((job, np.empty(t.spec.nbytes, np.uint8)))
    return by


def _pass(kernel: Any, jobs: list[tuple[DecodeJob, np.ndarray]]) -> tuple[float, int]:
    t0 = time.thread_time()
    n = 0
    for job, out in jobs:
        s = job.state
        lay = s.lay
        dst = out.view(field._UINT[lay.width // 8])
        per, ncols = int(job.params["chunk"]), int(job.params["matrix"][1])
        if job.codec.codec_id == "field8":
            bad = kernel(dst, 0, 1, per, ncols, s.rowctx, s.colctx, s.tsym, s.tfc, s.prob_bits,
                         s.msym, s.mfc, s.mprob_bits, lay.p, lay.eb, lay.mb, s.rshift, job.blob,
                         job.offsets)
        else:
            bad = kernel(dst, 0, 1, per, ncols, s.rowctx, s.colsh, s.t1, s.dirs, s.t2,
                         s.rshift, job.blob, job.offsets)
        if bad >= 0:
            raise RuntimeError(f"{job.spec.name}: chunk {bad} does not decode")
        n += dst.size
    return time.thread_time() - t0, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", nargs="*", type=Path, help=".bs containers (default: see above)")
    ap.add_argument("--baseline", type=Path, required=True,
                    help="folder holding the other bigsmall package")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    base_dir = args.baseline.resolve() / "bigsmall" / "codecs"
    this_dir = Path(__file__).resolve().parent.parent / "bigsmall" / "codecs"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bigsmall-bench-layouts-") as d:
        srcs = list(args.src)
        if not srcs:
            import bigsmall
            from bigsmall.testing.corpus import reference_models

            models = reference_models()
            for name, coder in (("minilm-bf16", "prefix"), ("minilm-bf16", "rans"),
                                ("whisper-tiny-fp16", "auto")):
                srcs.append(Path(d) / f"{name}-{coder}.bs")
                bigsmall.compress(models[name], srcs[-1], coder=coder)
        for src in srcs:
            by = _jobs(src)
            for key, jobs in sorted(by.items(), key=lambda kv: -sum(o.size for _, o in kv[1])):
                files = {"baseline": _kernel_file(base_dir, key), "this": _kernel_file(this_dir, key)}
                if not all(files.values()):
                    continue  # a layout without its own kernel in one of the trees
                kern = {tag: _load(*f, tag) for tag, f in files.items() if f is not None}
                for k in kern.values():
                    _pass(k, jobs)  # compile / load, and the outputs' page faults
                times: dict[str, list[float]] = {"baseline": [], "this": []}
                n = 0
                for _ in range(args.rounds):
                    for tag in ("baseline", "this"):
                        s, n = _pass(kern[tag], jobs)
                        times[tag].append(s)
                speedups = [b / a for a, b in zip(times["this"], times["baseline"], strict=True)]
                rows.append({"file": src.name, "kernel": key, "elements": n,
                             "baseline_Mel_s": round(n / statistics.median(times["baseline"]) / 1e6, 1),
                             "this_Mel_s": round(n / statistics.median(times["this"]) / 1e6, 1),
                             "speedup_median": round(statistics.median(speedups), 3)})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"decode kernels, this tree vs {args.baseline} (CPU time, {args.rounds} "
          "interleaved rounds)")
    for r in rows:
        print(f"  {r['file']:28s} {r['kernel']:14s} {r['elements']:>10d} el  "
              f"baseline {r['baseline_Mel_s']:7.1f}  this {r['this_Mel_s']:7.1f} M el/s  "
              f"per-round speed-up x{r['speedup_median']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
