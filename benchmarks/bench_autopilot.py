"""The autopilot's fast mode against the exact model: quality, held bytes, load time.

    .venv/bin/python benchmarks/bench_autopilot.py [--json]

For each corpus model (all-MiniLM-L6-v2 fp32 and bf16, Whisper tiny.en fp16, compressed as
folders into a temporary directory): the exact model (``bigsmall.from_pretrained``) and the fast
mode (``bigsmall.torch.fast.int4_model``, after its plan is announced) side by side.

* MiniLM: cosine similarity of the mean-pooled sentence embeddings of 8 fixed sentences
  (min and mean);
* Whisper: a generated 2 s tone through the encoder and the decoder with the exact model's own
  greedy transcript as decoder input: cosine of the logits and top-1 agreement per position
  (teacher forcing: no generation loop, so the comparison is per token).

Also the bytes each mode holds for its weights and the load times (exact then fast, same process).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import bigsmall
from bigsmall.io.reader import BsFile
from bigsmall.plan import autopilot as ap
from bigsmall.testing import corpus
from bigsmall.torch.fast import int4_model

SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "A man is playing a guitar on stage.",
    "Lossless compression keeps every bit of the original weights.",
    "The cat sat on the mat and looked out of the window.",
    "Quarterly revenue grew by twelve percent.",
    "Wie spät ist es?",
]


def _fast(src: Path) -> tuple[Any, Any, float]:
    with BsFile(src) as bs:
        s = ap.summarize(str(src), bs.container.tensors)
    plan = ap.plan(s, ap.Profile(1, 1 << 40, 1 << 40), "fast")
    receipt = ap.announce(plan, lambda _line: None)
    t0 = time.perf_counter()
    model, stats = int4_model(src, plan, receipt,
                              model_class=None if "whisper" not in src.name else
                              bigsmall_whisper_class())
    return model, stats, time.perf_counter() - t0


def bigsmall_whisper_class() -> Any:
    import transformers

    return transformers.WhisperForConditionalGeneration


def _exact(src: Path, cls: Any = None) -> tuple[Any, float]:
    t0 = time.perf_counter()
    model = bigsmall.from_pretrained(src, model_class=cls)
    return model, time.perf_counter() - t0


def embed(m: Any, enc: Any) -> Any:
    """Mean-pooled last hidden states of the tokenized sentences ``enc`` (also
    ``bench_dual_run.py``'s)."""
    with torch.no_grad():
        h = m(**enc).last_hidden_state.float()
    mask = enc["attention_mask"].unsqueeze(-1).float()
    return (h * mask).sum(1) / mask.sum(1)


def minilm(src: Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(corpus.minilm_dir()))
    enc = tok(SENTENCES, return_tensors="pt", padding=True)
    exact, t_exact = _exact(src)
    fast, stats, t_fast = _fast(src)
    cos = torch.nn.functional.cosine_similarity(embed(exact, enc), embed(fast, enc))
    return {"cosine_min": round(float(cos.min()), 4), "cosine_mean": round(float(cos.mean()), 4),
            **_common(stats, t_exact, t_fast)}


def whisper(src: Path) -> dict[str, Any]:
    from transformers import WhisperFeatureExtractor

    from bigsmall.torch.runner import SAMPLE_RATE, tone

    cls = bigsmall_whisper_class()
    exact, t_exact = _exact(src, cls)
    fast, stats, t_fast = _fast(src)
    fe = WhisperFeatureExtractor(feature_size=exact.config.num_mel_bins)
    feats = fe(tone(), sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features.to(torch.float16)
    with torch.no_grad():
        ids = exact.generate(feats, max_new_tokens=16)
        a = exact(input_features=feats, decoder_input_ids=ids).logits.float()
        b = fast(input_features=feats, decoder_input_ids=ids).logits.float()
    cos = torch.nn.functional.cosine_similarity(a[0], b[0], dim=-1)
    agree = (a[0].argmax(-1) == b[0].argmax(-1)).float().mean()
    return {"logits_cosine_min": round(float(cos.min()), 4), "top1_agreement": round(float(agree), 4),
            "positions": int(ids.shape[1]), **_common(stats, t_exact, t_fast)}


def _common(stats: Any, t_exact: float, t_fast: float) -> dict[str, Any]:
    held = stats.int4_bytes + stats.exact_bytes
    return {"weights_bytes": stats.original_bytes, "fast_held_bytes": held,
            "fast_held_ratio": round(held / stats.original_bytes, 4),
            "quantized_tensors": stats.quantized, "exact_tensors": stats.exact,
            "weight_error_rms": round(stats.weight_error, 4),
            "load_exact_s": round(t_exact, 2), "load_fast_s": round(t_fast, 2)}


def main() -> None:
    ap_ = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap_.add_argument("--json", action="store_true")
    args = ap_.parse_args()
    cache = corpus.default_cache_dir()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        for name, folder, fn in (("minilm-fp32", corpus.minilm_dir(), minilm),
                                 ("minilm-bf16", corpus.minilm_bf16_dir(cache), minilm),
                                 ("whisper-tiny-fp16", corpus.whisper_tiny_hf_dir(cache), whisper)):
            src = Path(d) / f"{name}.bs"
            bigsmall.compress(folder, src)
            out[name] = fn(src)
            if not args.json:
                print(name, out[name], flush=True)
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
