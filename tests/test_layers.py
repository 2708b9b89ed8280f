"""Transformer block detection from tensor names alone (``bigsmall.core.layers``)."""

from __future__ import annotations

import pytest

from bigsmall.core.layers import assign_layers, layer_key


def bert(n: int) -> list[str]:
    names = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
             "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"]
    for i in range(n):
        p = f"encoder.layer.{i}."
        names += [p + "attention.self.query.weight", p + "attention.output.LayerNorm.weight",
                  p + "intermediate.dense.weight", p + "output.dense.bias"]
    return names + ["pooler.dense.weight", "pooler.dense.bias"]


def whisper_hf(n_enc: int, n_dec: int) -> list[str]:
    names = ["model.encoder.conv1.weight", "model.encoder.embed_positions.weight"]
    for i in range(n_enc):
        p = f"model.encoder.layers.{i}."
        names += [p + "self_attn.k_proj.weight", p + "self_attn_layer_norm.weight", p + "fc1.weight"]
    names += ["model.encoder.layer_norm.weight", "model.decoder.embed_tokens.weight",
              "model.decoder.embed_positions.weight"]
    for i in range(n_dec):
        p = f"model.decoder.layers.{i}."
        names += [p + "self_attn.q_proj.weight", p + "encoder_attn.v_proj.weight", p + "final_layer_norm.bias"]
    return names + ["model.decoder.layer_norm.weight", "proj_out.weight"]


def ct2_whisper(n: int, sep: str = ".") -> list[str]:
    names = [f"encoder{sep}conv1{sep}weight", f"encoder{sep}position_encodings{sep}encodings"]
    for i in range(n):
        p = f"encoder{sep}layer_{i}{sep}"
        names += [p + f"self_attention{sep}linear_0{sep}weight", p + f"ffn{sep}layer_norm{sep}gamma"]
    names += [f"encoder{sep}layer_norm{sep}gamma", f"decoder{sep}embeddings{sep}weight"]
    for i in range(n):
        p = f"decoder{sep}layer_{i}{sep}"
        names += [p + f"attention{sep}linear_1{sep}bias", p + f"ffn{sep}linear_0{sep}weight"]
    return names + [f"decoder{sep}layer_norm{sep}beta"]


def gpt2(n: int) -> list[str]:
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    for i in range(n):
        p = f"transformer.h.{i}."
        names += [p + "ln_1.weight", p + "attn.c_attn.weight", p + "attn.bias", p + "mlp.c_proj.weight"]
    return names + ["transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]


def llama(n: int) -> list[str]:  # Gemma uses the same layout
    names = ["model.embed_tokens.weight"]
    for i in range(n):
        p = f"model.layers.{i}."
        names += [p + "self_attn.q_proj.weight", p + "mlp.gate_proj.weight", p + "input_layernorm.weight",
                  p + "post_attention_layernorm.weight"]
    return names + ["model.norm.weight", "lm_head.weight"]


def gemma(n: int) -> list[str]:
    names = ["model.embed_tokens.weight"]
    for i in range(n):
        p = f"model.layers.{i}."
        names += [p + "self_attn.q_norm.weight", p + "pre_feedforward_layernorm.weight",
                  p + "post_feedforward_layernorm.weight", p + "mlp.down_proj.weight"]
    return names + ["model.norm.weight"]


NON_LAYER = [
    "embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight", "pooler.dense.weight",
    "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "transformer.wte.weight",
    "transformer.ln_f.weight", "model.encoder.layer_norm.weight", "model.decoder.layer_norm.weight",
    "model.encoder.embed_positions.weight", "proj_out.weight", "encoder.layer_norm.gamma",
    "decoder.layer_norm.beta", "decoder.embeddings.weight", "encoder.conv1.weight", "scalar", "",
    "model.layers", "model.layers.x.weight", "layer_norm.weight", "final_layernorm.weight",
    "model.hidden.0.weight", "encoder.layerx.0.weight",
]


@pytest.mark.parametrize("name", NON_LAYER)
def test_non_layer_names(name: str) -> None:
    assert layer_key(name) is None


@pytest.mark.parametrize(("name", "key"), [
    ("encoder.layer.3.attention.self.query.weight", ("encoder.layer", 3)),
    ("model.encoder.layers.2.fc1.weight", ("model.encoder.layers", 2)),
    ("model.decoder.layers.11.self_attn.q_proj.weight", ("model.decoder.layers", 11)),
    ("encoder.layer_4.ffn.linear_0.weight", ("encoder.layer", 4)),
    ("decoder/layer_1/attention/linear_1/bias", ("decoder.layer", 1)),
    ("transformer.h.7.attn.c_attn.weight", ("transformer.h", 7)),
    ("model.layers.17.mlp.gate_proj.weight", ("model.layers", 17)),
    ("blocks.2.attn.qkv.weight", ("blocks", 2)),
    ("encoder.block.0.layer.1.DenseReluDense.wi.weight", ("encoder.block", 0)),  # outer block wins
])
def test_layer_key(name: str, key: tuple[str, int]) -> None:
    assert layer_key(name) == key


def check_single_stack(names: list[str], stack: str, n: int, per_layer: int) -> None:
    layer_of, keys = assign_layers(names)
    assert keys == [(stack, i) for i in range(n)]
    for name in names:
        if name in layer_of:
            assert name.startswith(f"{stack}.{layer_of[name]}.")
    assert sorted(layer_of.values()) == sorted(i for i in range(n) for _ in range(per_layer))
    assert all(layer_key(x) is None for x in names if x not in layer_of)


def test_bert() -> None:
    names = bert(12)
    check_single_stack(names, "encoder.layer", 12, 4)
    assert len(names) - len(assign_layers(names)[0]) == 6


def test_gpt2() -> None:
    names = gpt2(12)
    check_single_stack(names, "transformer.h", 12, 4)
    assert {n for n in names if layer_key(n) is None} == {
        "transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight",
        "transformer.ln_f.bias", "lm_head.weight"}


@pytest.mark.parametrize("make", [llama, gemma])
def test_llama_gemma(make) -> None:  # noqa: ANN001
    names = make(26)
    check_single_stack(names, "model.layers", 26, 4)
    assert {n for n in names if layer_key(n) is None} >= {"model.embed_tokens.weight", "model.norm.weight"}


def test_blocks_numbered_numerically_not_lexically() -> None:
    names = sorted(llama(12))  # "model.layers.10" sorts before "model.layers.2"
    layer_of, keys = assign_layers(names)
    assert keys == [("model.layers", i) for i in range(12)]
    assert layer_of["model.layers.10.mlp.gate_proj.weight"] == 10


def test_whisper_hf_two_stacks_encoder_first() -> None:
    names = whisper_hf(4, 4)
    layer_of, keys = assign_layers(names)
    assert keys == [("model.encoder.layers", i) for i in range(4)] + [("model.decoder.layers", i) for i in range(4)]
    assert layer_of["model.encoder.layers.3.fc1.weight"] == 3
    assert layer_of["model.decoder.layers.0.self_attn.q_proj.weight"] == 4
    assert layer_of["model.decoder.layers.3.final_layer_norm.bias"] == 7
    for n in ("model.encoder.layer_norm.weight", "model.decoder.layer_norm.weight", "proj_out.weight",
              "model.decoder.embed_tokens.weight", "model.encoder.conv1.weight"):
        assert n not in layer_of


def test_whisper_hf_sorted_names_encoder_first() -> None:
    """HF writes names sorted ("decoder" before "encoder"); the encoder still runs first."""
    _, keys = assign_layers(sorted(whisper_hf(4, 4)))
    assert keys == [("model.encoder.layers", i) for i in range(4)] + [
        ("model.decoder.layers", i) for i in range(4)]


@pytest.mark.parametrize("sep", [".", "/"])
def test_ct2_whisper(sep: str) -> None:
    names = ct2_whisper(4, sep)
    layer_of, keys = assign_layers(names)
    assert keys == [("encoder.layer", i) for i in range(4)] + [("decoder.layer", i) for i in range(4)]
    assert layer_of[f"encoder{sep}layer_2{sep}ffn{sep}layer_norm{sep}gamma"] == 2
    assert layer_of[f"decoder{sep}layer_0{sep}ffn{sep}linear_0{sep}weight"] == 4
    assert f"encoder{sep}layer_norm{sep}gamma" not in layer_of
    assert f"decoder{sep}layer_norm{sep}beta" not in layer_of


def test_no_layers() -> None:
    assert assign_layers(["a.weight", "b.bias"]) == ({}, [])
