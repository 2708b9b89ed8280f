"""The figures of docs/delta.md: fine-tune patches against their base, per pair.

Pairs (``bigsmall/testing/finetune.py``, built once and cached): MiniLM bf16 after 40 and 300
AdamW steps (lr 2e-5, fp32 master weights cast to bf16 after every step), MiniLM fp32 after
40 steps, and Whisper tiny.en fp16 with only its decoder fine-tuned for 40 steps (``whisper-40``). For each: the fraction of values changed; the patch (``compress --delta-from``) as a
% of the fine-tune's file, next to the standalone ``.bs`` and to XOR with the base + zstd -19
(per tensor, the published baseline); then, interleaved, ``compress`` with and without
``delta_from``, and ``apply`` against ``decompress`` of the standalone ``.bs`` (both without
fsync: the disk is not what is compared), medians of ``--repeat``.

    python benchmarks/bench_delta.py [--repeat 3] [--pairs bf16-40,bf16-300,fp32-40,whisper-40] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zstandard

import bigsmall
from bigsmall.io.delta import BaseModel, diff
from bigsmall.testing.finetune import finetune_pair, whisper_pair


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def xor_zstd(base: Path, ft: Path) -> int:
    """XOR with the base tensor, then zstd -19, per tensor (tensors absent from the base: alone)."""
    cctx = zstandard.ZstdCompressor(level=19)
    total = 0
    with BaseModel(base) as b, BaseModel(ft) as f:
        for name, (spec, _s, _o) in f.specs.items():
            x = f.data(name)
            have = b.specs.get(name)
            if have is not None and have[0].nbytes == spec.nbytes:
                x = x ^ b.data(name)
            total += len(cctx.compress(x.tobytes()))
    return total


def measure(label: str, dtype: str, steps: int, repeat: int, tmp: Path) -> dict[str, Any]:
    base, ft = whisper_pair(steps) if dtype == "whisper" else finetune_pair(dtype, steps)
    size = ft.stat().st_size
    patch, alone = tmp / f"{label}.patch.bs", tmp / f"{label}.bs"
    bigsmall.compress(ft, patch, delta_from=base, force=True)  # warm-up: kernels load
    bigsmall.compress(ft, alone, force=True)
    tc_alone: list[float] = []
    tc_patch: list[float] = []
    td_alone: list[float] = []
    td_apply: list[float] = []
    for _ in range(repeat):  # interleaved: the machine is shared, load drifts
        tc_alone.append(bigsmall.compress(ft, alone, force=True).seconds)
        tc_patch.append(bigsmall.compress(ft, patch, delta_from=base, force=True).seconds)
        td_alone.append(bigsmall.decompress(alone, tmp / "o1", force=True, durable=False).seconds)
        td_apply.append(bigsmall.apply(base, patch, tmp / "o2", force=True, durable=False).seconds)
    assert (tmp / "o2").read_bytes() == ft.read_bytes()
    d = diff(base, ft)
    xz = xor_zstd(base, ft)
    ps, ss = patch.stat().st_size, alone.stat().st_size
    m = statistics.median
    return {
        "pair": label, "dtype": dtype, "steps": steps, "file_bytes": size,
        "fraction_changed": d["fraction_changed"],
        "patch_bytes": ps, "patch_pct": 100 * ps / size,
        "standalone_bytes": ss, "standalone_pct": 100 * ss / size,
        "xor_zstd19_bytes": xz, "xor_zstd19_pct": 100 * xz / size,
        "patch_vs_xor_zstd": ps / xz,
        "compress_s": m(tc_alone), "compress_delta_s": m(tc_patch),
        "compress_speed_ratio": m(tc_alone) / m(tc_patch),
        "decompress_s": m(td_alone), "apply_s": m(td_apply),
        "apply_speed_ratio": m(td_alone) / m(td_apply),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pairs", default="bf16-40,bf16-300,fp32-40,whisper-40")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as t:
        for label in args.pairs.split(","):
            dtype, steps = label.split("-")
            rows.append(measure(label, dtype, int(steps), args.repeat, Path(t)))
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    print("| pair | values changed | patch | standalone .bs | XOR + zstd-19 | patch / XOR+zstd | "
          "compress --delta-from vs compress | apply vs decompress |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        model = "Whisper tiny fp16 (decoder)" if r["dtype"] == "whisper" else f"MiniLM {r['dtype']}"
        print(f"| {model}, {r['steps']} steps | {r['fraction_changed'] * 100:.1f} % | "
              f"{r['patch_pct']:.2f} % | {r['standalone_pct']:.2f} % | {r['xor_zstd19_pct']:.2f} % | "
              f"{r['patch_vs_xor_zstd']:.2f} | {r['compress_delta_s']:.2f} s vs {r['compress_s']:.2f} s "
              f"(x{r['compress_speed_ratio']:.2f}) | {r['apply_s']:.2f} s vs {r['decompress_s']:.2f} s "
              f"(x{r['apply_speed_ratio']:.2f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
