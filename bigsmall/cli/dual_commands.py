"""``bigsmall dual``: write the dual-fidelity ``.bsd``; and what ``info``/``verify`` say of one.

``decompress`` restores a ``.bsd`` through ``io/decompress.py`` (it tells the file by its magic);
``info`` and ``verify`` hand a ``.bsd`` to ``info_bsd``/``verify_bsd`` here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Emit = Callable[[argparse.Namespace, dict[str, Any], str], None]


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def is_bsd(src: Any) -> bool:
    from ..io.source import is_dual_path

    return is_dual_path(src)


def cmd_dual(args: argparse.Namespace, emit: Emit) -> int:
    from pathlib import Path

    from ..io.dual import create

    out = args.output or str(Path(args.src).with_suffix(".bsd"))
    r = create(args.src, out, force=args.force, durable=not args.no_fsync)
    orig = max(1, r.original_bytes)
    emit(args, r.to_json(),
         f"{r.src} -> {r.dst}: {_mb(r.original_bytes)} -> {_mb(r.fast_member_bytes + r.exact_member_bytes)} "
         f"({100 * (r.fast_member_bytes + r.exact_member_bytes) / orig:.2f} %); fast member (lossy INT4) "
         f"{_mb(r.fast_member_bytes)} ({100 * r.fast_member_bytes / orig:.2f} %), exact member "
         f"{_mb(r.exact_member_bytes)}; {r.quantized} tensors quantized, {r.exact_tensors} kept exact; "
         f"{r.seconds:.2f} s")
    return 0


def info_bsd(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.dual import DualFile

    with DualFile(args.src) as d:
        payload = d.info()
    payload["path"] = args.src
    emit(args, payload,
         f"{args.src}: bigsmall dual-fidelity file (.bsd) format {payload['version'][0]}.{payload['version'][1]}\n"
         f"  {_mb(payload['original_bytes'])} -> {_mb(payload['file_bytes'])} ({payload['ratio_pct']:.2f} %)\n"
         f"  fast member (lossy INT4, groups of 128): {_mb(payload['fast_member_bytes'])} "
         f"({payload['fast_member_pct']:.2f} %); exact member: {_mb(payload['exact_member_bytes'])}\n"
         f"  {payload['tensors']} tensors: {payload['quantized']} quantized, {payload['exact_tensors']} exact")
    return 0


def verify_bsd(args: argparse.Namespace, emit: Emit) -> int:
    from ..errors import IntegrityError
    from ..io.dual import DualFile

    with DualFile(args.src) as d:
        try:
            rep = d.verify()
        except IntegrityError as exc:
            emit(args, {"src": args.src, "ok": False, "problems": [str(exc)]}, f"{args.src}: CORRUPT: {exc}")
            return 3
    emit(args, {"src": args.src, "mode": "full", **rep},
         f"{args.src}: OK: both members decode; {rep['tensors']} tensors and the original file's sha256 "
         "verified")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dual", parents=[common], help="safetensors file -> .bsd (a lossy INT4 fast member + the exact original)",
                       description="Write a dual-fidelity .bsd: first a fast member (large matrices in "
                       "group-wise INT4, LOSSY; the rest exact), then the exact member, the original bits "
                       "coded given the INT4 code. `decompress` restores the original byte for byte; "
                       "bigsmall.load(path, mode='fast') reads only the fast member. See docs/dual.md.")
    p.add_argument("src", help="a .safetensors file")
    p.add_argument("-o", "--output", help="output path (default: SRC with the suffix .bsd)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--no-fsync", action="store_true", help="do not fsync the output before renaming it into place")
    p.set_defaults(handler=cmd_dual)
