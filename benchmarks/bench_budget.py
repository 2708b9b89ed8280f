"""The streaming budget's target: Whisper tiny's token-by-token decoding, streamed with a budget
that holds the decoder, against the fully loaded model and against streaming without a budget.

Each round (interleaved, so machine noise hits the three alike) builds a fresh model per variant
and times ``generate`` alone (same features, a fixed number of tokens); a budgeted model starts
with an empty cache, so its first decode of every block is inside the timing. Medians of
``--repeat`` rounds; outputs checked equal to the full load's.

Usage: ``python benchmarks/bench_budget.py [--repeat 3] [--tokens 24] [--threads N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch
    import transformers

    import bigsmall
    from bigsmall.testing import corpus

    if args.threads:
        torch.set_num_threads(args.threads)
    cls = transformers.WhisperForConditionalGeneration
    feats = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(0)).to(torch.float16)
    gen = {"min_new_tokens": args.tokens, "max_new_tokens": args.tokens}
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as d:
        src = Path(d) / "whisper-tiny.bs"
        bigsmall.compress(corpus.whisper_tiny_hf_dir(corpus.default_cache_dir()), src)
        with bigsmall.StreamingModel(src, model_class=cls) as sm:
            base = sm.promise_bytes()
            n = sm.loader.layer_count()
            decoder = sum(sm.loader.layer_bytes(i) for i in range(n // 2, n))
        budget = base + decoder  # the two-layer promise + room for the decoder's blocks

        def full() -> tuple[float, Any, dict[str, Any]]:
            model = bigsmall.from_pretrained(src, model_class=cls)
            t0 = time.perf_counter()
            with torch.no_grad():
                out = model.generate(feats, **gen)
            return time.perf_counter() - t0, out, {}

        def streamed(limit: int | None) -> tuple[float, Any, dict[str, Any]]:
            with bigsmall.StreamingModel(src, model_class=cls, max_resident_bytes=limit) as sm:
                t0 = time.perf_counter()
                with torch.no_grad():
                    out = sm.model.generate(feats, **gen)
                dt = time.perf_counter() - t0
                return dt, out, sm.report().as_dict()

        variants = {"full": full, "stream": lambda: streamed(None), "budget": lambda: streamed(budget)}
        for f in variants.values():  # warm-up: kernels, allocator, page cache
            f()
        times: dict[str, list[float]] = {k: [] for k in variants}
        reports: dict[str, dict[str, Any]] = {}
        want = None
        for _ in range(args.repeat):
            for name, f in variants.items():
                dt, out, rep = f()
                want = out if want is None else want
                if not torch.equal(out, want):
                    raise SystemExit(f"{name}: output differs from the full load's")
                times[name].append(dt)
                reports[name] = rep
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "model": "whisper tiny.en", "tokens": args.tokens, "repeat": args.repeat,
        "budget_bytes": budget, "two_layer_promise_bytes": base,
        "median_seconds": med,
        "budget_vs_full_speed": med["full"] / med["budget"],
        "stream_vs_full_speed": med["full"] / med["stream"],
        "layer_loads": {k: reports[k].get("layer_loads") for k in ("stream", "budget")},
        "budget_peak_weight_bytes": reports["budget"]["peak_weight_bytes"],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"whisper tiny.en, {args.tokens} tokens, medians of {args.repeat} (interleaved):")
    for k in variants:
        print(f"  {k:7s} {med[k]:.3f} s  ({med['full'] / med[k]:.2f}x the full load's speed)")
    print(f"  budget {budget / 1e6:.1f} MB (two-layer promise {base / 1e6:.1f} MB + decoder); "
          f"layer loads: stream {result['layer_loads']['stream']}, budget {result['layer_loads']['budget']}; "
          f"budget peak weights {result['budget_peak_weight_bytes'] / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
