"""fp8 checkpoints on real weights: per-tensor scaled e4m3 casts of the corpus models compress
to the sizes ``docs/performance.md`` ("fp8") states, below the order-0 floor, the scale tensors
beside them cost no blob bytes, and the file restores byte for byte.

The figures asserted are the ones measured (``benchmarks/bench_fp8.py``) with a small margin:
Whisper tiny's fp8 tensors 77.1 % (<= 77.5 asserted; 79.97 % before ``codecs/fp8.py``), MiniLM's
81.05 % (<= 81.10; order-0 floor 81.87 %). The issue's 80 % target holds for Whisper, not for
MiniLM, whose fp8 cast has no per-row or per-column structure left to model (see the docs).
"""

from __future__ import annotations

import importlib
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.codecs import auto, fp8
from bigsmall.core.types import TensorSpec
from bigsmall.plan.planner import chunk_units_for
from bigsmall.testing import corpus
from bigsmall.testing.synthetic import write_safetensors

SPEC = Path(__file__).resolve().parents[1] / "spec"


def _fp8_cast(src: Path, name: str, cache: Path) -> Path:
    # the corpus cache (source fingerprint + cache version), as ``corpus.minilm_fp8`` uses it
    return corpus._cached(name, [src], lambda dst: corpus.cast_safetensors(src, dst, "fp8_e4m3fn"),
                          cache)


def _tensors(path: Path) -> dict[str, tuple[TensorSpec, np.ndarray]]:
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    out = {}
    for name, v in json.loads(blob[8 : 8 + n]).items():
        if name != "__metadata__":
            b, e = v["data_offsets"]
            out[name] = (TensorSpec(name, v["dtype"], tuple(v["shape"]), b, e),
                         np.frombuffer(blob, np.uint8, e - b, 8 + n + b).copy())
    return out


def _order0(data: np.ndarray) -> float:
    c = np.bincount(data, minlength=256).astype(np.float64)
    c = c[c > 0]
    return float(-(c * np.log2(c / c.sum())).sum() / 8)


def _check(src: Path, tmp_path: Path, at_most: float, floor_gain: float) -> dict[str, float]:
    """Compress ``src`` with the defaults; check the restore, the scales and the fp8 ratio."""
    bs = tmp_path / "m.bs"
    bigsmall.compress(src, bs)
    bigsmall.decompress(bs, tmp_path / "back.safetensors")
    assert (tmp_path / "back.safetensors").read_bytes() == src.read_bytes()
    tensors = _tensors(src)
    fp8_bytes = coded = floor = 0.0
    with bigsmall.open(bs) as f:
        for name in f.names():
            e = f.entry(name)
            size = e.head_len + sum(e.chunk_lens)
            if name.endswith(".scale"):
                assert e.spec.dtype == "F32" and e.spec.shape == ()
                assert size == 0, (name, e.codec)  # a scalar: its value sits in the index
            elif e.spec.dtype == "F8_E4M3":
                fp8_bytes += e.spec.nbytes
                coded += size
                floor += _order0(tensors[name][1])
    ratio = coded / fp8_bytes
    assert ratio <= at_most, ratio
    assert ratio <= floor / fp8_bytes - floor_gain, (ratio, floor / fp8_bytes)
    return {"ratio": ratio, "fp8_bytes": fp8_bytes, "file_ratio": bs.stat().st_size / src.stat().st_size}


def test_whisper_tiny_fp8_below_80_percent(tmp_path: Path, corpus_cache: Path) -> None:
    src = _fp8_cast(corpus.whisper_tiny_safetensors(corpus_cache), "whisper-tiny.fp8_e4m3fn.safetensors",
                    corpus_cache)
    got = _check(src, tmp_path, 0.775, 0.05)
    assert got["file_ratio"] <= 0.80
    # the previous coder (field's model, field8 or fieldp) on the embedding, half the file
    spec, data = _tensors(src)["decoder.embeddings.weight"]
    prev = auto.encode(data, spec, chunk_units_for(spec))
    assert prev is not None
    with bigsmall.open(tmp_path / "m.bs") as f:
        e = f.entry("decoder.embeddings.weight")
    assert e.head_len + sum(e.chunk_lens) <= 0.96 * prev.coded_size


def test_minilm_fp8_below_order0(tmp_path: Path) -> None:
    try:
        src = corpus.minilm_fp8()
    except corpus.CorpusUnavailable as exc:  # pragma: no cover - depends on the environment
        pytest.fail(f"corpus model missing: {exc}")
    _check(src, tmp_path, 0.8110, 0.007)


@pytest.mark.parametrize("coder,fmt,codec", [("rans", "1.0", "field"), ("rans", "1.1", "field8"),
                                             ("prefix", "1.2", "fieldp")])
def test_reference_decoder_reads_fp8_streams(tmp_path: Path, coder: str, fmt: str, codec: str) -> None:
    """spec/reference_decoder.py (written from FORMAT.md alone) restores fp8 tensors coded with
    the whole-byte model over a grid past 8 column clusters: the format needs nothing new."""
    rng = np.random.default_rng(5)
    nrows, ncols = 64, 256
    # per column: its own scale and sign bias (as an embedding's hidden dimensions)
    mag = np.clip(rng.geometric(0.5, (nrows, ncols)) + rng.integers(2, 100, ncols), 0, 126)
    sign = rng.random((nrows, ncols)) < rng.choice([0.03, 0.97], ncols)
    w = (mag | sign << 7).astype(np.uint8)
    w[0, :256] = np.arange(256)  # every bit pattern, NaNs included
    spec = TensorSpec("w", "F8_E4M3", (nrows, ncols), 0, w.size)
    plan = fp8.encode(w.ravel(), spec, 5000)
    assert plan is not None and plan.params["layout"] == [8, 0, 8, 0] and plan.params["grid"][1] > 8
    src = write_safetensors(tmp_path / "m.safetensors", {"w": ("F8_E4M3", (nrows, ncols), w.tobytes()),
                                                          "w.scale": ("F32", (), b"\0\0\x80\x3b")})
    bs = tmp_path / "m.bs"
    bigsmall.compress(src, bs, coder=coder, format_version=fmt)
    with bigsmall.open(bs) as f:
        e = f.entry("w")
        assert e.codec == codec and e.params["layout"] == [8, 0, 8, 0] and e.params["grid"][1] > 8
    sys.path.insert(0, str(SPEC))
    try:
        rd = importlib.import_module("reference_decoder")
    finally:
        sys.path.remove(str(SPEC))
    assert list(rd.restore(bs.read_bytes()).values()) == [src.read_bytes()]
