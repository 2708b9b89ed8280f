"""``bigsmall scan``: predict what ``bigsmall compress`` (default level) will make of a
checkpoint from a sample, without coding or writing anything; say what is unusual.

How the prediction works (measured on the corpus models: docs/tools.md):

- every float tensor of at least ``SMALL_BYTES`` is sampled by rows: ``SAMPLE_ROWS`` rows at
  a regular stride (strided, not one block: an embedding's rows differ from start to end). The
  encoder's own model (``field8.model`` at ``--level fast``: the layout choice, the quantised
  tables, the row shifts) is built on the sample, and ``auto.estimate`` gives the exact coded
  size of the chunks under it (rANS and prefix, the smaller is taken as ``--coder auto``
  does); the chunk bytes are scaled by rows, the side information added once;
- the default level's context search (row/column clusters) saves a share that depends on the
  model (0.1 points on MiniLM fp32, 2 on Whisper fp16), and is too slow to run on every tensor
  (~10 ms each, whatever the sample). So it runs on the sample of one tensor per *class*
  (the name with its layer numbers removed, with dtype and shape: the same matrix in every
  layer), and its saving (default / fast, on that sample) is applied to the class;
- small tensors (biases, norms) are a few kB of a model: their order-0 entropy (``floor``)
  plus a fixed side-information allowance; other dtypes: zstd of a sample;
- identical tensors (xxh3-128 over all bytes, which runs at memory speed) cost nothing: the
  container stores them once.
"""

from __future__ import annotations

import functools
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from ..codecs import auto, field
from ..codecs.base import get_codec, unit_bytes
from ..core.floor import floor_bits
from ..core.types import TensorSpec
from ..errors import InvalidSafetensorsError
from ..plan.planner import chunk_units_for
from .xray import Item, SafetensorsTensors

SAMPLE_ROWS = 128
SMALL_BYTES = 1 << 16
UNUSUAL_ROWS = 16  # rows per F32 tensor checked for bf16 / fp16 values
GAIN_COVER = 0.8
GAIN_KEYS = 4
ZSTD_PROBE = 1 << 18  # bytes: the planner's first chunk
SMALL_OVERHEAD = 40  # bytes of side information of a small coded tensor (tables, chunk header)
_GOLDEN = (math.sqrt(5) - 1) / 2
_CLASS_DIGITS = re.compile(r"(?<=[._/])\d+(?=[._/]|$)")


@functools.lru_cache(maxsize=1 << 14)
def tensor_class(name: str) -> str:
    """A coarse class for the report: embedding, attention, mlp, norm, bias, conv, other."""
    low = name.lower()
    if "norm" in low or re.search(r"(^|[._])ln", low):
        return "norm"
    if low.endswith("bias") or low.endswith(".beta"):
        return "bias"
    if "emb" in low or "wte" in low or "wpe" in low or "lm_head" in low or "position" in low:
        return "embedding"
    if "attn" in low or "attention" in low or re.search(r"(q|k|v|o)_proj", low):
        return "attention"
    if "mlp" in low or "ffn" in low or "intermediate" in low or "fc" in low or "output.dense" in low:
        return "mlp"
    if "conv" in low:
        return "conv"
    return "other"


def group_key(spec: TensorSpec) -> tuple[str, str, tuple[int, ...]]:
    """Tensors that share a context-search result: same name up to layer numbers, dtype, shape."""
    return _CLASS_DIGITS.sub("#", spec.name), spec.dtype, spec.shape


def _sample_rows(data: np.ndarray, spec: TensorSpec, rows: int) -> tuple[np.ndarray, int, int]:
    """(sampled bytes, sampled rows, all rows): ``rows`` rows of the tensor's matrix view, one
    in each of ``rows`` equal stretches, at a position within its stretch that moves by the
    golden ratio from one stretch to the next. Why not every k-th row: a period in the rows
    (every other row exactly fp16, interleaved q|k|v heads) aliases with a fixed stride and
    the sample would see only one kind of row."""
    nr, nc = spec.matrix
    if spec.info.itemsize == 0 or len(spec.shape) < 2:
        nr, nc = 1, spec.numel
    if nr <= rows:
        return data, nr, nr
    k = np.arange(rows)
    idx = ((k + (k * _GOLDEN) % 1.0) * (nr / rows)).astype(np.int64)
    m = data.reshape(nr, nc * spec.info.itemsize)[np.minimum(idx, nr - 1)]
    return m.ravel(), m.shape[0], nr


def _model_bytes(sample: np.ndarray, spec: TensorSpec, ns: int, nr: int,
                 level: str, sign: bool | None = None) -> tuple[float, int] | None:
    """(coded chunk bytes scaled to the whole tensor, side-information bytes) of the field
    model on a sample of ``ns`` of the ``nr`` rows, or None when the field codec does not
    apply. ``sign``: whether the sign joins the coded field, decided on the whole tensor as
    the encoder decides it (``field.sign_field``; a sample of 64-128 rows decides it
    differently, and on Whisper that moved the prediction by 0.8-1.4 points)."""
    f8 = get_codec("field8")
    nc = spec.numel // nr if nr else 0
    sspec = TensorSpec(spec.name, spec.dtype, (ns, nc) if len(spec.shape) >= 2 else (ns * nc,),
                       0, sample.size)
    m = f8.model(sample, sspec, level, sign=sign)  # type: ignore[attr-defined]
    if m is None:
        return None
    rans, prefix = auto.estimate(m, chunk_units_for(sspec))
    return min(rans, prefix) * (nr / ns), len(m.head_z)


def _fp16_rows(sample: np.ndarray, nrows: int) -> float:
    """Share of the sampled rows (F32 bytes) whose every value is exactly an fp16 value."""
    f = sample.view(np.float32)
    if f.size == 0 or nrows == 0:
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        exact = (f.astype(np.float16).astype(np.float32) == f) | np.isnan(f)
    return float(exact.reshape(nrows, -1).all(axis=1).mean())


def _duplicates(reader: SafetensorsTensors,
                samples: dict[str, tuple[np.ndarray, int, int]]) -> dict[str, str]:
    """{tensor: the earlier tensor it is byte-identical to}. Candidates by a hash of a few
    sampled rows (same dtype and size; ``samples`` keeps them for ``_unusual``), then
    confirmed on all bytes: a scan reads only a sample of a tensor unless it may be a copy."""
    first: dict[tuple[str, int, str], list[Item]] = {}
    for it in reader.items:
        s = it.spec
        if s.nbytes:
            samp = samples[s.name] = _sample_rows(reader.view(it), s, UNUSUAL_ROWS)
            first.setdefault((s.dtype, s.nbytes, xxhash.xxh3_64_hexdigest(samp[0])), []).append(it)
    out: dict[str, str] = {}
    for cands in first.values():
        if len(cands) < 2:
            continue
        full: dict[str, str] = {}
        for it in cands:
            d = xxhash.xxh3_128_hexdigest(reader.view(it))
            reader.release(it)
            if d in full:
                out[it.spec.name] = full[d]
            else:
                full[d] = it.spec.name
    return out


def _unusual(s: TensorSpec, samp: np.ndarray, ns: int) -> dict[str, Any] | None:
    """A note when an F32 tensor's sampled rows hold bf16 (zero low halves) or fp16 values."""
    if not np.any(samp.view(np.uint32) & 0xFFFF):
        return {"code": "bf16_in_fp32", "tensors": [s.name],
                "message": f"{s.name}: every sampled F32 value has zero low 16 bits: bf16 "
                           "weights stored as fp32 (half of its bytes are padding; bigsmall "
                           "codes them away)"}
    share = _fp16_rows(samp, ns)
    if share > 0:
        return {"code": "fp16_exact_rows", "tensors": [s.name],
                "message": f"{s.name}: {share:.0%} of the sampled rows hold only exact fp16 "
                           "values stored as fp32"}
    return None


def scan(src: str | os.PathLike[str], rows: int = SAMPLE_ROWS) -> dict[str, Any]:
    """The predicted compressed size of ``src`` (safetensors file or model folder) by dtype
    and tensor class, and what is unusual in it. Reads a sample; writes nothing."""
    t0 = time.perf_counter()
    from .shards import is_bigsmall

    if is_bigsmall(Path(src)):
        raise InvalidSafetensorsError(f"{src} is a bigsmall container already: scan predicts "
                                      "what compress makes of a safetensors file; `bigsmall "
                                      "stat` shows a container's real sizes")
    reader = SafetensorsTensors(Path(src))
    pred: dict[str, tuple[float, str]] = {}
    notes: list[dict[str, Any]] = []
    sampled = 0
    try:
        samples: dict[str, tuple[np.ndarray, int, int]] = {}
        dups = _duplicates(reader, samples)
        groups: dict[tuple[str, str, tuple[int, ...]], list[Item]] = {}
        small: dict[tuple[str, str], list[Item]] = {}
        for it in reader.items:
            s = it.spec
            if s.name in dups:
                pred[s.name] = (0.0, "duplicate")
                notes.append({"code": "duplicate", "tensors": [dups[s.name], s.name],
                              "message": f"{s.name} is byte-identical to {dups[s.name]} "
                                         "(stored once)"})
                continue
            if s.dtype == "F32" and s.nbytes >= SMALL_BYTES:
                note = _unusual(s, samples[s.name][0], samples[s.name][1])
                if note is not None:
                    notes.append(note)
            simple = _simple(reader.view(it), s)
            if simple is not None:
                pred[s.name] = simple
            elif s.nbytes < SMALL_BYTES:
                small.setdefault((s.dtype, tensor_class(s.name)), []).append(it)
            else:
                groups.setdefault(group_key(s), []).append(it)
        for members in small.values():
            for name, est in _predict_small(members, reader):
                pred[name] = (est, "floor")
            sampled += sum(it.spec.nbytes for it in members)
        gains = _gains(groups, rows, reader)
        for members in groups.values():
            for name, est, how, n in _predict_group(members, rows, reader, gains):
                pred[name] = (est, how)
                sampled += n
        original = reader.total
    finally:
        reader.close()
    per = [{"name": it.spec.name, "dtype": it.spec.dtype, "class": tensor_class(it.spec.name),
            "original_bytes": it.spec.nbytes, "predicted_bytes": pred[it.spec.name][0],
            "how": pred[it.spec.name][1]} for it in reader.items]
    # the index: a fixed part per tensor, the stored safetensors headers (zstd'ed JSON)
    index_bytes = 64 + 120 * len(per) + sum(i.header.data_start // 3 for i in reader.inputs)  # type: ignore[union-attr]
    predicted = sum(r["predicted_bytes"] for r in per) + index_bytes
    by: dict[str, dict[str, Any]] = {}
    for r in per:
        b = by.setdefault(f"{r['dtype']} {r['class']}", {
            "dtype": r["dtype"], "class": r["class"], "tensors": 0, "original_bytes": 0,
            "predicted_bytes": 0.0})
        b["tensors"] += 1
        b["original_bytes"] += r["original_bytes"]
        b["predicted_bytes"] += r["predicted_bytes"]
    for b in by.values():
        b["predicted_ratio"] = b["predicted_bytes"] / b["original_bytes"] if b["original_bytes"] else 1.0
    seconds = time.perf_counter() - t0
    return {
        "src": str(src), "original_bytes": original, "predicted_bytes": int(predicted),
        "predicted_ratio": predicted / original if original else 1.0,
        "tensors": len(per), "sampled_bytes": sampled, "seconds": seconds,
        "mb_per_s": original / 1e6 / seconds if seconds else None,
        "by_class": sorted(by.values(), key=lambda b: -b["original_bytes"]),
        "unusual": notes, "tensor_predictions": per,
    }


def _simple(data: np.ndarray, s: TensorSpec) -> tuple[float, str] | None:
    """The prediction of an empty or constant tensor, else None."""
    if s.nbytes == 0:
        return 0.0, "empty"
    head = data[: min(data.size, 4096)]
    if np.all(head == head[0]) and np.all(data == data[0]):
        return 0.0, "const"  # the value lives in the index
    return None


def _predict_small(members: list[Item], reader: SafetensorsTensors) -> list[tuple[str, float]]:
    """Small tensors (biases, norms: a few kB of a model), pooled by dtype and class: the
    order-0 floor of their bytes together, plus a fixed side-information allowance each.
    Pooled, not one by one: a per-tensor floor costs as long as sampling a large tensor."""
    s0 = members[0].spec
    data = np.concatenate([reader.view(it) for it in members])
    bits = floor_bits(s0.dtype, data) if s0.info.itemsize else data.size * 8
    per_byte = bits / 8 / max(data.size, 1)
    return [(it.spec.name, min(float(it.spec.nbytes), per_byte * it.spec.nbytes + SMALL_OVERHEAD))
            for it in members]


def _zstd_probe(data: np.ndarray, s: TensorSpec, nbytes: int) -> float:
    """Bytes per input byte of the ``zstd`` codec (byte planes, level 3) on ``nbytes`` of the
    tensor, at its start and in its middle (the worse of the two): the planner's own trial,
    which wins on repetitive tables such as sinusoidal position encodings. Why the middle too:
    an embedding's first rows (padding, unused tokens) can be far more repetitive than the
    rest, and the planner codes all of it."""
    unit = unit_bytes(s)
    n = min(s.nbytes, nbytes) // unit * unit
    if n == 0:
        return 1.0
    worst = 0.0
    for at in {0, (s.nbytes // 2 - n // 2) // unit * unit if s.nbytes > 2 * n else 0}:
        plan = get_codec("zstd").encode(data[at : at + n], s, n // unit)
        worst = max(worst, plan.coded_size / n if plan is not None else 1.0)
    return worst


def _predict_group(members: list[Item], rows: int, reader: SafetensorsTensors,
                   gains: dict[Any, float]) -> list[tuple[str, float, str, int]]:
    """(name, predicted bytes, method, bytes sampled) of each member of a class.

    The members' sampled rows (``rows`` in all, at least 8 per member) are stacked and
    modelled once at ``--level fast``: one table per tensor at that level, so the stack's
    cost is the members' average. The context search's saving is measured on the middle
    member alone (``_context_gain``)."""
    s0 = members[0].spec
    total = sum(it.spec.nbytes for it in members)
    if s0.info.bits == 8 and len(members) > 1:  # fp8/int8: each tensor has its own scale
        return [r for it in members for r in _predict_group([it], rows, reader, gains)]
    per = max(8, rows // len(members))
    parts = [_sample_rows(reader.view(it), it.spec, per) for it in members]
    sample = np.concatenate([p[0] for p in parts])
    ns = sum(p[1] for p in parts)
    nr = sum(p[2] for p in parts)
    spec = TensorSpec(s0.name, s0.dtype, (nr * (s0.numel // max(s0.matrix[0], 1)),), 0, total)
    if len(s0.shape) >= 2:
        spec = TensorSpec(s0.name, s0.dtype, (nr, s0.numel // s0.shape[0]), 0, total)
    fast = None
    if s0.info.is_float or s0.info.itemsize <= 1:
        fast = _model_bytes(sample, spec, ns, nr, "fast",
                            field.sign_field(reader.view(members[0]), s0, "fast"))
    if fast is None:
        ratio = max(_zstd_probe(reader.view(it), it.spec, ZSTD_PROBE) for it in members[:2])
        return [(it.spec.name, ratio * it.spec.nbytes, "zstd", min(it.spec.nbytes, 2 * ZSTD_PROBE))
                for it in members]
    chunks, head = fast
    gain = gains.get(gain_key(s0), gains.get(s0.dtype, 1.0))
    ratio = (chunks + head * len(members)) / total * gain
    # the planner's zstd trial: a cheap look at the first member, all of them if it is close
    zstd = _zstd_probe(reader.view(members[0]), s0, 1 << 14) < ratio
    out = []
    for it, (samp, _ns, _nr) in zip(members, parts, strict=True):
        est, how = ratio * it.spec.nbytes, "sample"
        if zstd:
            z = _zstd_probe(reader.view(it), it.spec, ZSTD_PROBE) * it.spec.nbytes
            if z < est:
                est, how = z, "zstd"
        out.append((it.spec.name, min(float(it.spec.nbytes), est), how, samp.size))
    return out


def gain_key(spec: TensorSpec) -> tuple[str, tuple[int, ...], str]:
    """Tensors whose context-search saving is taken to be the same: dtype, shape, class.
    (Coarser, dtype and class alone, was tried: 1 fewer search per model, but 0.1-0.2
    points less exact on MiniLM fp32 and fp8.)"""
    return spec.dtype, spec.shape, tensor_class(spec.name)


def _gains(groups: dict[Any, list[Item]], rows: int, reader: SafetensorsTensors) -> dict[Any, float]:
    """The context search's saving (``_context_gain``) for the largest ``gain_key``s, until
    they hold ``GAIN_COVER`` of the sampled bytes (at most ``GAIN_KEYS`` of them: each takes
    ~10 ms, whatever the sample), and per dtype the byte-weighted mean of those, for the rest.
    Measured on the corpus, the saving is 0-1 % on layer matrices and 1-4 % on embeddings
    and position tables, so the largest tensors carry what matters."""
    by: dict[Any, tuple[int, list[Item]]] = {}
    for members in groups.values():
        k = gain_key(members[0].spec)
        n, first = by.get(k, (0, members))
        by[k] = (n + sum(it.spec.nbytes for it in members), first)
    total = sum(n for n, _ in by.values())
    out: dict[Any, float] = {}
    weighted: dict[str, list[float]] = {}
    covered = 0
    for k, (n, members) in sorted(by.items(), key=lambda kv: -kv[1][0]):
        if len(out) >= GAIN_KEYS or covered >= GAIN_COVER * total:
            break
        g = out[k] = _context_gain(members, rows, reader)
        covered += n
        w = weighted.setdefault(k[0], [0.0, 0.0])
        w[0] += g * n
        w[1] += n
    for dtype, (gn, n) in weighted.items():
        out[dtype] = gn / n if n else 1.0
    return out


def _context_gain(members: list[Item], rows: int, reader: SafetensorsTensors) -> float:
    """default / fast coded size of the class's middle member, on ``rows // 2`` of its rows:
    the share the context search saves (at most 1). Half the rows: the search costs ~15 %
    less of a scan, and the predictions moved by < 0.04 points on the corpus."""
    if not members[0].spec.info.is_float:
        return 1.0
    rep = members[len(members) // 2]
    rs, rns, rnr = _sample_rows(reader.view(rep), rep.spec, rows // 2)
    whole = reader.view(rep)
    d = _model_bytes(rs, rep.spec, rns, rnr, "default", field.sign_field(whole, rep.spec, "default"))
    f = _model_bytes(rs, rep.spec, rns, rnr, "fast", field.sign_field(whole, rep.spec, "fast"))
    if d is None or f is None or f[0] + f[1] <= 0:
        return 1.0
    return min(1.0, (d[0] + d[1]) / (f[0] + f[1]))
