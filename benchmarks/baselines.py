"""Yardsticks for a lossless weight codec, measured on a safetensors file.

Why: a compression ratio means little on its own. These baselines put it in context:

* ``order0_floor``: what an ideal order-0 entropy coder gets if it codes, per tensor,
  ``(sign, exponent)`` jointly and the mantissa conditioned on the exponent, each symbol
  independently (no context across elements). A codec of that family cannot beat it; one that does
  must model context.
* ``zstd_ratio``: the general-purpose compressor everybody already has.
* ``byte_grouped_zstd_ratio``: zstd after splitting each tensor into byte planes, the usual cheap
  trick (exponent bytes together compress well); a codec should beat it clearly to be worth using.

All ratios are ``compressed / original`` (smaller is better), over the whole file, header included.

Run ``python benchmarks/baselines.py FILE...`` or ``--corpus`` for the corpus models of
``bigsmall.testing.corpus``; ``--json`` prints machine-readable results.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

__all__ = [
    "FLOAT_LAYOUTS",
    "byte_grouped_zstd_ratio",
    "main",
    "order0_floor",
    "read_safetensors_layout",
    "zstd_ratio",
]

#: safetensors dtype -> (sign bits, exponent bits, mantissa bits) for the floating formats.
FLOAT_LAYOUTS: dict[str, tuple[int, int, int]] = {
    "F64": (1, 11, 52),
    "F32": (1, 8, 23),
    "F16": (1, 5, 10),
    "BF16": (1, 8, 7),
    "F8_E4M3": (1, 4, 3),
    "F8_E5M2": (1, 5, 2),
}

#: Item size in bytes of every safetensors dtype.
ITEMSIZE: dict[str, int] = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "U64": 8,
    "I32": 4,
    "U32": 4,
    "I16": 2,
    "U16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclass(frozen=True)
class TensorSpan:
    """One tensor's dtype, shape and byte range within the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute file offset
    end: int


@dataclass(frozen=True)
class Layout:
    """Where everything is in a safetensors file."""

    file_bytes: int
    header_bytes: int  # the 8-byte length prefix plus the JSON header
    tensors: list[TensorSpan]


def read_safetensors_layout(path: str | Path) -> Layout:
    """Parse the safetensors header without loading data (the file may hold any dtype)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) != 8:
            raise ValueError(f"{path}: too short for a safetensors file")
        (n,) = struct.unpack("<Q", prefix)
        if 8 + n > size:
            raise ValueError(f"{path}: header length {n} exceeds the file")
        header = json.loads(fh.read(n))
    base = 8 + n
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        spans.append(
            TensorSpan(name, info["dtype"], tuple(info["shape"]), base + begin, base + end)
        )
    spans.sort(key=lambda s: s.start)
    return Layout(size, base, spans)


def _bits(counts: np.ndarray) -> float:
    """Total bits ``n * H`` of an ideal order-0 code for a histogram: ``n log n - sum c log c``."""
    c = counts[counts > 0].astype(np.float64)
    n = c.sum()
    if n == 0:
        return 0.0
    return float(n * np.log2(n) - (c * np.log2(c)).sum())


def _float_bits(u: np.ndarray, layout: tuple[int, int, int]) -> tuple[float, float]:
    """``(n*H(sign,exp), n*H(mantissa | exp))`` in bits for the raw bit patterns ``u``."""
    s_bits, e_bits, m_bits = layout
    width = s_bits + e_bits + m_bits
    if width <= 16:
        # one histogram of every bit pattern, then marginalise: fast and exact
        counts = np.bincount(u.ravel(), minlength=1 << width).reshape(
            1 << s_bits, 1 << e_bits, 1 << m_bits
        )
        se = _bits(counts.sum(axis=2))
        em = _bits(counts.sum(axis=0))
        e = _bits(counts.sum(axis=(0, 2)))
        return se, em - e
    # F32/F64: 2^(e+m) is too large for bincount; np.unique counts the observed (exp, mant)
    # pairs. Caveat: with n << 2^m samples the plug-in conditional entropy is biased low (each
    # exponent bucket holds at most n distinct mantissas), so this "floor" is optimistic.
    flat = u.ravel()
    se_key = (flat >> flat.dtype.type(m_bits)).astype(np.int64)
    se = _bits(np.bincount(se_key, minlength=1 << (s_bits + e_bits)))
    e = _bits(np.bincount(se_key & ((1 << e_bits) - 1), minlength=1 << e_bits))
    mask = (1 << (e_bits + m_bits)) - 1
    _, em_counts = np.unique(flat & flat.dtype.type(mask), return_counts=True)
    return se, _bits(em_counts) - e


def order0_floor(path: str | Path) -> dict[str, Any]:
    """Order-0 entropy floor of a safetensors file.

    Per tensor, floats cost ``n * (H(sign, exp) + H(mantissa | exp))`` bits, other dtypes
    ``n_bytes * H(byte)``; the header (and any gap between tensors) is counted raw. Returns the
    total in bytes, ``ratio = floor_bytes / file_bytes``, a per-dtype breakdown (bits per element
    for each part) and ``raw_mantissa_bytes``/``raw_mantissa_ratio``: the same with the mantissa
    stored verbatim, i.e. what exponent-only coders (DFloat11-style) can reach.
    """
    layout = read_safetensors_layout(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    covered = layout.header_bytes + sum(t.end - t.start for t in layout.tensors)
    raw_bytes = layout.file_bytes - covered + layout.header_bytes  # header + gaps, counted raw
    total_bits = 8.0 * raw_bytes
    raw_mant_bits = 8.0 * raw_bytes
    by_dtype: dict[str, dict[str, float]] = {}
    for t in layout.tensors:
        buf = data[t.start : t.end]
        row = by_dtype.setdefault(
            t.dtype,
            {"tensors": 0, "elements": 0, "payload_bytes": 0, "floor_bytes": 0.0},
        )
        row["tensors"] += 1
        row["payload_bytes"] += t.end - t.start
        if t.end == t.start:
            continue
        if t.dtype in FLOAT_LAYOUTS:
            fl = FLOAT_LAYOUTS[t.dtype]
            u = np.frombuffer(buf, dtype=_UINT[ITEMSIZE[t.dtype]])
            se, m = _float_bits(u, fl)
            row["elements"] += u.size
            row["sign_exp_bits"] = row.get("sign_exp_bits", 0.0) + se
            row["mantissa_bits"] = row.get("mantissa_bits", 0.0) + m
            bits = se + m
            raw_mant_bits += se + u.size * fl[2]
        else:
            bits = _bits(np.bincount(np.asarray(buf), minlength=256))
            row["elements"] += (t.end - t.start) // ITEMSIZE.get(t.dtype, 1)
            raw_mant_bits += bits
        row["floor_bytes"] += bits / 8
        total_bits += bits
    for row in by_dtype.values():
        if "sign_exp_bits" in row and row["elements"]:
            row["sign_exp_bits_per_elem"] = row.pop("sign_exp_bits") / row["elements"]
            row["mantissa_bits_per_elem"] = row.pop("mantissa_bits") / row["elements"]
        row["ratio"] = row["floor_bytes"] / row["payload_bytes"] if row["payload_bytes"] else 0.0
    return {
        "path": str(path),
        "file_bytes": layout.file_bytes,
        "header_bytes": layout.header_bytes,
        "tensors": len(layout.tensors),
        "floor_bytes": total_bits / 8,
        "ratio": total_bits / 8 / layout.file_bytes,
        "raw_mantissa_bytes": raw_mant_bits / 8,
        "raw_mantissa_ratio": raw_mant_bits / 8 / layout.file_bytes,
        "by_dtype": by_dtype,
    }


def zstd_ratio(path: str | Path, level: int = 3) -> float:
    """zstd (single-threaded, so deterministic) of the whole file, over the file size."""
    raw = Path(path).read_bytes()
    return len(zstandard.ZstdCompressor(level=level).compress(raw)) / len(raw)


def byte_grouped_zstd_ratio(path: str | Path, level: int = 3) -> float:
    """zstd of each tensor's byte planes (byte k of every element together), header raw."""
    layout = read_safetensors_layout(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    cctx = zstandard.ZstdCompressor(level=level)
    covered = layout.header_bytes + sum(t.end - t.start for t in layout.tensors)
    total = layout.file_bytes - covered + layout.header_bytes
    for t in layout.tensors:
        if t.end == t.start:
            continue
        size = ITEMSIZE.get(t.dtype, 1)
        planes = np.asarray(data[t.start : t.end]).reshape(-1, size).T
        for plane in planes:
            total += len(cctx.compress(np.ascontiguousarray(plane).tobytes()))
    return total / layout.file_bytes


def _corpus_paths() -> list[Path]:
    try:
        from bigsmall.testing import corpus
    except ImportError:  # run as a script from a checkout that is not installed
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from bigsmall.testing import corpus
    paths = [
        corpus.minilm_safetensors(),
        corpus.minilm_bf16(),
        corpus.minilm_fp8(),
        corpus.whisper_tiny_safetensors(),
    ]
    try:
        paths.append(corpus.whisper_base_safetensors())
    except corpus.CorpusUnavailable as exc:
        print(f"skipping Whisper base: {exc}", file=sys.stderr)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Print the baselines of each file as a table (or JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="safetensors files")
    parser.add_argument("--corpus", action="store_true", help="add the corpus models")
    parser.add_argument("--level", type=int, default=3, help="zstd level (default 3)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    paths = list(args.paths) + (_corpus_paths() if args.corpus else [])
    if not paths:
        parser.error("give safetensors files or --corpus")
    results = []
    for p in paths:
        r = order0_floor(p)
        r["zstd_ratio"] = zstd_ratio(p, args.level)
        r["byte_grouped_zstd_ratio"] = byte_grouped_zstd_ratio(p, args.level)
        r["zstd_level"] = args.level
        results.append(r)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    head = f"{'file':<40} {'MB':>8} {'tensors':>7} {'floor':>8} {'raw-mant':>8} {'zstd':>8} {'bg-zstd':>8}"
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{Path(r['path']).name[:40]:<40} {r['file_bytes'] / 1e6:>8.2f} {r['tensors']:>7d} "
            f"{100 * r['ratio']:>7.2f}% {100 * r['raw_mantissa_ratio']:>7.2f}% "
            f"{100 * r['zstd_ratio']:>7.2f}% {100 * r['byte_grouped_zstd_ratio']:>7.2f}%"
        )
    print(
        "\nratios are compressed/original over the whole file; floor = order-0 "
        "H(sign,exp)+H(mant|exp) per tensor, header raw; raw-mant = same with verbatim mantissa"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
