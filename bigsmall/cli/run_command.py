"""``bigsmall run``: load a compressed model (or stream it layer by layer) and run a real input."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from ..errors import InvalidOptionError
from ..plan.autopilot import announce
from . import autopilot_commands, options
from .core_commands import Emit, _mb, _progress


def cmd_run(args: argparse.Namespace, emit: Emit) -> int:
    if args.stream and args.mode not in (None, "stream"):
        raise InvalidOptionError(f"--stream is --mode stream; it cannot be combined with --mode {args.mode}")
    if args.budget is not None:  # a budget is a streaming budget: it implies --mode stream
        if args.mode not in (None, "auto", "stream"):
            raise InvalidOptionError(f"--budget applies to --mode stream; it cannot be combined with --mode {args.mode}")
        args.stream = True
    from pathlib import Path

    from .dual_commands import is_bsd

    bsd = is_bsd(args.src)
    if bsd and not Path(args.src).is_dir():  # a lone .bsd file holds no config to build the model
        raise InvalidOptionError(f"{args.src} is a .bsd file: `bigsmall run` needs the model folder's config; "
                                 "run the .bsd folder that `bigsmall dual MODEL_FOLDER` writes; `plan` reads "
                                 "this file, `load` decodes it")
    # the autopilot: plan from the index and the free memory, announce (a lossy plan says so
    # first), and only then load; the runner refuses a lossy plan without the receipt
    plan = autopilot_commands.make_plan(args.src, "stream" if args.stream else (args.mode or "auto"),
                                        args.device)
    receipt = announce(plan, _say(args))
    args.stream = plan.mode == "stream"
    if args.stream:
        # torch's OpenMP workers spin while waiting for work, and with the prefetch decoding on
        # the same cores they steal its time: passive waiting made the streamed MiniLM bf16 pass
        # ~20 % faster on 2 cores (benchmarks/bench_load.py). Must be set before torch loads;
        # a value the user set wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..io import memory
    from ..io import progress as prog
    from ..torch.runner import run

    memory.steady_heap()  # freed layers and activations go back to the OS: a flat, honest peak

    show = _progress(args)

    def bar(total: int, unit: str) -> Any:
        return prog.bar(total, f"{'stream' if args.stream else 'load'} {args.src}", show, unit=unit)

    say = _say(args)
    if bsd:  # a .bsd folder: its exact members, or its fast members (torch/dual_run.py)
        from ..torch.dual_run import run_dual

        r = run_dual(args.src, plan, receipt, device=args.device, prompt=args.prompt, audio=args.audio,
                     model_class=args.model_class, progress=bar, announce=say)
    else:
        r = run(args.src, stream=args.stream, device=args.device, prompt=args.prompt, audio=args.audio,
                model_class=args.model_class, threads=args.threads, progress=bar, announce=say,
                fast_plan=plan if plan.mode == "fast" else None, receipt=receipt, budget=args.budget)
    out = r.output
    how = {"stream": "streamed", "fast": "loaded as LOSSY INT4"}.get(r.mode, "loaded")
    lines = [
        f"{r.src}: {r.model} on {r.device}, {r.tensors} tensors, {_mb(r.weight_bytes)} of weights "
        f"{how} in {r.load_seconds:.2f} s; "
        f"ran in {r.run_seconds:.2f} s",
        f"input: {out['input']}",
    ]
    if out["kind"] == "embedding":
        via = f" (Transformer > {' > '.join(out['pipeline'])})" if out.get("pipeline") else ""
        lines.append(f"sentence embedding{via}: dim {out['embedding_dim']}, norm {out['embedding_norm']:.5f}, "
                     f"head {out['embedding_head']}")
    else:
        lines.append(f"transcription: {out['text']!r} ({len(out['tokens'])} tokens)")
    lines.append(f"output {out['output']} {out['shape']} sha256 {out['sha256']}")
    if r.promise is not None and r.stream is not None:
        s = r.stream
        verdict = "kept" if (s["peak_weight_bytes"] <= r.promise.weight_bytes
                             and r.peak_rss <= r.promise.process_bytes) else "BROKEN"
        lines.append(
            f"measured: weights peak {s['peak_weight_bytes'] / 1e6:.1f} MB ({s['peak_layers']} layers), "
            f"process peak {r.peak_rss / 1e6:.0f} MB; promise {verdict}; "
            f"prefetch hid {s['overlap'] * 100:.0f} % of {s['decode_seconds']:.2f} s decode "
            f"({s['layer_loads']} layer loads, {s['passes']} passes)")
        if s.get("budget_bytes") is not None:
            lines.append(f"budget {s['budget_bytes'] / 1e6:.1f} MB: {s['cache_hits']} layers reused from the "
                         f"cache, {s['cache_evictions']} evicted, cache peak {s['peak_cached_bytes'] / 1e6:.1f} MB")
    else:
        lines.append(f"process peak {r.peak_rss / 1e6:.0f} MB")
    if r.fast is not None:
        err = r.fast["weight_error"]
        lines.append(f"fast mode (LOSSY) held {r.fast['quantized']} tensors in INT4 "
                     f"({_mb(r.fast['int4_bytes'])}) and {r.fast['exact']} exact ({_mb(r.fast['exact_bytes'])}); "
                     + (f"INT4 weight error {100 * err:.1f} % RMS of the weights" if err is not None else
                        f"read {_mb(r.fast['bytes_read'])}, the fast members only (weight error: "
                        "docs/dual.md; measuring it here would read the exact members)"))
    emit(args, {**r.to_json(), "plan": plan.to_json()}, "\n".join(lines))
    return 0


def _budget(text: str) -> int:
    """``--budget``: a size with an optional unit, refused at parse time (exit 2) when malformed."""
    from ..io.reshard import parse_size

    try:
        return parse_size(text)
    except InvalidOptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    """Where announcements go before anything is loaded: stdout, or stderr with --json (stdout
    then stays one object, which carries the plan and its announcement too)."""
    stream = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return say


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run", parents=[common], help="load a compressed model (or stream it) and run a real input",
        description="Load SRC into memory (or, with --stream, one transformer layer at a time) and "
                    "run the model on a real input: a text prompt through its tokenizer (sentence "
                    "embedding), or audio for Whisper (a 16 kHz WAV, default a generated tone). "
                    "Needs torch and transformers; the config and tokenizer come from the container "
                    "(compress the model folder) or from files next to SRC.")
    p.add_argument("src", help="a .bs container of a transformers model, or a .bsd folder (`bigsmall dual FOLDER`)")
    autopilot_commands.add_mode(p, None)
    p.add_argument("--stream", action="store_true",
                   help="same as --mode stream: keep one layer resident (+ the next, prefetched); "
                        "prints the memory promise before and the measured peak after")
    p.add_argument("--budget", type=_budget, metavar="SIZE",
                   help="streaming memory budget for weights, e.g. 2GB or 500MiB (implies --mode stream): "
                        "decoded layers are kept (LRU) while they fit, so repeated passes (generation, "
                        "batches) stop re-decoding; must be at least the two-layer promise")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--prompt", help="text input for text models (default: a fixed sentence)")
    p.add_argument("--audio", metavar="WAV", help="16 kHz PCM WAV for speech models (default: a generated tone)")
    p.add_argument("--model-class", help="transformers class name (default: the config's architecture)")
    p.add_argument("-T", "--threads", type=options.workers, default=None, help="decode threads (default: all cores)")
    p.set_defaults(handler=cmd_run)
