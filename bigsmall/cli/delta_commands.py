"""apply and diff: fine-tune patches (``compress --delta-from``; ``io/delta.py``, docs/delta.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from . import options

Emit = Callable[[argparse.Namespace, dict[str, Any], str], None]


def base_lines(base: dict[str, Any]) -> list[str]:
    """``info``'s lines for a patch: the base it needs."""
    files = base.get("files", [])
    lines = [f"  a patch: needs base {base.get('name')!r} ({len(base.get('tensors', []))} of its "
             f"tensors, checked by checksum); decode with `bigsmall apply BASE PATCH`"]
    lines += [f"  base file   {f['path']} ({f['size']} bytes) sha256 {f['sha256'][:16]}..." for f in files]
    return lines


def cmd_apply(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.delta import apply

    no_progress = args.no_progress or args.json
    r = apply(args.base, args.patch, args.output, force=args.force, threads=args.threads,
              progress=False if no_progress else None, durable=not args.no_fsync)
    emit(args, {**r.to_json(), "base": args.base},
         f"{args.base} + {r.src} -> {r.dst}: {r.bytes_written} bytes restored, base and sha256 "
         f"verified, {r.seconds:.2f} s")
    return 0


def _ulps(v: float) -> str:
    return f"{v:.3g}" if v < 1e6 else f"{v:.2e}"


def cmd_diff(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.delta import diff

    r = diff(args.a, args.b)
    rows = r["tensors"] if args.all else [t for t in r["tensors"] if t["status"] != "same"]
    lines = [f"{'changed':>8s} {'max ulp':>9s} {'mean ulp':>9s} {'rel L2':>9s} {'dtype':6s} name"]
    for t in rows[: None if args.all else args.top]:
        if t["status"] in ("same", "changed"):
            l2 = "-" if t["rel_l2"] is None else f"{t['rel_l2']:.2e}"
            lines.append(f"{t['fraction_changed'] * 100:7.2f}% {t['max_ulps']:>9d} "
                         f"{_ulps(t['mean_ulps']):>9s} {l2:>9s} {t['dtype']:6s} {t['name']}")
        else:
            was = f" (was {t['was'][0]} {t['was'][1]})" if "was" in t else ""
            lines.append(f"{t['status']:>8s} {'':9s} {'':9s} {'':9s} {t['dtype']:6s} {t['name']} "
                         f"{t['shape']}{was}")
    c = r["counts"]
    lines.append(f"{r['fraction_changed'] * 100:.2f} % of {r['values_compared']} values changed: "
                 f"{c['changed']} tensors changed, {c['same']} same, {c['added']} added, "
                 f"{c['removed']} removed, {c['reshaped']} reshaped")
    emit(args, r, "\n".join(lines))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("apply", parents=[common], help="base model + patch -> the fine-tune",
                       description="Rebuild a fine-tune from its base and a patch made by "
                       "`bigsmall compress FT --delta-from BASE`. The base is checked against "
                       "the patch's per-tensor receipts first: a wrong base is refused (exit 1) "
                       "and nothing is written. Same as `decompress PATCH --base BASE`.")
    p.add_argument("base", help="the base model: a safetensors file or folder, a .bs, or a URL / hf:// path of one")
    p.add_argument("patch", help="the patch (.bs)")
    p.add_argument("-o", "--output", help="output path (default: the stored name next to PATCH)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-T", "--threads", type=options.workers, default=None, help="worker threads (default: all cores)")
    p.add_argument("--no-fsync", action="store_true", help="do not fsync the output before renaming it")
    p.set_defaults(handler=cmd_apply)

    p = sub.add_parser("diff", parents=[common], help="what changed between two models, tensor by tensor",
                       description="Compare two models (safetensors files or folders, or .bs): per "
                       "tensor the fraction of values changed, the max and mean change in units in "
                       "the last place, the relative L2 of the change; tensors added, removed or "
                       "reshaped; sorted by change, then a one-line summary.")
    p.add_argument("a", help="the first model (e.g. the base)")
    p.add_argument("b", help="the second model (e.g. the fine-tune)")
    p.add_argument("--top", type=options.positive_int, default=20, help="rows to print (default: 20)")
    p.add_argument("--all", action="store_true", help="print every tensor, unchanged ones too")
    p.set_defaults(handler=cmd_diff)
