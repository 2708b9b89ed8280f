"""Does a wider joint symbol (more mantissa bits inside the prefix-coded symbol) shrink the
prefix code's loss? Computed from counts (no encoding): for ``extra`` = 0, 1, 2 more mantissa
bits in the symbol, optimal code lengths (<= 15) from the model (today's exponent tables x a
mantissa table of the wider field, quantised as today's are), against today's coded size.

    python benchmarks/proto_huff_bits.py [models...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import experimental_huffman as xh  # noqa: E402
import proto_common as pc  # noqa: E402

from bigsmall.codecs import rans, tables  # noqa: E402


def main(argv: list[str]) -> int:
    for model in argv or ["minilm-bf16", "whisper-tiny-fp16"]:
        ts = pc.load(model)
        raw = sum(t.values.nbytes for t in ts)
        cur = 0
        res: dict[int, float] = {}
        side: dict[int, int] = {}
        for t in ts:
            lay = t.lay
            nctx = t.freq.shape[0]
            v = t.values.astype(np.int64)
            k = np.arange(v.size)
            ctx = t.rowctx[k // t.ncols] + t.colctx[k % t.ncols]
            e = (v >> (lay.p + lay.mb)) & ((1 << lay.eb) - 1)
            cur += sum(len(c) for c in t.plan.chunks) * 8 - v.size * (lay.width - lay.c)
            for extra in (0, 1, 2):
                mb2 = lay.mb + extra
                if mb2 > lay.p + lay.mb or (lay.mb == 0 and extra == 0):
                    mb2 = lay.mb
                p2 = lay.p + lay.mb - mb2
                m = (v >> p2) & ((1 << mb2) - 1)
                a = 1 << (lay.eb + mb2)
                s = (e << mb2) | m
                counts = np.bincount(ctx * a + s, minlength=nctx * a).reshape(nctx, a)
                mc = np.bincount((e << mb2) | m, minlength=a).reshape(1 << lay.eb, -1)
                qm = tables.quantize_counts(mc)
                mfreq = rans.normalize_weights(tables.dequantize(qm), 12)
                jw = (t.freq[:, :, None] * mfreq[None, :, :]).reshape(nctx, -1)
                bits = 0
                for c in range(nctx):
                    if counts[c].sum():
                        bits += int((counts[c] * xh.optimal_lengths(jw[c], 15)).sum())
                bits -= v.size * (mb2 - lay.mb)  # raw bits saved
                res[extra] = res.get(extra, 0) + bits
                side[extra] = side.get(extra, 0) + len(tables.pack_rows(qm))
        print(f"== {model}: {pc.summary(ts)}")
        for extra, bits in res.items():
            print(f"   extra mantissa bits {extra}: {(bits - cur) / 8 / raw * 100:+.3f} pp vs "
                  f"today (+ mantissa tables {side[extra] - side[0]:+d} B uncompressed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
