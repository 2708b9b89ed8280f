"""fp8 checkpoints: size per model and tensor class against the order-0 floor and the previous
coder, and compress/decompress speed (``docs/performance.md``, "fp8").

The fp8 files are per-tensor scaled casts of the corpus models (``bigsmall.testing.convert.
cast_safetensors``: ``s = amax / finfo.max``, every floating tensor cast, its scale stored beside
it as an F32 ``<name>.scale``), as fp8 releases are made; no package ships a real fp8 checkpoint.

Per model and fp8 dtype it reports, over the fp8 tensors only (``fp8 %``: coded bytes over fp8
bytes, each tensor coded on its own, side information included):

* ``floor0``: the per-tensor order-0 byte entropy (an ideal coder with one table per tensor,
  the table free), the floor of any coder without context;
* ``prev``: the planner before ``codecs/fp8.py`` (``field``'s model, then ``field8`` or
  ``fieldp``, or ``zstd`` where it wins), what ``compress`` wrote for these tensors: the same
  planner run with ``codecs.fp8`` switched off;
* ``new``: what the planner codes now (``plan.planner.plan_tensor``, default options);

then the whole file as ``bigsmall.compress`` writes it (scales, integers and the index
included) and its compress / decompress speed (MB of the source file per second of wall time,
threads as the defaults), before (fp8 model off) and now, run one after the other. Run it
twice on a fresh checkout: the first run also compiles the kernels.

Run: ``python benchmarks/bench_fp8.py [--models minilm,whisper-tiny,whisper-base]
[--dtypes fp8_e4m3fn,fp8_e5m2] [--no-speed] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import bigsmall
from bigsmall.codecs import fp8
from bigsmall.core.types import TensorSpec
from bigsmall.plan.planner import plan_tensor
from bigsmall.testing import corpus

SOURCES = {
    "minilm": corpus.minilm_safetensors,
    "whisper-tiny": corpus.whisper_tiny_safetensors,
    "whisper-base": corpus.whisper_base_safetensors,
}
CLASSES = [("embedding", r"embed|position|encodings"), ("attention", r"attention|attn|query|key|value"),
           ("ffn", r"ffn|intermediate|output\.dense|fc\d|mlp"), ("conv", r"conv"),
           ("norm", r"norm"), ("other", r"")]


def fp8_cast(model: str, dtype: str) -> Path:
    """The per-tensor scaled fp8 cast of a corpus model, made once and cached beside the other
    corpus conversions (rebuilt when the source or the conversion code changes)."""
    src = SOURCES[model]()
    # the corpus module's cache (source fingerprint + cache version): the same staleness rules
    # as its own casts
    return corpus._cached(f"{model}.{dtype}.safetensors", [src],
                          lambda dst: corpus.cast_safetensors(src, dst, dtype), None)


@contextmanager
def without_fp8() -> Iterator[None]:
    """The planner as it was before ``codecs/fp8.py``: fp8 tensors get ``field``'s model."""
    applies = fp8.applies
    fp8.applies = lambda spec: False  # the planner calls it through the module
    try:
        yield
    finally:
        fp8.applies = applies


def tensor_class(name: str) -> str:
    for cls, pattern in CLASSES:
        if re.search(pattern, name, re.IGNORECASE):
            return cls
    return "other"


def read_tensors(path: Path) -> Iterator[tuple[TensorSpec, np.ndarray]]:
    """(spec, raw bytes) of every tensor of a safetensors file, in file order."""
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + n])
    for name, v in header.items():
        if name == "__metadata__":
            continue
        b, e = v["data_offsets"]
        yield (TensorSpec(name, v["dtype"], tuple(v["shape"]), b, e),
               np.frombuffer(blob, np.uint8, e - b, 8 + n + b).copy())


def order0_bytes(data: np.ndarray) -> float:
    c = np.bincount(data, minlength=256).astype(np.float64)
    c = c[c > 0]
    return float(-(c * np.log2(c / c.sum())).sum() / 8)


def measure_tensors(path: Path) -> dict[str, Any]:
    """Per class and in total: fp8 bytes, order-0 floor, previous and new coded bytes."""
    rows: dict[str, dict[str, float]] = {}
    for spec, data in read_tensors(path):
        if not spec.dtype.startswith("F8") or data.size == 0:
            continue
        with without_fp8():
            prev = plan_tensor(data, spec, format_version=(1, 2), coder="auto")
        new = plan_tensor(data, spec, format_version=(1, 2), coder="auto")
        r = rows.setdefault(tensor_class(spec.name), dict.fromkeys(("bytes", "floor0", "prev", "new"), 0.0))
        r["bytes"] += data.size
        r["floor0"] += order0_bytes(data)
        r["prev"] += min(prev.coded_size, data.size)
        r["new"] += min(new.coded_size, data.size)
    total = {k: sum(r[k] for r in rows.values()) for k in ("bytes", "floor0", "prev", "new")}
    return {"classes": rows, "total": total}


def _compress_decompress(path: Path, tmp: Path) -> dict[str, Any]:
    bs, back = tmp / "m.bs", tmp / "back.safetensors"
    t = time.perf_counter()
    bigsmall.compress(path, bs, force=True)
    tc = time.perf_counter() - t
    t = time.perf_counter()
    bigsmall.decompress(bs, back, force=True, durable=False)
    td = time.perf_counter() - t
    assert back.read_bytes() == path.read_bytes(), "fp8 round trip is not bit-exact"
    size = path.stat().st_size
    return {"ratio": bs.stat().st_size / size, "compress_mb_s": size / tc / 1e6,
            "decompress_mb_s": size / td / 1e6}


def measure_file(path: Path, tmp: Path) -> dict[str, Any]:
    """Whole-file ratio and speeds through ``bigsmall.compress``/``decompress``, before (the
    fp8 model off) and now."""
    with without_fp8():
        prev = _compress_decompress(path, tmp)
    return {"file_bytes": path.stat().st_size, "prev": prev, "new": _compress_decompress(path, tmp)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="minilm,whisper-tiny,whisper-base")
    ap.add_argument("--dtypes", default="fp8_e4m3fn,fp8_e5m2")
    ap.add_argument("--no-speed", action="store_true", help="skip the whole-file compress/decompress")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for dtype in args.dtypes.split(","):
                try:
                    path = fp8_cast(model, dtype)
                except corpus.CorpusUnavailable as exc:
                    print(f"skip {model}: {exc}", file=sys.stderr)
                    continue
                rec: dict[str, Any] = {"model": model, "dtype": dtype, **measure_tensors(path)}
                if not args.no_speed:
                    rec["file"] = measure_file(path, Path(tmp))
                out.append(rec)
                if not args.json:
                    _print(rec)
    if args.json:
        print(json.dumps(out, indent=1))
    return 0


def _pct(r: dict[str, float], k: str) -> str:
    return f"{100 * r[k] / r['bytes']:.2f}"


def _print(rec: dict[str, Any]) -> None:
    print(f"\n{rec['model']} {rec['dtype']}")
    print("| tensors | fp8 MB | floor0 % | prev % | new % |")
    print("|---|---:|---:|---:|---:|")
    for cls, r in sorted(rec["classes"].items(), key=lambda kv: -kv[1]["bytes"]):
        print(f"| {cls} | {r['bytes'] / 1e6:.2f} | {_pct(r, 'floor0')} | {_pct(r, 'prev')} | {_pct(r, 'new')} |")
    t = rec["total"]
    print(f"| **all fp8** | {t['bytes'] / 1e6:.2f} | {_pct(t, 'floor0')} | {_pct(t, 'prev')} | {_pct(t, 'new')} |")
    if "file" in rec:
        f = rec["file"]
        for k in ("prev", "new"):
            print(f"file ({k}): {100 * f[k]['ratio']:.2f} % of {f['file_bytes'] / 1e6:.1f} MB; compress "
                  f"{f[k]['compress_mb_s']:.1f} MB/s, decompress {f[k]['decompress_mb_s']:.1f} MB/s")


if __name__ == "__main__":
    raise SystemExit(main())
