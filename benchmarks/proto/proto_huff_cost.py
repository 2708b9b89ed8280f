"""How much a prefix code for the joint (exponent, mantissa-top) symbol costs against today's
rANS, computed from symbol counts (no encoding): per code-length limit, heuristic limiting
(``experimental_huffman.code_lengths``) vs optimal (package-merge) vs an escape code.

    python benchmarks/proto_huff_cost.py [models...]

Figures are percentage points of the field tensors' raw size, against today's coded size.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import experimental_huffman as xh  # noqa: E402
import proto_common as pc  # noqa: E402

from bigsmall.codecs.field import _fields  # noqa: E402

package_merge = xh.optimal_lengths


def escape_lengths(w: np.ndarray, limit: int, fbits: int) -> tuple[np.ndarray, int]:
    """Escape code: symbols whose weight is below 2**-limit of the total share one ESC symbol
    (followed by the raw field, ``fbits`` bits); returns (per-symbol cost in bits, ESC length)."""
    tot = int(w.sum())
    rare = (w > 0) & (w * (1 << limit) < tot)
    w2 = np.concatenate([np.where(rare, 0, w), [int(w[rare].sum())]])
    l2 = package_merge(w2, limit) if (w2 > 0).sum() > 1 else np.where(w2 > 0, 1, 0)
    cost = l2[:-1].copy()
    cost[rare] = l2[-1] + fbits
    return cost, int(l2[-1])


def main(argv: list[str]) -> int:
    for model in argv or ["minilm-bf16", "whisper-tiny-fp16"]:
        ts = pc.load(model)
        raw = sum(t.values.nbytes for t in ts)
        ideal = 0.0
        cur = 0
        res: dict[str, float] = {}
        for t in ts:
            lay = t.lay
            nctx = t.freq.shape[0]
            k = np.arange(t.values.size)
            ctx = t.rowctx[k // t.ncols] + t.colctx[k % t.ncols]
            hi, lo = _fields(t.values, lay)
            s = (hi.astype(np.int64) << lay.mb) | (lo.astype(np.int64) if lay.mb else 0)
            a = 1 << (lay.eb + lay.mb)
            counts = np.bincount(ctx * a + s, minlength=nctx * a).reshape(nctx, a)
            if lay.mb:
                jw = (t.freq[:, :, None] * t.mfreq[None, :, :]).reshape(nctx, -1)
            else:
                jw = t.freq.copy()
            q = jw / jw.sum(axis=1, keepdims=True)
            with np.errstate(divide="ignore"):
                ideal += float(-(counts[counts > 0] * np.log2(q[counts > 0])).sum())
            cur += sum(len(c) for c in t.plan.chunks) * 8 - t.values.size * (lay.width - lay.c)
            for L in (11, 12, 13, 16):
                for name, fn in (("heur", lambda w, L=L: xh.code_lengths(w, L)),
                                 ("pm", lambda w, L=L: package_merge(w, L)),
                                 ("esc", lambda w, L=L, c=lay.c: escape_lengths(w, L, c)[0])):
                    if L == 16 and name != "pm":
                        continue
                    tot = 0
                    for c in range(nctx):
                        if jw[c].sum() == 0:
                            continue
                        ln = fn(jw[c])
                        tot += int((counts[c] * ln).sum())
                    key = f"{name}{L}"
                    res[key] = res.get(key, 0) + tot
        print(f"== {model}: {pc.summary(ts)}")
        print(f"   today's coded field bits vs model ideal: {(cur - ideal) / 8 / raw * 100:+.3f} pp")
        for key, bits in res.items():
            print(f"   {key:<6} {(bits - cur) / 8 / raw * 100:+.3f} pp vs today")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
