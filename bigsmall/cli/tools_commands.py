"""xray, scan, reshard: look into a checkpoint before shipping it, predict its compressed
size, and cut a container into shards (or merge shards)."""

from __future__ import annotations

import argparse
from typing import Any

from .core_commands import Emit, _mb, _progress, _rate


def cmd_xray(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.xray import render, xray

    r = xray(args.src, progress=_progress(args))
    emit(args, r, render(r, all_tensors=not args.findings_only))
    return 3 if args.strict and r["counts"]["error"] + r["counts"]["warning"] else 0


def cmd_scan(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.scan import scan

    r = scan(args.src, rows=args.rows)
    emit(args, r, render_scan(r))
    return 0


def render_scan(r: dict[str, Any]) -> str:
    """The scan report: the prediction, a row per (dtype, class), the notes."""
    lines = [f"{r['src']}: {_mb(r['original_bytes'])} -> ~{_mb(r['predicted_bytes'])} "
             f"(predicted {r['predicted_ratio'] * 100:.2f} %), {r['tensors']} tensors, "
             f"sampled {_mb(r['sampled_bytes'])} in {r['seconds']:.2f} s",
             f"  {'dtype':6s} {'class':10s} {'tensors':>7s} {'original':>10s} {'predicted':>10s} "
             f"{'ratio':>8s}"]
    for b in r["by_class"]:
        lines.append(f"  {b['dtype']:6s} {b['class']:10s} {b['tensors']:7d} "
                     f"{_mb(b['original_bytes']):>10s} {_mb(b['predicted_bytes']):>10s} "
                     f"{b['predicted_ratio'] * 100:7.2f}%")
    lines += [f"  NOTE {n['code']}: {n['message']}" for n in r["unusual"]]
    return "\n".join(lines)


def _size(text: str) -> int:
    from ..errors import InvalidOptionError
    from ..io.reshard import parse_size

    try:
        return parse_size(text)
    except InvalidOptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_reshard(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.reshard import reshard

    r = reshard(args.src, args.output, max_shard_size=args.max_shard_size, force=args.force,
                durable=not args.no_fsync)
    what = "1 container" if r.shards == 1 and r.dst.endswith(".bs") else f"{r.shards} shard(s)"
    extra = f"; {r.oversize} above the limit (a layer or tensor larger than it)" if r.oversize else ""
    emit(args, r.to_json(),
         f"{r.src} -> {r.dst}: {what}, {_mb(r.bytes_copied)} copied in {r.seconds:.2f} s "
         f"({_rate(r.bytes_copied, r.seconds)}){extra}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("xray", parents=[common], help="per-tensor statistics and warnings",
                       description="Statistics of every tensor (NaN/inf/subnormal/zero counts, "
                       "range, mean/std, exponents, match with common init std's) and the "
                       "findings worth knowing before shipping weights: NaN/inf, all-zero or "
                       "constant tensors, untrained-looking (still at initialisation) matrices, "
                       "duplicated tensors. Reads tensor by tensor (bounded memory). Exit code "
                       "0, or 3 with --strict when there is an error or a warning.")
    p.add_argument("src", help="a .safetensors file, a model folder, a .bs container or a folder of .bs shards")
    p.add_argument("--findings-only", action="store_true", help="print the findings, not the per-tensor table")
    p.add_argument("--strict", action="store_true", help="exit 3 when any error or warning is found")
    p.set_defaults(handler=cmd_xray)

    p = sub.add_parser("scan", parents=[common], help="predict the compressed size from a sample",
                       description="Predict what `bigsmall compress` (default level) makes of a "
                       "safetensors file or model folder, per dtype and tensor class, from a "
                       "sample of rows, without writing anything; note what is unusual (bf16 "
                       "stored as fp32, fp16-exact fp32 rows, duplicated tensors).")
    p.add_argument("src", help="a .safetensors file or a model folder")
    p.add_argument("--rows", type=_rows, default=128,
                   help="rows sampled per tensor class (more: slower, a little more exact; default: 128)")
    p.set_defaults(handler=cmd_scan)

    p = sub.add_parser("reshard", parents=[common], help="split a .bs into shards, or merge shards",
                       description="Split a .bs container (or a folder of shards) into shards "
                       "of at most --max-shard-size along layer boundaries, with an index "
                       "NAME.bs.index.json (tensor -> shard, like Hugging Face's); or, when "
                       "-o ends in .bs, merge shards back into one container (the original file, "
                       "byte for byte). Blobs are copied, never re-encoded. Every bigsmall "
                       "command reads a shard folder as the container it was cut from.")
    p.add_argument("src", help="a .bs container or a folder of .bs shards")
    p.add_argument("-o", "--output", required=True, help="output folder (or NAME.bs to merge into one file)")
    # a string default: argparse converts it only when reshard runs (``_size`` imports
    # io.reshard, i.e. numpy: every command's start-up paid for it, ``info`` included)
    p.add_argument("--max-shard-size", type=_size, default="2GB",
                   help="largest shard file, e.g. 2GB (10^9 bytes), 500MiB, 1048576 (default: 2GB)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--no-fsync", action="store_true",
                   help="do not fsync the output before renaming it into place")
    p.set_defaults(handler=cmd_reshard)


def _rows(text: str) -> int:
    from .options import positive_int

    n = positive_int(text)
    if n > 1 << 20:
        raise argparse.ArgumentTypeError(f"must be at most {1 << 20}, not {n}")
    return n
