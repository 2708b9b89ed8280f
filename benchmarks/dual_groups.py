"""The `.bsd` fast member's size against its quantizer's group size (issue 20's decision).

    .venv/bin/python benchmarks/dual_groups.py [--groups 128,256,512] [--json]

Why: the fast member misses its size targets (<= 22 % of raw bf16, <= 12 % of fp32) with
groups of 128, and coding cannot close the gap: its INT4 codes already cost their own entropy.
This prints, per corpus model (MiniLM bf16 and fp32) and group size, what the fast member's
parts would cost, in percent of the raw file, with the codec's own quantizer and cost model
(``codecs/dual.py``, ``codecs/dual_fast.py``):

* ``codes``: the INT4 codes at the estimated size of the cheaper of the fast chunk's modes 0
  (zero-bin context) and 1 (+ the row above) (entropy + table entries, ``dual_fast._cost``);
* ``side``: the fp16 scales and minimums as the fast chunk stores them (zstd-19);
* ``rel_rms``: the quantized matrices' weight error, sqrt(sum (dequantized - w)^2 / sum w^2);
* ``+ exact``: the fast member also stores the tensors it does not quantize (norms, biases,
  positional tables): their size from a real ``.bsd`` of the model (the same for every group
  size), so ``total`` estimates the whole fast member.

Sizes do not depend on the machine. Groups other than 128 are not a format the writer emits
(the group size is a constant of format 4.0): this is a study for choosing one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bigsmall.codecs import dual as v1
from bigsmall.codecs import dual_fast
from bigsmall.io import dual
from bigsmall.plan.autopilot import fast_quantizes
from bigsmall.testing import corpus


def _matrices(src: Path) -> list[tuple[str, np.ndarray]]:
    """The matrices the fast mode quantizes, as float32."""
    from safetensors import safe_open

    out = []
    with safe_open(str(src), "pt") as f:
        for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
            t = f.get_tensor(name)
            dt = {"torch.bfloat16": "BF16", "torch.float32": "F32"}.get(str(t.dtype))
            if dt and fast_quantizes(dt, tuple(t.shape), name):
                out.append((name, t.float().numpy()))
    return out


def _exact_part(src: Path, work: Path) -> int:
    """Bytes of the fast member that are not quantized matrices' chunks, from a real .bsd."""
    bsd = work / (src.stem + ".bsd")
    dual.create(src, bsd)
    with dual.DualFile(bsd) as f:
        q = sum(c[1] for t in f.doc["tensors"] if t["kind"] == "q" for c in t["chunks"])
        return f.fast_member_bytes - q


def study(src: Path, groups: list[int], work: Path) -> dict[str, Any]:
    raw = src.stat().st_size
    mats = _matrices(src)
    res: dict[str, Any] = {"raw_bytes": raw, "groups": {}}
    res["exact_pct"] = round(100 * _exact_part(src, work) / raw, 3)
    keep = v1.GROUP
    try:
        for g in groups:
            v1.GROUP = g  # the quantizer and the zero bins read it (module constant)
            codes = side = 0.0
            err = ref = 0.0
            for _, w in mats:
                br = v1.block_rows(w.shape[1])
                for r0 in range(0, w.shape[0], br):
                    blk = w[r0 : r0 + br]
                    q, s16, lo16 = v1.quantize_block(blk)
                    z = v1._zero_bin(s16, lo16, blk.shape[1])
                    codes += min(dual_fast._cost(z, q, 16),
                                 dual_fast._cost(dual_fast._up_ctx(q, z), q, 16 * dual_fast.UP))
                    side += len(v1.side_bytes(s16, lo16)) + 4
                    d = v1.dequantize_block(q, s16, lo16).astype(np.float64) - blk
                    err += float((d * d).sum())
                    ref += float((blk.astype(np.float64) ** 2).sum())
            row = {"codes_pct": round(100 * codes / raw, 3), "side_pct": round(100 * side / raw, 3),
                   "rel_rms": round((err / ref) ** 0.5, 4)}
            row["total_pct"] = round(row["codes_pct"] + row["side_pct"] + res["exact_pct"], 2)
            res["groups"][g] = row
    finally:
        v1.GROUP = keep
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--groups", default="128,256,512")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    groups = [int(g) for g in a.groups.split(",")]
    cache = corpus.default_cache_dir()
    models = {"minilm-bf16": corpus.minilm_bf16(cache), "minilm-fp32": corpus.minilm_safetensors()}
    out = {}
    with tempfile.TemporaryDirectory() as td:
        for name, src in models.items():
            out[name] = study(src, groups, Path(td))
            if not a.json:
                r = out[name]
                print(f"{name} (raw {r['raw_bytes'] / 1e6:.1f} MB; not quantized, stored exactly: "
                      f"{r['exact_pct']} %)")
                for g, row in r["groups"].items():
                    print(f"  groups of {g:4d}: codes {row['codes_pct']:6.2f} %  scales+minimums "
                          f"{row['side_pct']:5.2f} %  fast member ~{row['total_pct']:.2f} %  "
                          f"weight rel. RMS {row['rel_rms']:.4f}")
    if a.json:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
