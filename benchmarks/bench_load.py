"""Loading and streaming figures (the load/stream issue's targets), every number from this run.

For each reference model folder (config + weights, compressed once into a temporary directory):

* ``load``: wall of ``bigsmall.load(src)`` (torch tensors) against the decode-into-memory time of
  the same file (``bigsmall.open`` + every tensor into numpy), both warm, same threads; and the
  peak RSS of a first load (numba and the kernels included) above an interpreter that has
  imported torch, against the budget model bytes + 2 x chunk + 300 MB.
* ``stream``: ``StreamingModel`` forward passes against the fully loaded model's on the same
  input (medians after a warm-up), the prefetch overlap, bit-identity of the outputs, and the
  process peak RSS above the runtime baseline (torch + transformers imported, kernels loaded,
  skeleton on meta) against non-layer bytes + 2 x largest layer + the forward pass's own
  working memory (activations, torch's buffers), which the fully loaded model's first forward
  measures in the same run: streaming bounds the weights, not the activations.

Each measurement runs in a fresh child process so peaks do not leak between them.
Usage: ``python benchmarks/bench_load.py [--repeat 3] [--models minilm-bf16,...] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CHILD = r'''
import json, sys, time, statistics
mode, src, repeat, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import torch
torch.set_num_threads(threads)
from bigsmall.io import memory
memory.steady_heap()  # as `bigsmall run` does, in every mode: the same malloc policy for all figures
first_load = None
if mode == "load":  # the issue's baseline: an interpreter that has imported torch (and nothing of ours)
    memory.reset_peak(); base = memory.current_rss()
    import bigsmall
    sd = bigsmall.load(src, threads=threads); first_load = memory.peak_rss() - base; del sd
import bigsmall
from bigsmall.io.reader import BsFile
from bigsmall.torch.runner import warm_decoders, digest
with BsFile(src) as bs:
    warm_decoders(bs)
    entries = list(bs.container.tensors)
    from bigsmall.plan.planner import CHUNK_BYTES as chunk
out = {}
if mode == "load":
    def decode_mem():
        with BsFile(src, threads=threads) as bs:
            for e, _ in bs.iter_decoded(list(bs.container.tensors)):
                pass
    def load():
        return bigsmall.load(src, threads=threads)
    peak = first_load
    decode_mem(); load()  # warm for the timings
    tl, td = [], []
    for _ in range(repeat):
        t0 = time.perf_counter(); decode_mem(); td.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); sd = load(); tl.append(time.perf_counter() - t0); del sd
    out = {"decode_s": statistics.median(td), "load_s": statistics.median(tl), "load_peak_above_base": peak,
           "chunk_bytes": chunk, "model_bytes": sum(e.spec.nbytes for e in entries)}
else:
    import transformers
    from bigsmall.torch.runner import _model_class, _Task
    from bigsmall.torch.skeleton import write_side_files
    import tempfile as tf
    from pathlib import Path
    with tf.TemporaryDirectory() as d, BsFile(src) as bs:
        write_side_files(bs, src, Path(d))
        config = transformers.AutoConfig.from_pretrained(d)
    cls = _model_class(config, None)
    if config.model_type == "whisper":
        g = torch.Generator().manual_seed(0)
        inputs = {"input_features": torch.randn(2, 80, 3000, generator=g).to(torch.float16),
                  "decoder_input_ids": torch.tensor([[50257, 50362, 400, 2068, 13]] * 2)}
        pick = lambda o: o.logits
    else:
        g = torch.Generator().manual_seed(0)
        inputs = {"input_ids": torch.randint(1000, 20000, (16, 128), generator=g)}
        pick = lambda o: o.last_hidden_state
    if mode == "full":
        model = bigsmall.from_pretrained(src, model_class=cls, threads=threads)
        memory.reset_peak(); loaded = memory.current_rss()
        with torch.no_grad():
            pick(model(**inputs))
            ts = []
            for _ in range(repeat):
                t0 = time.perf_counter(); o = pick(model(**inputs)); ts.append(time.perf_counter() - t0)
        # activations + torch's own working set, over as many passes as the streamed run makes
        forward_overhead = memory.peak_rss() - loaded
        out = {"forward_s": statistics.median(ts), "sha256": digest(o), "forward_overhead": forward_overhead}
    else:
        from bigsmall.torch.executor import StreamingModel
        base = [0]
        def ready(sm):  # baseline with the skeleton on meta, before any weight (as `bigsmall run` does)
            memory.reset_peak(); base[0] = memory.current_rss()
        with StreamingModel(src, model_class=cls, threads=threads, before_weights=ready) as sm:
            pick(sm(**inputs))
            ts = []
            for _ in range(repeat):
                t0 = time.perf_counter(); o = pick(sm(**inputs)); ts.append(time.perf_counter() - t0)
            rep = sm.report()
        out = {"forward_s": statistics.median(ts), "sha256": digest(o), "peak_above_base": memory.peak_rss() - base[0],
               "baseline_rss": base[0], **rep.as_dict()}
print(json.dumps(out))
'''


def child(mode: str, src: Path, repeat: int, threads: int) -> dict[str, Any]:
    env = dict(os.environ)
    if mode == "stream":  # as `bigsmall run --stream` does (see bigsmall/cli/run_command.py)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    r = subprocess.run([sys.executable, "-c", CHILD, mode, str(src), str(repeat), str(threads)],
                       capture_output=True, text=True, check=False, env=env)
    if r.returncode != 0:
        raise SystemExit(f"child {mode} {src} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def folders() -> dict[str, Path]:
    from bigsmall.testing import corpus

    return {"minilm-bf16": corpus.minilm_bf16_dir(), "whisper-tiny-fp16": corpus.whisper_tiny_hf_dir(),
            "minilm-fp32": corpus.minilm_dir()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="0: all cores")
    ap.add_argument("--models", default="", help="comma-separated subset")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import bigsmall

    threads = args.threads or os.cpu_count() or 1
    chosen = folders()
    if args.models:
        chosen = {k: v for k, v in chosen.items() if k in args.models.split(",")}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bigsmall-bench-load-") as d:
        for name, folder in chosen.items():
            src = Path(d) / f"{name}.bs"
            bigsmall.compress(folder, src)
            ld = child("load", src, args.repeat, threads)
            full = child("full", src, args.repeat, threads)
            st = child("stream", src, args.repeat, threads)
            results[name] = {"load": ld, "full": full, "stream": st}
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"threads={threads} repeat={args.repeat} (medians; container in page cache)\n")
    for name, r in results.items():
        ld, full, st = r["load"], r["full"], r["stream"]
        budget = ld["model_bytes"] + 2 * ld["chunk_bytes"] + 300e6
        weights_budget = st["non_layer_bytes"] + 2 * st["largest_layer_bytes"]
        stream_budget = weights_budget + full["forward_overhead"]
        print(f"{name}")
        print(f"  load: {ld['load_s']:.3f} s vs decode-into-memory {ld['decode_s']:.3f} s "
              f"-> x{ld['load_s'] / ld['decode_s']:.2f} (target <= 1.15); peak RSS +{ld['load_peak_above_base'] / 1e6:.0f} MB "
              f"(budget {budget / 1e6:.0f} MB = model + 2 x chunk + 300 MB)")
        print(f"  stream: forward {st['forward_s']:.3f} s vs fully loaded {full['forward_s']:.3f} s -> speed "
              f"x{full['forward_s'] / st['forward_s']:.2f} (target >= 0.5); outputs "
              f"{'bit-identical' if st['sha256'] == full['sha256'] else 'DIFFER'}")
        print(f"          prefetch hid {st['overlap'] * 100:.0f} % of decode (target >= 50 %); peak RSS "
              f"+{st['peak_above_base'] / 1e6:.0f} MB above the runtime baseline {st['baseline_rss'] / 1e6:.0f} MB "
              f"(budget {stream_budget / 1e6:.0f} MB = non-layer + 2 x largest layer {weights_budget / 1e6:.0f} MB "
              f"+ the forward's own activations/runtime {full['forward_overhead'] / 1e6:.0f} MB, measured on "
              f"the fully loaded model); weights peak {st['peak_weight_bytes'] / 1e6:.1f} MB, {st['peak_layers']} layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
