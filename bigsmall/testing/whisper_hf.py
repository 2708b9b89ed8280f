"""Whisper from its CTranslate2 file to transformers: the names and the config.

Why: the executor's and loaders' tests need a runnable ``WhisperForConditionalGeneration``
folder, and the only Whisper weights we have are CTranslate2 files (``ct2.py``). The mapping is
exact or it raises; ``corpus.whisper_tiny_hf_dir`` writes and caches the folder (bump
``corpus._CACHE_VERSION`` when the mapping changes).
"""

from __future__ import annotations

import numpy as np

from .ct2 import Ct2Checkpoint

#: Whisper tiny.en's architecture in transformers terms (openai/whisper-tiny.en's config).
WHISPER_TINY_EN_CONFIG: dict[str, object] = {
    "architectures": ["WhisperForConditionalGeneration"], "model_type": "whisper",
    "vocab_size": 51864, "num_mel_bins": 80, "d_model": 384,
    "encoder_layers": 4, "encoder_attention_heads": 6, "encoder_ffn_dim": 1536,
    "decoder_layers": 4, "decoder_attention_heads": 6, "decoder_ffn_dim": 1536,
    "max_source_positions": 1500, "max_target_positions": 448,
    "activation_function": "gelu", "scale_embedding": False, "tie_word_embeddings": True,
    "bos_token_id": 50257, "eos_token_id": 50256, "pad_token_id": 50256,
    "decoder_start_token_id": 50257, "torch_dtype": "float16",
}


def whisper_ct2_to_hf(ckpt: Ct2Checkpoint) -> dict[str, np.ndarray]:
    """CTranslate2 Whisper names -> transformers' ``WhisperForConditionalGeneration`` names.

    CTranslate2 fuses q|k|v (self-attention) and k|v (cross-attention) into one matrix; they are
    split back. transformers' ``k_proj`` has no bias: the fused bias's k part must be zero (the
    converter wrote zeros there), else the mapping would not be exact and this raises.
    """
    v = {k.replace("/", "."): a for k, a in ckpt.variables.items()}
    d = int(v["encoder.conv1.bias"].shape[0])
    out: dict[str, np.ndarray] = {}

    def put(name: str, array: np.ndarray) -> None:
        out[name] = np.ascontiguousarray(array)

    def split_bias_free_k(prefix: str, src: str, parts: list[str]) -> None:
        w, b = v[f"{src}.weight"], v[f"{src}.bias"]
        for j, part in enumerate(parts):
            put(f"{prefix}.{part}.weight", w[j * d:(j + 1) * d])
            if part == "k_proj":
                if np.any(b[j * d:(j + 1) * d] != 0):
                    raise ValueError(f"{src}: non-zero key bias; cannot map to transformers")
            else:
                put(f"{prefix}.{part}.bias", b[j * d:(j + 1) * d])

    def norm(dst: str, src: str) -> None:
        put(f"{dst}.weight", v[f"{src}.gamma"])
        put(f"{dst}.bias", v[f"{src}.beta"])

    def linear(dst: str, src: str) -> None:
        put(f"{dst}.weight", v[f"{src}.weight"])
        put(f"{dst}.bias", v[f"{src}.bias"])

    for side in ("encoder", "decoder"):
        blocks = {k.split(".")[1][len("layer_"):] for k in v if k.startswith(f"{side}.layer_")}
        layers = sorted(int(b) for b in blocks if b.isdigit())
        for i in layers:
            s, t = f"{side}.layer_{i}", f"model.{side}.layers.{i}"
            norm(f"{t}.self_attn_layer_norm", f"{s}.self_attention.layer_norm")
            split_bias_free_k(f"{t}.self_attn", f"{s}.self_attention.linear_0",
                              ["q_proj", "k_proj", "v_proj"])
            linear(f"{t}.self_attn.out_proj", f"{s}.self_attention.linear_1")
            if side == "decoder":
                norm(f"{t}.encoder_attn_layer_norm", f"{s}.attention.layer_norm")
                linear(f"{t}.encoder_attn.q_proj", f"{s}.attention.linear_0")
                kv_w, kv_b = v[f"{s}.attention.linear_1.weight"], v[f"{s}.attention.linear_1.bias"]
                if np.any(kv_b[:d] != 0):
                    raise ValueError(f"{s}.attention.linear_1: non-zero key bias")
                put(f"{t}.encoder_attn.k_proj.weight", kv_w[:d])
                put(f"{t}.encoder_attn.v_proj.weight", kv_w[d:])
                put(f"{t}.encoder_attn.v_proj.bias", kv_b[d:])
                linear(f"{t}.encoder_attn.out_proj", f"{s}.attention.linear_2")
            norm(f"{t}.final_layer_norm", f"{s}.ffn.layer_norm")
            linear(f"{t}.fc1", f"{s}.ffn.linear_0")
            linear(f"{t}.fc2", f"{s}.ffn.linear_1")
        norm(f"model.{side}.layer_norm", f"{side}.layer_norm")
        put(f"model.{side}.embed_positions.weight", v[f"{side}.position_encodings.encodings"])
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder.{conv}")
    put("model.decoder.embed_tokens.weight", v["decoder.embeddings.weight"])
    return out  # proj_out.weight is tied to embed_tokens (config.tie_word_embeddings)
