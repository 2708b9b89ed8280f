"""What a dual-fidelity file (INT4 fast member + exact member coded given it) could cost: a study.

    .venv/bin/python benchmarks/dual_study.py [--json]

No file format yet (issue 20's ``.bsd``): this measures, on the corpus models' real weights, the
sizes such a file would have, to choose how to build it. Per model, over the tensors the fast
mode quantizes (``plan.autopilot.fast_quantizes``; the rest would be stored exactly, as in ``.bs``):

* ``bs``: the bytes the lossless ``.bs`` spends on those tensors (their coded size in the index);
* ``fast``: the fast member: INT4 codes at their order-0 entropy per tensor (what the project's
  rANS coder gets within ~0.1 %), + the fp16 scales and minimums zstd-19 compressed;
* ``exact|int4``: the exact member coded given the INT4 code, under the simplest conditional model
  the decoder can evaluate: knowing its group's scale ``s`` and minimum and the code ``q``, a
  weight lies in a bin ``s`` wide; with the weights' density locally flat across one bin, the
  probability of the representable value ``w`` is its cell width ``ulp(w)`` over ``s``, so it
  costs ``log2(s / ulp(w))`` bits (0 when the bin holds one value). Values whose model cost
  exceeds the raw width (exact zeros, far subnormals) are escaped at raw width + 1 bit; and every
  weight pays the escape flag's entropy.
* ``unconditioned``: fast member + the ``.bs`` as it is (the seed's approach);
* further models (exponent contexts, zero spike, slope, the standalone model truncated to the bin,
  the fast member's codes in their group's zero-bin context): see each function's docstring and
  docs/dual.md, which tabulates the results.

Points are percent of the raw bytes of those tensors: dual - bs is the overhead the issue targets
(<= +1.0 point for bf16, +1.5 for fp16/fp32).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

import bigsmall
from bigsmall.io.reader import BsFile
from bigsmall.plan.autopilot import GROUP, fast_quantizes
from bigsmall.testing import corpus


def _as_float(raw: np.ndarray, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "BF16":
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return raw.view({"F16": np.float16, "F32": np.float32}[dtype]).astype(np.float32).reshape(shape)


def _ulp(x: np.ndarray, dtype: str) -> np.ndarray:
    """Spacing of the representable values of ``dtype`` at |x| (value-space cell width)."""
    mant, emin = {"BF16": (7, -126), "F16": (10, -14), "F32": (23, -126)}[dtype]
    e = np.floor(np.log2(np.maximum(np.abs(x), 2.0**emin)))
    return np.exp2(np.maximum(e, emin) - mant)


def _entropy_bits(symbols: np.ndarray, k: int) -> float:
    counts = np.bincount(symbols.ravel(), minlength=k).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(counts[counts > 0] * np.log2(p)).sum())


def study_tensor(w: np.ndarray, dtype: str) -> dict[str, float]:
    rows, cols = w.shape
    groups = -(-cols // GROUP)
    pad = groups * GROUP - cols
    x = np.concatenate([w, np.repeat(w[:, -1:], pad, axis=1)], axis=1) if pad else w
    x = x.reshape(rows, groups, GROUP)
    lo = x.min(-1).astype(np.float16)
    s16 = ((x.max(-1) - lo.astype(np.float32)) / 15).astype(np.float16)
    s = np.where(s16.astype(np.float32) > 0, s16.astype(np.float32), 1.0)
    q = np.clip(np.rint((x - lo.astype(np.float32)[..., None]) / s[..., None]), 0, 15).astype(np.uint8)
    q = q.reshape(rows, -1)[:, :cols]
    fast_bits = _entropy_bits(q, 16)
    # the codes in the context of where zero falls in their group (the bin holding 0.0, from the
    # group's scale and minimum, which the decoder reads first): outlier-wide groups put most
    # weights in the few bins around it
    zbin = np.clip(np.rint(-lo.astype(np.float32) / s), 0, 15).astype(np.int64)
    ctx = np.repeat(zbin, GROUP, axis=1)[:, :cols] * 16 + q
    fast_ctx_bits = _entropy_bits(ctx, 256) - _entropy_bits(ctx // 16, 16)
    side = zstandard.ZstdCompressor(level=19).compress(s16.tobytes() + lo.tobytes())
    width = {"BF16": 16, "F16": 16, "F32": 32}[dtype]
    bin_w = np.repeat(np.where(s16.astype(np.float32) > 0, s16.astype(np.float32), 0.0), GROUP,
                      axis=1)[:, :cols]
    with np.errstate(over="ignore", divide="ignore"):  # inf: escaped below
        cost = np.log2(np.maximum(bin_w / _ulp(w, dtype), 1.0))
    escape = (cost > width) | ~np.isfinite(cost)
    n, n_esc = w.size, int(escape.sum())
    p_esc = n_esc / n
    flag = 0.0 if n_esc in (0, n) else n * -(p_esc * math.log2(p_esc) + (1 - p_esc) * math.log2(1 - p_esc))
    exact_bits = float(cost[~escape].sum()) + n_esc * (width + 1) + flag
    return {"fast": fast_bits / 8 + len(side), "fast_ctx": fast_ctx_bits / 8 + len(side),
            "exact_given": exact_bits / 8, "escaped": n_esc,
            "exact_given_exp": _exponent_model_bits(w, dtype, bin_w, lo, s16, q, cols) / 8,
            "exact_given_spike": _spike_model_bits(w, dtype, bin_w, lo, q, cols, cost, width) / 8,
            "exact_given_slope": _slope_model_bits(w, dtype, bin_w, lo, q, cols, width) / 8,
            **_truncated_model_bytes(w, dtype, bin_w, lo, q, cols)}


def _truncated_model_bytes(w: np.ndarray, dtype: str, bin_w: np.ndarray, lo: np.ndarray,
                           q: np.ndarray, cols: int) -> dict[str, float]:
    """The fifth model (16-bit dtypes): the standalone model renormalised over the bin. As the
    standalone model, the tensor's own order-0 distribution of values (static; its table not
    counted, so it is compared with the same model coding the tensor alone, ``order0``):
    ``P(w | bin) = P(w) / P(bin)``. The dual then costs the standalone cost + (the fast member's
    cost of the codes - the information the standalone model gives them): near zero when the
    standalone model predicts the bins as well as the fast member's coder does."""
    if dtype not in ("F16", "BF16"):
        return {"order0": 0.0, "exact_given_trunc": 0.0}
    vals, counts = np.unique(w.ravel(), return_counts=True)  # exact: 16-bit values are exact in f32
    p = counts / counts.sum()
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    lo_f = np.repeat(lo.astype(np.float32), GROUP, axis=1)[:, :cols]
    centre = lo_f + q * bin_w
    idx = np.searchsorted(vals, w)
    # the bin as the decoder sees it: [centre - s/2, centre + s/2), the end codes open-ended
    a = np.where(q == 0, -np.inf, centre - bin_w / 2)
    b = np.where(q == 15, np.inf, centre + bin_w / 2)
    in_bin = cum[np.searchsorted(vals, b, side="left")] - cum[np.searchsorted(vals, a, side="left")]
    in_bin = np.maximum(in_bin, counts[idx])  # rounding at a bin edge: never below the value's own
    order0 = float(-(counts * np.log2(p)).sum())
    given = float(np.log2(in_bin / counts[idx]).sum())
    return {"order0": order0 / 8, "exact_given_trunc": given / 8}


def _slope_model_bits(w: np.ndarray, dtype: str, bin_w: np.ndarray, lo: np.ndarray, q: np.ndarray,
                      cols: int, width: int) -> float:
    """The fourth model: the flat one with a linear density across the bin, ``1 + a u`` for the
    position ``u`` in [-1/2, 1/2], its slope ``a`` from how many of the group's weights have the
    codes on either side (``(n[q+1] - n[q-1]) / (2 n[q])``, clamped to +-1.9): the decoder knows
    every code of the group from the fast member before it decodes a single exact weight."""
    rows = w.shape[0]
    groups = -(-cols // GROUP)
    pad = groups * GROUP - cols
    qg = np.concatenate([q, np.repeat(q[:, -1:], pad, axis=1)], axis=1) if pad else q
    qg = qg.reshape(rows, groups, GROUP).astype(np.int64)
    counts = np.zeros((rows, groups, 18), dtype=np.float64)  # codes -1..16, zero at the ends
    np.add.at(counts, (np.arange(rows)[:, None, None], np.arange(groups)[None, :, None], qg + 1), 1.0)
    gi = np.repeat(np.arange(groups), GROUP)[:cols]
    r_idx = np.arange(rows)[:, None]
    n_here = counts[r_idx, gi[None, :], q.astype(np.int64) + 1]
    n_up = counts[r_idx, gi[None, :], q.astype(np.int64) + 2]
    n_down = counts[r_idx, gi[None, :], q.astype(np.int64)]
    a = np.clip((n_up - n_down) / (2 * n_here), -1.9, 1.9)
    lo_f = np.repeat(lo.astype(np.float32), GROUP, axis=1)[:, :cols]
    centre = lo_f + q * bin_w
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        u = np.clip((w - centre) / bin_w, -0.5, 0.5)
        cost = np.log2(np.maximum(bin_w / _ulp(w, dtype), 1.0)) - np.log2(1 + a * u)
        cost = np.where(bin_w / _ulp(w, dtype) <= 1.0, 0.0, cost)
    escape = (cost > width) | ~np.isfinite(cost)
    n_esc = int(escape.sum())
    p = n_esc / w.size
    flag = 0.0 if n_esc in (0, w.size) else w.size * -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    return float(cost[~escape].sum()) + n_esc * (width + 1) + flag


def _below(t: np.ndarray, dtype: str) -> np.ndarray:
    """How many non-negative values of ``dtype`` are below ``t`` (bit patterns order them)."""
    t32 = t.astype(np.float32)
    if dtype == "F16":
        return t.astype(np.float16).view(np.uint16).astype(np.float64)
    bits = t32.view(np.uint32).astype(np.float64)
    return np.floor(bits / 65536) if dtype == "BF16" else bits


def _spike_model_bits(w: np.ndarray, dtype: str, bin_w: np.ndarray, lo: np.ndarray, q: np.ndarray,
                      cols: int, flat: np.ndarray, width: int) -> float:
    """The third model: the flat one, except in bins that straddle zero, where a flag (its
    probability learned over the tensor's straddling weights) says whether |w| < s / 64; such a
    small value is coded uniformly over the dtype's values of that magnitude (in count space: a
    spike at zero is cheap), a larger one flat over the rest of the bin."""
    lo_f = np.repeat(lo.astype(np.float32), GROUP, axis=1)[:, :cols]
    centre = lo_f + q * bin_w
    straddle = (centre - bin_w / 2 < 0) & (centre + bin_w / 2 > 0)
    t = bin_w / 64
    small = straddle & (np.abs(w) < t)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        small_cost = np.log2(np.maximum(2 * _below(t, dtype), 1.0))
        big_cost = np.log2(np.maximum((bin_w - 2 * t) / _ulp(w, dtype), 1.0))
    cost = np.where(small, small_cost, np.where(straddle, big_cost, flat))
    escape = (cost > width) | ~np.isfinite(cost)
    n_esc, n_st, n_sm = int(escape.sum()), int(straddle.sum()), int(small.sum())

    def h(k: int, n: int) -> float:
        p = k / n if n else 0.0
        return 0.0 if k in (0, n) else n * -(p * math.log2(p) + (1 - p) * math.log2(1 - p))

    return float(cost[~escape].sum()) + n_esc * (width + 1) + h(n_esc, w.size) + h(n_sm, n_st)


def _exponent_model_bits(w: np.ndarray, dtype: str, bin_w: np.ndarray, lo: np.ndarray,
                         s16: np.ndarray, q: np.ndarray, cols: int) -> float:
    """The second conditional model: the signed exponent of ``w`` coded with a static
    distribution per context (exponent of the bin's centre, exponent of its width: learned from
    the tensor itself, its table not counted), then the mantissa uniform over the values of that
    exponent that lie in the bin. Captures what the flat model misses: a spike of values near
    zero (fp16 embeddings) inside bins that straddle it."""
    mant, emin = {"BF16": (7, -126), "F16": (10, -14), "F32": (23, -126)}[dtype]
    lo_f = np.repeat(lo.astype(np.float32), GROUP, axis=1)[:, :cols]
    s_f = np.repeat(s16.astype(np.float32), GROUP, axis=1)[:, :cols]
    centre = lo_f + q * s_f
    a = np.abs(w)
    e = np.where(a > 0, np.floor(np.log2(np.maximum(a, 2.0**emin))), emin - 1).astype(np.int64)
    e = np.maximum(e, emin - 1)  # subnormals and zero: one exponent class
    sym = (e - (emin - 1)) * 2 + (w < 0)
    with np.errstate(divide="ignore"):
        ctx_c = np.floor(np.log2(np.maximum(np.abs(centre), 2.0**emin))).astype(np.int64) * 2 + (centre < 0)
        ctx_s = np.floor(np.log2(np.maximum(bin_w, 2.0**emin))).astype(np.int64)
    key = (ctx_c - ctx_c.min()) * (ctx_s.max() - ctx_s.min() + 1) + (ctx_s - ctx_s.min())
    key = key * (sym.max() + 1) + sym
    _, joint = np.unique(key.ravel(), return_counts=True)
    ctx_only = (ctx_c - ctx_c.min()) * (ctx_s.max() - ctx_s.min() + 1) + (ctx_s - ctx_s.min())
    _, marg = np.unique(ctx_only.ravel(), return_counts=True)
    # sum over weights of -log2 P(sym | ctx) under the empirical distribution:
    # sum_c n_c log2 n_c - sum_(s,c) n_sc log2 n_sc
    exp_bits = float((marg * np.log2(marg)).sum() - (joint * np.log2(joint)).sum())
    assert exp_bits >= 0
    ulp = np.exp2(np.maximum(e, emin) - mant)
    # values with this exponent inside the bin: at most the whole binade
    lo_b, hi_b = centre - bin_w / 2, centre + bin_w / 2
    top = np.exp2(np.maximum(e, emin) + 1) * np.where(e < emin, 0.5, 1.0)
    bottom = np.where(e < emin, 0.0, np.exp2(np.maximum(e, emin)))
    far = np.maximum(np.abs(lo_b), np.abs(hi_b))
    near = np.where((lo_b < 0) & (hi_b > 0), 0.0, np.minimum(np.abs(lo_b), np.abs(hi_b)))
    span = np.minimum(far, top) - np.maximum(near, bottom)
    count = np.clip(span / ulp, 1.0, 2.0**mant)
    return exp_bits + float(np.log2(count).sum())


def study(src: Path) -> dict[str, Any]:
    tot = {"raw": 0, "bs": 0, "fast": 0.0, "fast_ctx": 0.0, "exact_given": 0.0, "exact_given_exp": 0.0,
           "exact_given_spike": 0.0, "exact_given_slope": 0.0, "order0": 0.0, "exact_given_trunc": 0.0,
           "escaped": 0,
           "weights": 0, "tensors": 0}
    with BsFile(src) as bs:
        for t in bs.container.tensors:
            if not fast_quantizes(t.spec.dtype, t.spec.shape, t.name):
                continue
            w = _as_float(np.asarray(bs.read_bytes(bs.container.key(t))), t.spec.dtype, t.spec.shape)
            r = study_tensor(w, t.spec.dtype)
            tot["raw"] += t.spec.nbytes
            tot["bs"] += t.length
            tot["weights"] += w.size
            tot["tensors"] += 1
            for k in ("fast", "fast_ctx", "exact_given", "escaped", "exact_given_exp", "exact_given_spike",
                      "exact_given_slope", "order0", "exact_given_trunc"):
                tot[k] += r[k]

    def pts(b: float) -> float:
        return round(100 * b / tot["raw"], 2)

    dual = tot["fast"] + tot["exact_given"]
    return {"tensors": tot["tensors"], "raw_bytes": tot["raw"], "bs_pct": pts(tot["bs"]),
            "fast_pct": pts(tot["fast"]), "exact_given_int4_pct": pts(tot["exact_given"]),
            "dual_pct": pts(dual), "dual_minus_bs_points": round(pts(dual) - pts(tot["bs"]), 2),
            "exact_given_int4_exp_pct": pts(tot["exact_given_exp"]),
            "dual_exp_minus_bs_points": round(pts(tot["fast"] + tot["exact_given_exp"]) - pts(tot["bs"]), 2),
            "dual_spike_minus_bs_points": round(pts(tot["fast"] + tot["exact_given_spike"]) - pts(tot["bs"]), 2),
            "dual_slope_minus_bs_points": round(pts(tot["fast"] + tot["exact_given_slope"]) - pts(tot["bs"]), 2),
            "order0_pct": pts(tot["order0"]), "exact_given_trunc_pct": pts(tot["exact_given_trunc"]),
            "dual_trunc_minus_order0_points": round(pts(tot["fast"] + tot["exact_given_trunc"])
                                                    - pts(tot["order0"]), 2),
            "fast_ctx_pct": pts(tot["fast_ctx"]),
            "dual_ctx_flat_minus_bs_points": round(pts(tot["fast_ctx"] + tot["exact_given"]) - pts(tot["bs"]), 2),
            "dual_ctx_trunc_minus_order0_points": round(pts(tot["fast_ctx"] + tot["exact_given_trunc"])
                                                        - pts(tot["order0"]), 2),
            "unconditioned_pct": pts(tot["fast"] + tot["bs"]),
            "escaped_fraction": round(tot["escaped"] / max(1, tot["weights"]), 6)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cache = corpus.default_cache_dir()
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, src in (("minilm-bf16", corpus.minilm_bf16(cache)), ("minilm-fp32", corpus.minilm_safetensors()),
                          ("whisper-tiny-fp16", corpus.whisper_tiny_safetensors(cache))):
            bs = Path(d) / f"{name}.bs"
            bigsmall.compress(src, bs)
            out[name] = study(bs)
            if not args.json:
                print(name, out[name], flush=True)
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
