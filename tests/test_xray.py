"""``bigsmall xray``: statistics and findings, on synthetic checkpoints with known defects and
on the real corpus models (trained weights must not be called untrained)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.cli import main
from bigsmall.io.xray import xray
from bigsmall.plan import tensor_stats as ts
from bigsmall.testing.synthetic import write_safetensors


def _trained_like(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """What trained weights look like to these checks: rows and columns with their own
    scales, heavier tails than a Gaussian."""
    w = rng.standard_t(5, (rows, cols)) * 0.02
    w *= rng.lognormal(0, 0.4, (rows, 1)) * rng.lognormal(0, 0.4, (1, cols))
    return w.astype(np.float32)


@pytest.fixture(scope="module")
def defects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    fan_in = 512
    bound = 1 / math.sqrt(fan_in)
    fresh = rng.uniform(-bound, bound, (256, fan_in)).astype(np.float32)  # torch's nn.Linear init
    normal = rng.normal(0, 0.02, (384, 384)).astype(np.float32)  # HF's normal(0.02) init
    trained = _trained_like(rng, 256, 512)
    nan = _trained_like(rng, 64, 64)
    nan[3, 5] = np.nan
    nan[7, 1] = np.inf
    dup = _trained_like(rng, 128, 64)
    t = {
        "model.embed_tokens.weight": ("F32", (256, 512), trained.tobytes()),
        "model.layers.0.mlp.up_proj.weight": ("F32", (256, 512), fresh.tobytes()),
        "model.layers.0.self_attn.q_proj.weight": ("F32", (384, 384), normal.tobytes()),
        "model.layers.0.self_attn.k_proj.weight": ("F32", (128, 64), dup.tobytes()),
        "model.layers.1.self_attn.k_proj.weight": ("F32", (128, 64), dup.tobytes()),
        "model.layers.0.mlp.down_proj.weight": ("BF16", (64, 64),
                                                np.zeros((64, 64), np.uint16).tobytes()),
        "model.layers.0.o_proj.weight": ("F32", (64, 64), nan.tobytes()),
        "model.layers.0.input_layernorm.weight": ("F32", (64,), np.ones(64, np.float32).tobytes()),
        "model.layers.0.mlp.up_proj.bias": ("F16", (64,), np.zeros(64, np.float16).tobytes()),
        "model.layers.1.scale": ("F32", (4, 4), np.full((4, 4), 0.5, np.float32).tobytes()),
        "model.norm.weight": ("BF16", (64,), (np.ones(64, np.float32).view(np.uint32) >> 16)
                              .astype(np.uint16).tobytes()),
    }
    return write_safetensors(tmp_path_factory.mktemp("xray") / "model.safetensors", t)


def _codes(r: dict, name: str) -> set[str]:
    return {f["code"] for f in r["findings"] if name in f["tensors"]}


def test_defects_are_flagged(defects: Path) -> None:
    r = xray(defects)
    assert r["tensors"] == 11
    assert _codes(r, "model.layers.0.o_proj.weight") == {"nan", "inf"}
    assert _codes(r, "model.layers.0.mlp.down_proj.weight") == {"all_zero"}
    assert _codes(r, "model.layers.0.mlp.up_proj.weight") == {"untrained"}
    assert _codes(r, "model.layers.0.self_attn.q_proj.weight") == {"untrained"}
    assert _codes(r, "model.layers.1.scale") == {"all_equal"}
    dup = [f for f in r["findings"] if f["code"] == "duplicate"]
    assert len(dup) == 1 and set(dup[0]["tensors"]) == {
        "model.layers.0.self_attn.k_proj.weight", "model.layers.1.self_attn.k_proj.weight"}
    # normal initial values are notes, not warnings; trained-like weights raise nothing
    assert _codes(r, "model.layers.0.input_layernorm.weight") == {"ones"}
    assert _codes(r, "model.norm.weight") == {"ones"}
    assert _codes(r, "model.layers.0.mlp.up_proj.bias") == {"zero_bias"}
    assert _codes(r, "model.embed_tokens.weight") == set()
    # most severe first
    sev = [ts.SEVERITIES.index(f["severity"]) for f in r["findings"]]
    assert sev == sorted(sev) and r["counts"]["error"] == 2
    # the init the matrices were drawn from is named
    st = {s["name"]: s for s in r["tensor_stats"]}
    assert st["model.layers.0.mlp.up_proj.weight"]["init_match"].startswith("torch default uniform")
    assert st["model.layers.0.self_attn.q_proj.weight"]["init_match"] == "normal(std=0.02)"
    assert "init_match" not in st["model.embed_tokens.weight"]
    near = st["model.layers.0.self_attn.q_proj.weight"]["nearest_init"]
    assert near["name"] == "normal(std=0.02)" and near["ratio"] == pytest.approx(1, abs=0.01)
    nan = st["model.layers.0.o_proj.weight"]
    assert (nan["nan"], nan["posinf"], nan["neginf"]) == (1, 1, 0)


def test_statistics_are_exact(defects: Path) -> None:
    """Counts, range and moments against numpy on the whole array."""
    r = xray(defects)
    st = {s["name"]: s for s in r["tensor_stats"]}
    rng = np.random.default_rng(7)
    bound = 1 / math.sqrt(512)
    fresh = rng.uniform(-bound, bound, (256, 512)).astype(np.float32)
    s = st["model.layers.0.mlp.up_proj.weight"]
    assert s["min"] == float(fresh.min()) and s["max"] == float(fresh.max())
    assert s["mean"] == pytest.approx(float(fresh.astype(np.float64).mean()), rel=1e-9, abs=1e-12)
    assert s["std"] == pytest.approx(float(fresh.astype(np.float64).std()), rel=1e-9)
    assert s["numel"] == fresh.size and s["zeros"] == int((fresh == 0).sum())
    assert s["excess_kurtosis"] == pytest.approx(-1.2, abs=0.05)
    e = s["exponent"]
    assert e["max"] == int(np.floor(np.log2(np.abs(fresh).max())))


def test_blocks_give_the_same_statistics() -> None:
    """Streaming in row blocks (bounded memory) gives the whole-array answer."""
    rng = np.random.default_rng(1)
    x = _trained_like(rng, 300, 70)
    raw = np.frombuffer(x.tobytes(), np.uint8)
    whole = ts.Accumulator("F32", (300, 70))
    whole.add(raw)
    parts = ts.Accumulator("F32", (300, 70))
    for lo in range(0, 300, 37):
        parts.add(raw[lo * 280 : (lo + 37) * 280])
    a, b = whole.finish(), parts.finish()
    assert a.keys() == b.keys()
    for k in ("numel", "zeros", "nan", "min", "max", "exponent"):
        assert a[k] == b[k]
    for k in ("mean", "std", "excess_kurtosis"):
        assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-15)
    assert a["structure"]["row_spread"] == pytest.approx(b["structure"]["row_spread"], rel=1e-9)


def test_fp8_values() -> None:
    e4 = ts.float_values("F8_E4M3", np.array([0x7E, 0x7F, 0x01, 0x38, 0xB8, 0x80], np.uint8))
    assert e4 is not None
    assert e4[0] == 448 and np.isnan(e4[1]) and e4[2] == 2.0 ** -9 and e4[3] == 1 and e4[4] == -1
    e5 = ts.float_values("F8_E5M2", np.array([0x7C, 0xFC, 0x7D, 0x3C], np.uint8))
    assert e5 is not None
    assert e5[0] == np.inf and e5[1] == -np.inf and np.isnan(e5[2]) and e5[3] == 1
    fnuz = ts.float_values("F8_E4M3FNUZ", np.array([0x80, 0x40], np.uint8))
    assert fnuz is not None and np.isnan(fnuz[0]) and fnuz[1] == 1.0


def test_bs_gives_the_same_report(defects: Path, tmp_path: Path) -> None:
    """A .bs (decoded, receipts checked) and the safetensors it came from: same report."""
    bs = tmp_path / "model.bs"
    bigsmall.compress(defects, bs)
    a, b = xray(defects), xray(bs)
    assert b["kind"] == "bs"
    assert a["findings"] == b["findings"]
    assert a["tensor_stats"] == b["tensor_stats"]


def test_trained_corpus_models(minilm_fp32: Path, whisper_fp16: Path) -> None:
    """Real trained weights: no NaN, no untrained warning on any trained matrix. MiniLM's
    pooler (unused by sentence-transformers, which pools by mean) is still at its
    initialisation in this checkpoint: i.i.d. normal with a zero bias, and it is flagged."""
    r = xray(minilm_fp32)
    assert r["counts"]["error"] == 0
    untrained = [f["tensors"][0] for f in r["findings"] if f["code"] == "untrained"]
    assert untrained == ["pooler.dense.weight"]
    w = xray(whisper_fp16)
    assert w["counts"]["error"] == 0
    assert not [f for f in w["findings"] if f["code"] in ("untrained", "all_zero", "nan")]


def test_cli(defects: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["xray", str(defects), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"]["error"] == 2 and len(doc["tensor_stats"]) == 11
    assert main(["xray", str(defects), "--strict", "--findings-only"]) == 3
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].lstrip().startswith("ERROR") and "dtype" not in out
    assert main(["xray", str(defects.parent / "missing.safetensors")]) == 1
    assert "error:" in capsys.readouterr().err


def test_subnormals_and_zeros_are_counted() -> None:
    """Subnormals come from the exponent histogram (exponent 0, value not zero)."""
    x = np.array([0.0, -0.0, 1e-40, -1e-42, 1.0, np.nan], np.float32)
    a = ts.Accumulator("F32", (6,))
    a.add(np.frombuffer(x.tobytes(), np.uint8))
    st = a.finish()
    assert (st["subnormal"], st["zeros"], st["nan"]) == (2, 2, 1)
    h = np.array([0x0001, 0x8001, 0x0000, 0x3C00, 0x8000], np.uint16)  # fp16
    a = ts.Accumulator("F16", (5,))
    a.add(np.frombuffer(h.tobytes(), np.uint8))
    st = a.finish()
    assert (st["subnormal"], st["zeros"]) == (2, 2)
    f8 = np.array([0x80, 0x01, 0x00], np.uint8)  # e4m3fnuz: 0x80 is NaN, not zero
    a = ts.Accumulator("F8_E4M3FNUZ", (3,))
    a.add(f8)
    st = a.finish()
    assert (st["subnormal"], st["zeros"], st["nan"]) == (1, 1, 1)


def test_shard_folder(defects: Path, tmp_path: Path) -> None:
    from bigsmall.io.reshard import reshard

    bigsmall.compress(defects, tmp_path / "m.bs")
    reshard(tmp_path / "m.bs", tmp_path / "shards", max_shard_size="100KB")
    assert xray(tmp_path / "shards")["findings"] == xray(defects)["findings"]


def test_every_dtype(small_model: Path, tmp_path: Path) -> None:
    """bf16, fp16, fp32, fp8, bool, int64, a 0-d scalar, an empty tensor, a tied pair: no
    crash, the same report from the .bs, element counts right."""
    r = xray(small_model)
    st = {s["name"]: s for s in r["tensor_stats"]}
    assert st["empty"]["numel"] == 0 and st["scalar"]["numel"] == 1 and st["scalar"]["max"] == 3.5
    assert st["model.layers.1.idx"]["max"] == 9 and st["fp8"]["numel"] == 40
    assert {"embed.weight", "lm_head.weight"} in [set(f["tensors"]) for f in r["findings"]
                                                   if f["code"] == "tied"]
    bigsmall.compress(small_model, tmp_path / "m.bs")
    assert xray(tmp_path / "m.bs")["tensor_stats"] == r["tensor_stats"]


def test_a_corrupt_container_is_an_integrity_error(defects: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from bigsmall.errors import IntegrityError

    bs = tmp_path / "m.bs"
    bigsmall.compress(defects, bs)
    with bigsmall.open(bs) as f:
        t = f.entry("model.layers.0.mlp.up_proj.weight")
        at = t.offset + t.length // 2
    data = bytearray(bs.read_bytes())
    data[at] ^= 0x10
    bad = tmp_path / "bad.bs"
    bad.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        xray(bad)
    assert main(["xray", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
