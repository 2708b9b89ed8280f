"""``bigsmall scan``: the predicted ratio within 0.5 points of what ``compress`` (default
level) makes of each corpus model; unusual storage is noted; nothing is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.cli import main
from bigsmall.io.scan import scan, tensor_class
from bigsmall.testing import corpus
from bigsmall.testing.synthetic import write_safetensors

MODELS = {
    "minilm-fp32": corpus.minilm_safetensors,
    "minilm-bf16": corpus.minilm_bf16,
    "whisper-tiny-fp16": corpus.whisper_tiny_safetensors,
    "minilm-fp8": corpus.minilm_fp8,
    "whisper-base-fp16": corpus.whisper_base_safetensors,  # 145 MB; its packages are optional
}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_prediction_within_half_a_point(model: str, tmp_path: Path) -> None:
    try:
        src = MODELS[model]()
    except corpus.CorpusUnavailable as exc:  # reported as a skip, never as a pass
        pytest.skip(str(exc))
    before = sorted(os.listdir(src.parent))
    r = scan(src)
    assert sorted(os.listdir(src.parent)) == before  # nothing written beside the input
    real = bigsmall.compress(src, tmp_path / "m.bs").ratio
    assert abs(r["predicted_ratio"] - real) * 100 <= 0.5, (r["predicted_ratio"], real)
    # the per-class rows add up to the prediction (less the index allowance)
    parts = sum(b["predicted_bytes"] for b in r["by_class"])
    assert 0 < r["predicted_bytes"] - parts < 0.01 * r["original_bytes"]
    assert sum(b["original_bytes"] for b in r["by_class"]) <= r["original_bytes"]
    assert r["sampled_bytes"] < 0.2 * r["original_bytes"]


def test_unusual_storage_is_noted(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    w = (rng.standard_t(5, (512, 256)) * 0.02).astype(np.float32)
    bf16_in_fp32 = (w.view(np.uint32) & 0xFFFF0000).view(np.float32)
    fp16_rows = w.copy()
    fp16_rows[::2] = fp16_rows[::2].astype(np.float16).astype(np.float32)  # half the rows
    t = {
        "model.layers.0.mlp.up_proj.weight": ("F32", (512, 256), bf16_in_fp32.tobytes()),
        "model.layers.0.mlp.down_proj.weight": ("F32", (512, 256), fp16_rows.tobytes()),
        "model.layers.0.self_attn.q_proj.weight": ("F32", (512, 256), w.tobytes()),
        "model.layers.1.self_attn.q_proj.weight": ("F32", (512, 256), w.tobytes()),
    }
    src = write_safetensors(tmp_path / "m.safetensors", t)
    r = scan(src)
    notes = {(n["code"], n["tensors"][-1]) for n in r["unusual"]}
    assert ("bf16_in_fp32", "model.layers.0.mlp.up_proj.weight") in notes
    assert ("fp16_exact_rows", "model.layers.0.mlp.down_proj.weight") in notes
    assert ("duplicate", "model.layers.1.self_attn.q_proj.weight") in notes
    assert not any(n[1] == "model.layers.0.self_attn.q_proj.weight" for n in notes)
    rows = {p["name"]: p for p in r["tensor_predictions"]}
    assert rows["model.layers.1.self_attn.q_proj.weight"]["predicted_bytes"] == 0
    # bf16 padding is predicted away: under 55 % of its fp32 bytes
    assert rows["model.layers.0.mlp.up_proj.weight"]["predicted_bytes"] < 0.55 * 512 * 256 * 4
    real = bigsmall.compress(src, tmp_path / "m.bs").ratio
    assert abs(r["predicted_ratio"] - real) * 100 <= 1.0, (r["predicted_ratio"], real)


def test_classes() -> None:
    assert tensor_class("model.embed_tokens.weight") == "embedding"
    assert tensor_class("model.layers.3.self_attn.q_proj.weight") == "attention"
    assert tensor_class("model.layers.3.mlp.gate_proj.weight") == "mlp"
    assert tensor_class("model.layers.3.input_layernorm.weight") == "norm"
    assert tensor_class("encoder.layer.0.attention.self.query.bias") == "bias"


def test_cli(capsys: pytest.CaptureFixture[str]) -> None:
    src = corpus.minilm_bf16()
    assert main(["scan", str(src), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert 0.5 < doc["predicted_ratio"] < 0.8 and doc["by_class"]
    assert main(["scan", str(src)]) == 0
    out = capsys.readouterr().out
    assert "predicted" in out and "BF16" in out
    with pytest.raises(SystemExit) as usage:
        main(["scan", str(src), "--rows", "0"])
    assert usage.value.code == 2


def test_a_container_is_refused(small_model: Path, tmp_path: Path) -> None:
    from bigsmall.errors import InvalidSafetensorsError

    bigsmall.compress(small_model, tmp_path / "m.bs")
    with pytest.raises(InvalidSafetensorsError, match="bigsmall stat"):
        scan(tmp_path / "m.bs")
