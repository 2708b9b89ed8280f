"""Base / fine-tune pairs made the way fine-tunes are made, for the delta codec's tests and
benchmark.

Why build them: no package on the index ships a real fine-tune next to its base, and a delta
codec lives on the statistics of real updates (which rows an optimizer touched, by how many
units in the last place, in which direction). Random perturbations have none of that. So this
module runs a short, seeded AdamW fine-tune of all-MiniLM-L6-v2 (``corpus.py``) on CPU with a
sentence-similarity objective (cosine of mean-pooled embeddings against a similarity label,
``sentence-transformers``' ``CosineSimilarityLoss``) on a small text set written here:

- ``bf16``: the bf16 cast of MiniLM is the base; training keeps an fp32 master copy (initialised
  from the bf16 values), the model computes with the master cast to bf16 after every step, and
  the saved fine-tune is that cast: the mixed-precision recipe of real bf16 releases.
- ``fp32``: the same on the original fp32 weights (no cast).

The forward pass is a plain BERT written against the checkpoint's names (no ``transformers``:
it is heavy and not needed for 40 lines of attention). Dropout is off and torch runs on one
thread, so a pair is a function of (steps, lr, seed) and the torch version. Results are cached
under ``default_cache_dir()/finetune`` keyed by those; ``torch`` is required.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from .convert import atomic_write
from .corpus import default_cache_dir, minilm_bf16, minilm_dir, minilm_safetensors
from .sources import CorpusUnavailable

#: bump when the recipe changes: every cached pair is rebuilt
_RECIPE = 1

_SUBJECTS = ["the cat", "a dog", "my neighbour", "the old man", "a child", "the teacher",
             "our team", "the pilot", "a musician", "the farmer", "the doctor", "a student"]
_VERBS = ["reads", "paints", "repairs", "watches", "sells", "cooks", "carries", "finds",
          "cleans", "builds", "opens", "describes"]
_OBJECTS = ["a book", "the fence", "an old car", "the evening news", "fresh bread", "a small boat",
            "the garden", "a letter", "the kitchen", "a wooden chair", "the map", "a red kite"]
_PLACES = ["in the park", "at home", "near the river", "before dinner", "after work",
           "on sunday", "in the city", "by the sea"]
_SYNONYM = {"reads": "is reading", "paints": "is painting", "repairs": "fixes",
            "watches": "looks at", "sells": "is selling", "cooks": "prepares",
            "carries": "is carrying", "finds": "discovers", "cleans": "washes",
            "builds": "makes", "opens": "unlocks", "describes": "explains"}


def sentence_pairs(n: int, seed: int) -> list[tuple[str, str, float]]:
    """``n`` (sentence, sentence, similarity in [0, 1]) triples from a seeded grammar: a
    paraphrase (1.0), the same subject and verb with another object (0.6), another subject
    doing the same (0.4), or an unrelated sentence (0.0)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s, v, o, p = (rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS),
                      rng.choice(_PLACES))
        a = f"{s} {v} {o} {p}"
        kind = rng.randrange(4)
        if kind == 0:
            b, y = f"{p}, {s} {_SYNONYM[v]} {o}", 1.0
        elif kind == 1:
            b, y = f"{s} {v} {rng.choice(_OBJECTS)} {p}", 0.6
        elif kind == 2:
            b, y = f"{rng.choice(_SUBJECTS)} {v} {o} {rng.choice(_PLACES)}", 0.4
        else:
            b, y = (f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
                    f"{rng.choice(_PLACES)}", 0.0)
        out.append((a, b, y))
    return out


def _bert(w: dict[str, Any], ids: Any, mask: Any) -> Any:
    """BERT encoder (MiniLM: 6 layers, 12 heads, GELU, post-LayerNorm), mean-pooled."""
    import torch
    import torch.nn.functional as F

    cfg = json.loads((minilm_dir() / "config.json").read_text())
    heads, eps = int(cfg["num_attention_heads"]), float(cfg["layer_norm_eps"])
    b, t = ids.shape
    pos = torch.arange(t)
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = F.layer_norm(x, x.shape[-1:], w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    bias = (1.0 - mask[:, None, None, :].float()) * -1e4
    d = x.shape[-1]
    for i in range(int(cfg["num_hidden_layers"])):
        p = f"encoder.layer.{i}."

        def lin(x: Any, name: str, p: str = p) -> Any:
            return F.linear(x, w[p + name + ".weight"], w[p + name + ".bias"])

        def split(y: Any) -> Any:
            return y.view(b, t, heads, d // heads).transpose(1, 2)

        q, k, v = (split(lin(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads) + bias, dim=-1)
        ctx = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = F.layer_norm(x + lin(ctx, "attention.output.dense"), (d,),
                         w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        h = F.gelu(lin(x, "intermediate.dense"))
        x = F.layer_norm(x + lin(h, "output.dense"), (d,), w[p + "output.LayerNorm.weight"],
                         w[p + "output.LayerNorm.bias"], eps)
    m = mask[:, :, None].float()
    return (x * m).sum(1) / m.sum(1)


def _master_step(loss: Any, master: dict[str, Any], work: dict[str, Any], opt: Any,
                 low: Any) -> None:
    """One step the way mixed-precision fine-tunes are made: the gradients of the working copy
    (the weights the forward used) drive AdamW on the fp32 master copy, which is then cast back
    into the working copy (through ``low``, the checkpoint's dtype; None: fp32, no cast). Why
    the detour: it is what makes a real fine-tune's small, 1-2 ulp changes in bf16/fp16."""
    import torch

    for v in work.values():
        v.grad = None
    loss.backward()
    for k, v in master.items():
        v.grad = work[k].grad
    opt.step()
    with torch.no_grad():
        for k, v in master.items():
            work[k].copy_(v.to(low).float() if low is not None else v)


def finetune_minilm(dst: Path, dtype: str = "bf16", steps: int = 300, lr: float = 2e-5,
                    seed: int = 0, batch: int = 16) -> Path:
    """Fine-tune MiniLM (``dtype`` "bf16" or "fp32") for ``steps`` AdamW steps and write the
    result to ``dst`` (safetensors, same names, order and dtypes as the base)."""
    try:
        import torch
        from safetensors.torch import load_file, save_file
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CorpusUnavailable(f"fine-tune pairs need torch and tokenizers ({exc})") from exc
    if dtype not in ("bf16", "fp32"):
        raise ValueError(f"dtype must be bf16 or fp32, not {dtype!r}")
    base = base_path(dtype)
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tensors = load_file(str(base))
        master = {k: v.float().clone().requires_grad_(True)
                  for k, v in tensors.items() if v.is_floating_point()}
        work = {k: (v.detach().to(torch.bfloat16).float() if dtype == "bf16" else v.detach().clone())
                .requires_grad_(True) for k, v in master.items()}
        opt = torch.optim.AdamW(list(master.values()), lr=lr, weight_decay=0.01)
        tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        tok.enable_truncation(max_length=32)
        data = sentence_pairs(max(steps * batch // 4, batch), seed)
        rng = random.Random(seed + 1)
        for _ in range(steps):
            rows = rng.sample(data, batch)
            enc = tok.encode_batch([r[0] for r in rows] + [r[1] for r in rows])
            ids = torch.tensor([e.ids for e in enc])
            mask = torch.tensor([e.attention_mask for e in enc])
            emb = _bert(work, ids, mask)
            cos = torch.nn.functional.cosine_similarity(emb[:batch], emb[batch:])
            loss = torch.nn.functional.mse_loss(cos, torch.tensor([r[2] for r in rows]))
            _master_step(loss, master, work, opt, torch.bfloat16 if dtype == "bf16" else None)
        out = {}
        for k, v in tensors.items():
            if k in master:
                out[k] = master[k].detach().to(v.dtype).contiguous()
            else:
                out[k] = v
    finally:
        torch.set_num_threads(threads)

    def write(tmp: Path) -> None:
        save_file(out, str(tmp), metadata={"format": "pt"})

    return atomic_write(Path(dst), write)


def _whisper_decoder(w: dict[str, Any], ids: Any, enc: Any, heads: int = 6) -> Any:
    """Whisper's text decoder (pre-norm; CTranslate2 names: fused self-attention q|k|v, cross
    attention q and fused k|v), logits through the tied embedding."""
    import torch
    import torch.nn.functional as F

    b, t = ids.shape
    x = w["decoder.embeddings.weight"][ids] + w["decoder.position_encodings.encodings"][:t]
    d = x.shape[-1]
    causal = torch.full((t, t), float("-inf")).triu(1)

    def attn(q: Any, k: Any, v: Any, mask: Any = None) -> Any:
        def split(y: Any) -> Any:
            return y.view(b, -1, heads, d // heads).transpose(1, 2)
        a = split(q) @ split(k).transpose(-1, -2) / math.sqrt(d // heads)
        if mask is not None:
            a = a + mask
        return (torch.softmax(a, dim=-1) @ split(v)).transpose(1, 2).reshape(b, -1, d)

    def ln(y: Any, name: str) -> Any:
        return F.layer_norm(y, (d,), w[name + ".gamma"], w[name + ".beta"])

    def lin(y: Any, name: str) -> Any:
        return F.linear(y, w[name + ".weight"], w[name + ".bias"] if name + ".bias" in w else None)

    i = 0
    while f"decoder.layer_{i}.ffn.linear_0.weight" in w:
        p = f"decoder.layer_{i}."
        q, k, v = lin(ln(x, p + "self_attention.layer_norm"), p + "self_attention.linear_0").chunk(3, -1)
        x = x + lin(attn(q, k, v, causal), p + "self_attention.linear_1")
        k, v = lin(enc, p + "attention.linear_1").chunk(2, -1)
        x = x + lin(attn(lin(ln(x, p + "attention.layer_norm"), p + "attention.linear_0"), k, v),
                    p + "attention.linear_2")
        x = x + lin(F.gelu(lin(ln(x, p + "ffn.layer_norm"), p + "ffn.linear_0")), p + "ffn.linear_1")
        i += 1
    return ln(x, "decoder.layer_norm") @ w["decoder.embeddings.weight"].T


def finetune_whisper_decoder(dst: Path, steps: int = 40, lr: float = 2e-5, seed: int = 0,
                             batch: int = 8) -> Path:
    """Whisper tiny.en fp16 with only its decoder fine-tuned (next-token loss on the sentences
    of ``sentence_pairs``, cross-attending to fixed seeded stand-ins for the frozen encoder's
    output), fp32 master weights cast to fp16 after every step. The encoder's tensors stay
    bit-identical: a patch must store nothing for them."""
    try:
        import torch
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CorpusUnavailable(f"fine-tune pairs need torch and tokenizers ({exc})") from exc
    from .corpus import whisper_tiny_safetensors
    from .sources import whisper_tiny_ct2

    base = whisper_tiny_safetensors()
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tensors = load_file(str(base))
        with safe_open(str(base), framework="pt") as fh:
            metadata = fh.metadata()
        train = [k for k, v in tensors.items() if k.startswith("decoder.") and v.is_floating_point()
                 and not k.startswith("decoder.position_encodings")]
        master = {k: tensors[k].float().clone().requires_grad_(True) for k in train}
        frozen = {k: v.float() for k, v in tensors.items() if v.is_floating_point() and k not in master}
        work = {k: v.detach().to(torch.float16).float().requires_grad_(True) for k, v in master.items()}
        opt = torch.optim.AdamW(list(master.values()), lr=lr, weight_decay=0.01)
        tok = Tokenizer.from_file(str(whisper_tiny_ct2().parent / "tokenizer.json"))
        data = [a for a, _b, _y in sentence_pairs(max(steps * batch // 2, batch), seed)]
        rng = random.Random(seed + 1)
        gen = torch.Generator().manual_seed(seed)
        enc = torch.randn(batch, 32, 384, generator=gen)
        for _ in range(steps):
            ids = [tok.encode(s).ids[:24] for s in rng.sample(data, batch)]
            n = min(len(x) for x in ids)
            t = torch.tensor([x[:n] for x in ids])
            logits = _whisper_decoder({**frozen, **work}, t[:, :-1], enc)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), t[:, 1:].reshape(-1))
            _master_step(loss, master, work, opt, torch.float16)
        out = {k: (master[k].detach().to(v.dtype).contiguous() if k in master else v)
               for k, v in tensors.items()}
    finally:
        torch.set_num_threads(threads)

    def write(tmp: Path) -> None:
        save_file(out, str(tmp), metadata=metadata)

    return atomic_write(Path(dst), write)


def whisper_pair(steps: int = 40, lr: float = 2e-5, seed: int = 0,
                 cache_dir: Path | None = None) -> tuple[Path, Path]:
    """(Whisper tiny.en fp16, its decoder-only fine-tune), cached like ``finetune_pair``."""
    from .corpus import whisper_tiny_safetensors

    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "finetune"
    out = directory / f"whisper-tiny-decoder-s{steps}-lr{lr:g}-seed{seed}-r{_RECIPE}.safetensors"
    if not out.is_file():
        finetune_whisper_decoder(out, steps, lr, seed)
    return whisper_tiny_safetensors(), out


def base_path(dtype: str) -> Path:
    """The base of a pair: MiniLM bf16 (``corpus.minilm_bf16``) or fp32 (the package's file)."""
    return minilm_bf16() if dtype == "bf16" else minilm_safetensors()


def finetune_pair(dtype: str = "bf16", steps: int = 60, lr: float = 2e-5, seed: int = 0,
                  cache_dir: Path | None = None) -> tuple[Path, Path]:
    """(base, fine-tune) of MiniLM in ``dtype``, the fine-tune cached under
    ``cache_dir`` (default ``default_cache_dir()/finetune``) by its recipe, so that tests
    build it once per machine (60 steps: ~20-40 s on one core; the benchmark uses 300)."""
    base = base_path(dtype)
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "finetune"
    name = f"minilm-{dtype}-s{steps}-lr{lr:g}-seed{seed}-r{_RECIPE}.safetensors"
    out = directory / name
    if not out.is_file():
        finetune_minilm(out, dtype, steps, lr, seed)
    return base, out
