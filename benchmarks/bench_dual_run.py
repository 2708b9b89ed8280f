"""``bigsmall run`` of a ``.bsd`` folder: how good the fast members' model is, and what it costs.

    .venv/bin/python benchmarks/bench_dual_run.py [--models minilm-fp32,minilm-bf16,whisper-tiny-fp16]
                                                   [--repeat 3] [--no-cli] [--json]

For each corpus model folder, written by ``bigsmall dual FOLDER`` (and by ``compress`` for the
comparison) into a temporary directory:

* quality of the fast model (``torch.dual_run.dual_model``, plan ``fast``, announced) against the
  exact one (plan ``perfect``, the exact members): MiniLM, cosine of the mean-pooled embeddings of
  ``bench_autopilot.SENTENCES`` (the sentence-transformers pipeline's Pooling + Normalize does not
  change a cosine); Whisper tiny, a generated 2 s tone with the exact model's greedy transcript as
  decoder input (cosine of the logits and top-1 agreement per position), and whether the fast
  model's own greedy transcript is the exact one's; the weight error (RMS of fast - exact over
  RMS of exact, over every quantized weight; ``run`` cannot say it without reading the exact
  members);
* bytes read by the fast load (must be the fast members) against the folder's, and load times
  (median of ``--repeat``, fast and exact interleaved);
* unless ``--no-cli``: ``bigsmall run X.bsd --mode fast|perfect --json`` and the same on the
  ``.bs`` in subprocesses: the outputs' sha256 (``.bsd`` perfect must equal ``.bs`` perfect; fast
  equals the ``.bs``'s on-the-fly fast mode when the stored code is the computed one), and the
  announcement being stderr's first line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from bench_autopilot import SENTENCES, embed

import bigsmall
from bigsmall.io import dual_folder
from bigsmall.plan import autopilot as ap
from bigsmall.testing import corpus
from bigsmall.torch.dual_run import dual_model

MODELS = ("minilm-fp32", "minilm-bf16", "whisper-tiny-fp16")


def _folder(name: str) -> Path:
    cache = corpus.default_cache_dir()
    return {"minilm-fp32": corpus.minilm_dir, "minilm-bf16": lambda: corpus.minilm_bf16_dir(cache),
            "whisper-tiny-fp16": lambda: corpus.whisper_tiny_hf_dir(cache)}[name]()


def _models(src: Path, cls: Any, repeat: int) -> tuple[Any, Any, dict[str, Any], float, float]:
    """(exact model, fast model, fast info, exact load s, fast load s): medians, interleaved."""
    s = dual_folder.DualFolder(src).summary()
    roomy = ap.Profile(1, 1 << 40, 1 << 40)
    perfect, fast = ap.plan(s, roomy, "perfect"), ap.plan(s, roomy, "fast")
    te, tf = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        exact, _ = dual_model(src, perfect, ap.announce(perfect, lambda _line: None), model_class=cls)
        te.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fm, info = dual_model(src, fast, ap.announce(fast, lambda _line: None), model_class=cls)
        tf.append(time.perf_counter() - t0)
    return exact, fm, info["fast"], sorted(te)[len(te) // 2], sorted(tf)[len(tf) // 2]


def _weight_error(src: Path) -> float:
    exact, fast = bigsmall.load(src), bigsmall.load(src, mode="fast")
    err = ref = 0.0
    for k, t in exact.items():
        if t.is_floating_point() and not torch.equal(t, fast[k]):
            x = t.double()
            err += float(((fast[k].double() - x) ** 2).sum())
            ref += float((x * x).sum())
    return (err / ref) ** 0.5 if ref else 0.0


def minilm(src: Path, repeat: int) -> dict[str, Any]:
    from transformers import AutoTokenizer

    exact, fast, info, t_exact, t_fast = _models(src, None, repeat)
    tok = AutoTokenizer.from_pretrained(str(corpus.minilm_dir()))
    enc = tok(SENTENCES, return_tensors="pt", padding=True)
    cos = torch.nn.functional.cosine_similarity(embed(exact, enc), embed(fast, enc))
    return {"cosine_min": round(float(cos.min()), 4), "cosine_mean": round(float(cos.mean()), 4),
            **_common(info, t_exact, t_fast)}


def whisper(src: Path, repeat: int) -> dict[str, Any]:
    import transformers
    from transformers import WhisperFeatureExtractor

    from bigsmall.torch.runner import SAMPLE_RATE, tone

    exact, fast, info, t_exact, t_fast = _models(src, transformers.WhisperForConditionalGeneration, repeat)
    fe = WhisperFeatureExtractor(feature_size=exact.config.num_mel_bins)
    feats = fe(tone(), sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features.to(torch.float16)
    with torch.no_grad():
        ids = exact.generate(feats, max_new_tokens=24)
        ids_fast = fast.generate(feats, max_new_tokens=24)
        a = exact(input_features=feats, decoder_input_ids=ids).logits.float()
        b = fast(input_features=feats, decoder_input_ids=ids).logits.float()
    cos = torch.nn.functional.cosine_similarity(a[0], b[0], dim=-1)
    agree = (a[0].argmax(-1) == b[0].argmax(-1)).float().mean()
    return {"logits_cosine_min": round(float(cos.min()), 4), "logits_cosine_mean": round(float(cos.mean()), 4),
            "top1_agreement": round(float(agree), 4), "positions": int(ids.shape[1]),
            "same_transcript_tokens": ids.tolist() == ids_fast.tolist(), **_common(info, t_exact, t_fast)}


def _common(info: dict[str, Any], t_exact: float, t_fast: float) -> dict[str, Any]:
    held = info["int4_bytes"] + info["exact_bytes"]
    return {"weights_bytes": info["original_bytes"], "fast_held_bytes": held,
            "quantized_tensors": info["quantized"], "exact_tensors": info["exact"],
            "fast_bytes_read": info["bytes_read"], "fast_member_bytes": info["fast_member_bytes"],
            "exact_member_bytes": info["exact_member_bytes"],
            "load_exact_s": round(t_exact, 3), "load_fast_s": round(t_fast, 3),
            "fast_load_speedup": round(t_exact / t_fast, 2)}


def _cli(src: Path, mode: str, env: dict[str, str]) -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-m", "bigsmall", "run", str(src), "--mode", mode, "--json"],
                       capture_output=True, text=True, env={**os.environ, **env}, timeout=900)
    if p.returncode:
        raise SystemExit(f"run {src} --mode {mode} failed (exit {p.returncode}): {p.stderr}")
    j = json.loads(p.stdout)
    first = p.stderr.splitlines()[0] if p.stderr else ""
    return {"sha256": j["output"]["sha256"], "announced_first": first == (j["plan"]["announcement"] or j["plan"]["sentence"]),
            "load_s": round(j["load_seconds"], 3), "peak_rss_mb": round(j["peak_rss"] / 1e6),
            "text": j["output"].get("text")}


def cli(bsd: Path, bs: Path, d: Path) -> dict[str, Any]:
    env = {"XDG_CONFIG_HOME": str(d / "cfg")}
    r = {f"{kind}_{mode}": _cli(src, mode, env) for mode in ("fast", "perfect") for kind, src in (("bsd", bsd), ("bs", bs))}
    return {"perfect_bsd_equals_bs": r["bsd_perfect"]["sha256"] == r["bs_perfect"]["sha256"],
            "fast_bsd_equals_bs_fast": r["bsd_fast"]["sha256"] == r["bs_fast"]["sha256"],
            "fast_announced_first": r["bsd_fast"]["announced_first"],
            "run_load_s": {k: v["load_s"] for k, v in r.items()},
            "run_peak_rss_mb": {k: v["peak_rss_mb"] for k, v in r.items()},
            "transcripts": {k: v["text"] for k, v in r.items() if v["text"] is not None} or None}


def main() -> None:
    ap_ = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap_.add_argument("--models", default=",".join(MODELS))
    ap_.add_argument("--repeat", type=int, default=3)
    ap_.add_argument("--no-cli", action="store_true", help="skip the `bigsmall run` subprocesses")
    ap_.add_argument("--json", action="store_true")
    args = ap_.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name in args.models.split(","):
            folder = _folder(name)
            bsd = d / f"{name}.bsd"
            dual_folder.create_folder(folder, bsd)
            fn = whisper if name.startswith("whisper") else minilm
            out[name] = {**fn(bsd, args.repeat), "weight_error_rms": round(_weight_error(bsd), 4)}
            if not args.no_cli:
                bs = d / f"{name}.bs"
                bigsmall.compress(folder, bs)
                out[name]["cli"] = cli(bsd, bs, d)
            if not args.json:
                print(name, json.dumps(out[name]), flush=True)
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
