"""A generated model whose token embedding dominates: the case where streaming must still keep
its memory promise.

Why: multilingual encoders and small LLMs with 150-260k vocabularies carry most of their weights
in one table (a 262144 x 768 bf16 embedding is 400 MB, two thirds of a 300M-parameter model).
Streaming keeps every non-layer tensor resident, and decoding that one table used to keep its
264 MB compressed blob resident too, past the promise. Random weights are enough for a memory
test (they compress worse than trained ones, so the blob is if anything larger); the tokenizer
is MiniLM's (its ids are all below the vocabulary size). ``tied_head=True`` makes it a masked LM
whose output projection is the embedding (``BertForMaskedLM``, tied as saved checkpoints are: the
table once), the case where a streamed head must read the table in row blocks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .sources import minilm_dir
from .synthetic import write_safetensors

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def embedding_heavy_folder(dst: Path, layers: int = 24, vocab: int = 262144, hidden: int = 768,
                           intermediate: int = 1024, seed: int = 0, tied_head: bool = False) -> Path:
    """A BERT-shaped transformers folder (bf16 weights, config, tokenizer) in ``dst``; with
    ``tied_head`` a ``BertForMaskedLM`` whose decoder is tied to the token embedding."""
    import torch
    import transformers

    dst.mkdir(parents=True, exist_ok=True)
    cfg = transformers.BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=max(1, hidden // 64),
                                  intermediate_size=intermediate, max_position_embeddings=512)
    cls = transformers.BertForMaskedLM if tied_head else transformers.BertModel
    cfg.architectures = [cls.__name__]
    cfg.save_pretrained(dst)
    for name in TOKENIZER_FILES:
        shutil.copyfile(minilm_dir() / name, dst / name)
    with torch.device("meta"):  # shapes and names only
        skeleton = cls(cfg)
    rng = np.random.default_rng(seed)
    tensors = {}
    # parameters without tied duplicates (the head's weight is the embedding), then buffers
    for name, p in [*skeleton.named_parameters(), *skeleton.named_buffers()]:
        if name.endswith("position_ids") or name.endswith("token_type_ids"):
            continue
        x = rng.standard_normal(tuple(p.shape), dtype=np.float32) * np.float32(0.02)
        bf16 = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation: any bf16 pattern will do
        tensors[name] = ("BF16", tuple(p.shape), bf16.tobytes())
    write_safetensors(dst / "model.safetensors", tensors)
    return dst


def prompt_of_tokens(tokens: int) -> str:
    """A prompt that MiniLM's tokenizer (the generated models') turns into ``tokens`` ids or just
    over, [CLS] and [SEP] included: the issue's "forward of 128 tokens". Numbered words, so most
    ids are distinct."""
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(minilm_dir()))
    words = "streaming keeps its promise on models whose embedding table is most of the weights".split()
    n = 1
    while True:
        prompt = " ".join(words[i % len(words)] + str(i) for i in range(n))
        if len(tok(prompt)["input_ids"]) >= tokens:
            return prompt
        n += 1
