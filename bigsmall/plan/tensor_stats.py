"""Checkpoint forensics (``bigsmall xray``): per-tensor statistics and the findings a
practitioner wants before shipping weights. Pure: arrays in, numbers and findings out.

Why streaming accumulators: a tensor can be larger than the memory a check may take, so
``Accumulator`` consumes it in row blocks (bit patterns, any dtype) and keeps only sums,
per-column sums and histograms; ``finish`` turns them into one ``dict`` per tensor.

Why these findings:

- NaN / inf: a checkpoint that holds them breaks inference, usually silently (error).
- all-zero / all-equal tensors: a weight matrix that is constant carries no information; a
  LayerNorm weight of ones or a bias of zeros is a normal initial value and only noted.
- untrained-looking: a trained weight matrix has structure (rows and columns with their own
  scales, heavier tails than a Gaussian); a matrix still at its initialisation is i.i.d.: the
  spread of its row and column standard deviations is what sampling alone gives, its shape is
  Gaussian or uniform, and its std often equals a common init std (0.02, 1/sqrt(fan_in), the
  kaiming/xavier bounds). Forgetting to load trained weights into a module looks like this.
- duplicated tensors: tied embeddings are normal (info); other identical tensors are worth a
  look (a copy-paste in a conversion script, or layers that were never trained apart).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ..core.dtypes import DTYPES, DTypeInfo

SEVERITIES = ("error", "warning", "info")
BLOCK_ELEMS = 1 << 20  # elements per block fed to an Accumulator (bounded temporaries)
STRUCT_ELEMS = 1 << 20  # elements (whole rows) behind a matrix's row/column spreads
MIN_INIT_ELEMS = 4096  # smaller matrices are too noisy to call i.i.d.
IID_RATIO = 1.6  # row/column spread at most this many times the i.i.d. sampling spread
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_NORM = re.compile(r"(norm|ln_?\d*|layer_?norm|rms)(\.|_|$)", re.IGNORECASE)


def _fp8_table(info: DTypeInfo) -> np.ndarray:
    """The 256 values of an 8-bit float format (float32), NaN/inf where the format has them."""
    eb, mb = info.exp_bits, info.mant_bits
    fnuz = info.name.endswith("FNUZ")
    bias = (1 << (eb - 1)) - 1 + (1 if fnuz else 0)
    b = np.arange(256, dtype=np.int64)
    if info.name == "F8_E8M0":  # a power of two (scales); 0xff is NaN
        vals = np.ldexp(1.0, (b - 127).astype(np.int32)).astype(np.float32)
        vals[255] = np.nan
        return vals
    sign = np.where(b >> (eb + mb) & 1, -1.0, 1.0)
    e = (b >> mb) & ((1 << eb) - 1)
    m = b & ((1 << mb) - 1)
    normal = (1.0 + m / (1 << mb)) * np.ldexp(1.0, (e - bias).astype(np.int32))
    sub = (m / (1 << mb)) * np.ldexp(1.0, 1 - bias)
    vals = sign * np.where(e == 0, sub, normal)
    top = (1 << eb) - 1
    if fnuz:
        vals[b == 0x80] = np.nan  # no negative zero: its pattern is the NaN
    elif info.name == "F8_E4M3":  # e4m3fn: no infinities, S.1111.111 is NaN
        vals[(e == top) & (m == (1 << mb) - 1)] = np.nan
    else:  # e5m2: IEEE-like
        vals[(e == top) & (m == 0)] = sign[(e == top) & (m == 0)] * np.inf
        vals[(e == top) & (m != 0)] = np.nan
    return vals.astype(np.float32)


def float_values(dtype: str, raw: np.ndarray) -> np.ndarray | None:
    """The elements of ``raw`` (uint8 bytes of ``dtype``) as float32/float64 values, or None
    for types with no value statistics here (packed sub-byte floats, complex)."""
    info = DTYPES[dtype]
    if info.itemsize == 0 or dtype == "C64":
        return None
    if dtype == "BF16":
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if dtype == "F16":
        return raw.view(np.float16).astype(np.float32)
    if dtype in ("F32", "F64"):
        return raw.view(np.float32 if dtype == "F32" else np.float64)
    if info.is_float and info.bits == 8:
        return _fp8_table(info)[raw]
    kind = {"BOOL": np.uint8, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16,
            "U32": np.uint32, "I32": np.int32, "U64": np.uint64, "I64": np.int64}[dtype]
    return raw.view(kind).astype(np.float64)


class Accumulator:
    """Statistics of one tensor fed in row blocks (``add``), finished by ``finish``.

    Moments are summed around a shift (the first block's mean) so that a tensor of values
    near 1 (a LayerNorm weight) keeps its small variance exactly enough for the kurtosis."""

    def __init__(self, dtype: str, shape: tuple[int, ...]):
        self.dtype = dtype
        self.info = DTYPES[dtype]
        self.shape = tuple(shape)
        numel = math.prod(shape)
        self.ncols = numel // shape[0] if len(shape) >= 2 and shape[0] > 0 else 0
        self.n = self.finite = self.nan = self.posinf = self.neginf = self.zeros = 0
        self.subnormal = 0
        self.lo = math.inf
        self.hi = -math.inf
        self.shift: float | None = None
        self.s = np.zeros(4)  # sums of (x - shift)^k, k = 1..4
        self.first: float | None = None
        self.all_equal = True
        self.exp_hist: np.ndarray | None = None
        self.row_std: list[np.ndarray] = []
        self.col_s1 = np.zeros(self.ncols) if self.ncols else None
        self.col_s2 = np.zeros(self.ncols) if self.ncols else None
        self.col_n = 0
        self.row_pos = 0
        self.row_step = max(1, numel // STRUCT_ELEMS)
        self.rows_ok = self.ncols > 0

    def add(self, raw: np.ndarray) -> None:
        """Feed the next block of the tensor's bytes (uint8; whole rows for a matrix)."""
        if raw.size == 0:
            return
        info = self.info
        zero_exp = 0
        if info.is_float and info.itemsize:
            bits = raw.view(_UINT[info.itemsize])
            # sign and exponent in one shift, the sign folded afterwards (one pass, no mask)
            se = np.bincount((bits >> info.mant_bits).astype(np.intp), minlength=2 << info.exp_bits)
            e = se[: 2 << info.exp_bits].reshape(2, -1).sum(axis=0)
            if self.exp_hist is None:
                self.exp_hist = np.zeros(1 << info.exp_bits, np.int64)
            self.exp_hist += e
            zero_exp = int(e[0])  # zeros and subnormals
            if info.name.endswith("FNUZ"):  # 0x80 (exponent 0) is their NaN
                zero_exp -= int(np.count_nonzero(bits == 0x80))
        x = float_values(self.dtype, raw)
        if x is None:  # packed sub-byte floats, complex: element counts only
            self.n += raw.size * 8 // info.bits
            units = raw.view(_UINT[info.itemsize]) if info.itemsize in _UINT else raw
            self.zeros += int(np.count_nonzero(units == 0))
            self.all_equal = False
            return
        self.n += x.size
        fin = np.isfinite(x)
        nfin = int(np.count_nonzero(fin))
        if nfin != x.size:
            nan = int(np.count_nonzero(np.isnan(x)))
            pinf = int(np.count_nonzero(x == np.inf))
            self.nan += nan
            self.posinf += pinf
            self.neginf += x.size - nfin - nan - pinf
        zeros = int(np.count_nonzero(x == 0))
        self.zeros += zeros
        if info.is_float and info.itemsize and info.name != "F8_E8M0":
            self.subnormal += zero_exp - zeros  # exponent field 0, not zero: subnormal
        if self.first is None:
            self.first = float(x[0])
        if not nfin:
            self.all_equal = False
            self.rows_ok = False
            return
        xf = x if nfin == x.size else x[fin]
        lo, hi = float(xf.min()), float(xf.max())
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        self.all_equal = self.all_equal and nfin == x.size and lo == hi == self.first
        self.finite += nfin
        # one float64 copy, shifted; its square; the rest are reductions of these two
        d = xf.astype(np.float64)
        if self.shift is None:
            self.shift = float(d.mean())
        d -= self.shift
        d2 = d * d
        # einsum, not np.dot: BLAS's threads made dot ~50x slower on a busy 2-core machine
        self.s += (d.sum(), d2.sum(), float(np.einsum("i,i->", d2, d)),
                   float(np.einsum("i,i->", d2, d2)))
        if self.rows_ok and self.ncols and nfin == x.size and x.size % self.ncols == 0:
            r, r2 = d.reshape(-1, self.ncols), d2.reshape(-1, self.ncols)
            # every ``row_step``-th row of the tensor (counted across blocks): the row and
            # column spreads of ~STRUCT_ELEMS elements, whatever the tensor's size
            first = (-self.row_pos) % self.row_step
            self.row_pos += r.shape[0]
            r, r2 = r[first :: self.row_step], r2[first :: self.row_step]
            if r.shape[0] == 0:
                return
            rm = r.sum(axis=1) / self.ncols
            self.row_std.append(np.sqrt(np.maximum(r2.sum(axis=1) / self.ncols - rm * rm, 0.0)))
            assert self.col_s1 is not None and self.col_s2 is not None
            self.col_s1 += r.sum(axis=0)
            self.col_s2 += r2.sum(axis=0)
            self.col_n += r.shape[0]
        else:
            self.rows_ok = False

    def finish(self) -> dict[str, Any]:
        """The tensor's statistics: counts, range, moments, exponent summary, init match."""
        out: dict[str, Any] = {"numel": self.n, "zeros": self.zeros}
        if self.info.is_float:
            out.update(nan=self.nan, posinf=self.posinf, neginf=self.neginf,
                       subnormal=self.subnormal)
        out["all_equal"] = bool(self.n > 0 and self.all_equal and self.first is not None)
        if self.finite:
            k = self.finite
            m1 = self.s[0] / k
            var = max(self.s[1] / k - m1 * m1, 0.0)
            mean = (self.shift or 0.0) + m1
            out.update(min=self.lo, max=self.hi, mean=mean, std=math.sqrt(var))
            if var > 0:
                # central 4th moment from the shifted raw moments
                r2, r3, r4 = self.s[1] / k, self.s[2] / k, self.s[3] / k
                c4 = r4 - 4 * m1 * r3 + 6 * m1 * m1 * r2 - 3 * m1 ** 4
                out["excess_kurtosis"] = c4 / (var * var) - 3.0
        if self.exp_hist is not None:
            out["exponent"] = exponent_summary(self.exp_hist, self.info)
        if self.rows_ok and self.col_n > 1 and self.ncols > 1 and out.get("std", 0) > 0:
            out["structure"] = self._structure(out)
        init = init_match(self.shape, out)
        if init is not None:
            out["init_match"] = init
        near = nearest_init(self.shape, out)
        if near is not None:
            out["nearest_init"] = near
        return out

    def _structure(self, st: dict[str, Any]) -> dict[str, float]:
        """How far the spread of row and column standard deviations is above what i.i.d.
        sampling gives (1.0 = i.i.d.; trained matrices are several times above)."""
        assert self.col_s1 is not None and self.col_s2 is not None
        beta = st.get("excess_kurtosis", 0.0) + 3.0
        rs = np.concatenate(self.row_std)
        nr, nc = self.col_n, self.ncols
        cmean = self.col_s1 / nr
        cstd = np.sqrt(np.maximum(self.col_s2 / nr - cmean * cmean, 0.0))

        def ratio(stds: np.ndarray, n_per: int) -> float:
            expected = math.sqrt(max(beta - 1.0, 1e-6) / (4.0 * n_per))
            m = float(stds.mean())
            return float(stds.std() / m / expected) if m > 0 else math.inf

        return {"row_spread": ratio(rs, nc), "col_spread": ratio(cstd, nr)}


def exponent_summary(hist: np.ndarray, info: DTypeInfo) -> dict[str, Any]:
    """Biased-exponent histogram, summarised: range used, mode, entropy, top three."""
    total = int(hist.sum())
    present = np.flatnonzero(hist)
    bias = (1 << (info.exp_bits - 1)) - 1
    p = hist[present] / max(total, 1)
    top = present[np.argsort(-hist[present], kind="stable")[:3]]
    return {
        "distinct": int(present.size),
        "min": int(present.min()) - bias if present.size else None,
        "max": int(present.max()) - bias if present.size else None,
        "mode": int(top[0]) - bias if present.size else None,
        "entropy_bits": float(-(p * np.log2(p)).sum()) if present.size else 0.0,
        "top": [[int(e) - bias, float(hist[e] / max(total, 1))] for e in top],
    }


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) as torch.nn.init computes them (weight [out, in, *kernel])."""
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def init_candidates(shape: tuple[int, ...]) -> list[tuple[str, float, str]]:
    """(name, std, shape: normal|uniform) of the common initialisations of a weight."""
    fi, fo = fans(shape)
    out = [("normal(std=0.02)", 0.02, "normal"), ("normal(std=0.01)", 0.01, "normal"),
           ("normal(std=1)", 1.0, "normal")]
    if fi > 0:
        out += [
            ("torch default uniform(+-1/sqrt(fan_in))", 1 / math.sqrt(3 * fi), "uniform"),
            ("normal(std=1/sqrt(fan_in))", 1 / math.sqrt(fi), "normal"),
            ("kaiming_normal", math.sqrt(2 / fi), "normal"),
            ("kaiming_uniform", math.sqrt(2 / fi), "uniform"),
        ]
    if fi + fo > 0:
        out += [("xavier_normal", math.sqrt(2 / (fi + fo)), "normal"),
                ("xavier_uniform", math.sqrt(2 / (fi + fo)), "uniform")]
    return out


def distribution_shape(st: dict[str, Any]) -> str | None:
    """'normal' or 'uniform' when the excess kurtosis says so (trained weights: heavier)."""
    k = st.get("excess_kurtosis")
    if k is None:
        return None
    if abs(k) < 0.25:
        return "normal"
    if abs(k + 1.2) < 0.15:
        return "uniform"
    return None


def init_match(shape: tuple[int, ...], st: dict[str, Any]) -> str | None:
    """The common initialisation whose std (within 5 %) and shape the tensor has, if any."""
    if len(shape) < 2 or not st.get("std") or st.get("numel", 0) < MIN_INIT_ELEMS:
        return None
    kind = distribution_shape(st)
    if kind is None or abs(st["mean"]) > 0.1 * st["std"]:
        return None
    for name, std, shape_kind in init_candidates(shape):
        if shape_kind == kind and abs(st["std"] / std - 1.0) < 0.05:
            return name
    return None


def nearest_init(shape: tuple[int, ...], st: dict[str, Any]) -> dict[str, Any] | None:
    """For a matrix: the common initialisation whose std is nearest the tensor's (on a log
    scale) and the ratio of the two: how far the weights moved in scale from any init."""
    if len(shape) < 2 or not st.get("std"):
        return None
    name, std, kind = min(init_candidates(shape), key=lambda c: abs(math.log(st["std"] / c[1])))
    return {"name": name, "std": std, "ratio": st["std"] / std}


def _is_norm(name: str) -> bool:
    return bool(_NORM.search(name.rsplit(".", 1)[0] + ".")) or "norm" in name.lower()


def findings(name: str, shape: tuple[int, ...], st: dict[str, Any]) -> list[dict[str, Any]]:
    """What is wrong or worth knowing about one tensor, from its statistics."""
    out: list[dict[str, Any]] = []

    def add(sev: str, code: str, msg: str) -> None:
        out.append({"severity": sev, "code": code, "tensors": [name], "message": msg})

    n = st["numel"]
    if st.get("nan"):
        add("error", "nan", f"{st['nan']} NaN value(s) of {n}")
    if st.get("posinf") or st.get("neginf"):
        add("error", "inf", f"{st.get('posinf', 0)} +inf and {st.get('neginf', 0)} -inf of {n}")
    if n == 0:
        return out
    leaf = name.rsplit(".", 1)[-1].lower()
    if st["all_equal"] and n > 1:
        v = st.get("min", 0.0)
        if v == 0:
            if len(shape) <= 1 and ("bias" in leaf or _is_norm(name)):
                add("info", "zero_bias", "all zero (an initial bias; normal if it was never "
                    "trained or is unused)")
            else:
                add("warning", "all_zero", f"all {n} values are zero")
        elif v == 1.0 and len(shape) <= 1 and (_is_norm(name) or "weight" in leaf or "scale" in leaf):
            add("info", "ones", "all ones (a norm layer's initial weight)")
        elif len(shape) <= 1 and "position_ids" not in name:
            add("info", "all_equal", f"all {n} values equal {v:g}")
        else:
            add("warning", "all_equal", f"all {n} values equal {v:g}")
        return out
    struct = st.get("structure")
    kind = distribution_shape(st)
    if struct and kind and n >= MIN_INIT_ELEMS and \
            max(struct["row_spread"], struct["col_spread"]) < IID_RATIO:
        init = st.get("init_match")
        why = f"std {st['std']:.4g} = {init}" if init else f"std {st['std']:.4g}"
        add("warning", "untrained", f"looks untrained: i.i.d. {kind} values ({why}; row/column "
            f"spread x{struct['row_spread']:.2f}/x{struct['col_spread']:.2f} of i.i.d. sampling)")
    return out


def subnormal_findings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One note for the whole checkpoint: which tensors hold subnormal values (common in
    fp16, where they lose precision and may be flushed to zero by some kernels)."""
    hit = [r for r in rows if r.get("subnormal")]
    if not hit:
        return []
    total = sum(r["subnormal"] for r in hit)
    worst = max(hit, key=lambda r: r["subnormal"] / max(r["numel"], 1))
    return [{"severity": "info", "code": "subnormal", "tensors": [r["name"] for r in hit],
             "message": f"{len(hit)} tensor(s) hold {total} subnormal value(s); most in "
                        f"{worst['name']} ({worst['subnormal'] / worst['numel']:.2%})"}]


def duplicate_findings(groups: list[list[str]], numel: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Findings for groups of byte-identical tensors (same dtype, shape and bytes): tied
    embeddings and equal small constants (a few elements: flags, head counts) are noted,
    other copies are warned about."""
    out = []
    for names in groups:
        if numel is not None and numel.get(names[0], 0) <= 16:
            out.append({"severity": "info", "code": "same_const", "tensors": names,
                        "message": f"{len(names)} small tensors hold the same values"})
            continue
        tied = any(re.search(r"embed|wte|lm_head|tok|shared|output", n, re.IGNORECASE) for n in names) \
            and len(names) == 2
        if tied:
            out.append({"severity": "info", "code": "tied", "tensors": names,
                        "message": "identical (tied weights; stored once by bigsmall)"})
        else:
            out.append({"severity": "warning", "code": "duplicate", "tensors": names,
                        "message": f"{len(names)} tensors are byte-identical"})
    return out


def sort_findings(items: list[dict[str, Any]], order: dict[str, int]) -> list[dict[str, Any]]:
    """Most severe first; within a severity in the tensors' order in the file."""
    return sorted(items, key=lambda f: (SEVERITIES.index(f["severity"]),
                                        order.get(f["tensors"][0], 0)))
