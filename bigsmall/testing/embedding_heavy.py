"""A generated model whose token embedding dominates: the case where streaming must still keep
its memory promise.

Why: multilingual encoders and small LLMs with 150-260k vocabularies carry most of their weights
in one table (a 262144 x 768 bf16 embedding is 400 MB, two thirds of a 300M-parameter model).
Streaming keeps every non-layer tensor resident, and decoding that one table used to keep its
264 MB compressed blob resident too, past the promise. Random weights are enough for a memory
test (they compress worse than trained ones, so the blob is if anything larger); the tokenizer
is MiniLM's (its ids are all below the vocabulary size).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .sources import minilm_dir
from .synthetic import write_safetensors

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def embedding_heavy_folder(dst: Path, layers: int = 24, vocab: int = 262144, hidden: int = 768,
                           intermediate: int = 1024, seed: int = 0) -> Path:
    """A BERT-shaped transformers folder (bf16 weights, config, tokenizer) in ``dst``."""
    import torch
    import transformers

    dst.mkdir(parents=True, exist_ok=True)
    cfg = transformers.BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=max(1, hidden // 64),
                                  intermediate_size=intermediate, max_position_embeddings=512)
    cfg.architectures = ["BertModel"]
    cfg.save_pretrained(dst)
    for name in TOKENIZER_FILES:
        shutil.copyfile(minilm_dir() / name, dst / name)
    with torch.device("meta"):  # shapes and names only
        skeleton = transformers.BertModel(cfg)
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, p in skeleton.state_dict().items():
        if name.endswith("position_ids"):
            continue
        x = rng.standard_normal(tuple(p.shape), dtype=np.float32) * np.float32(0.02)
        bf16 = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation: any bf16 pattern will do
        tensors[name] = ("BF16", tuple(p.shape), bf16.tobytes())
    write_safetensors(dst / "model.safetensors", tensors)
    return dst
