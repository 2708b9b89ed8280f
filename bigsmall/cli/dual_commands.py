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

    if Path(args.src).is_dir():  # a model folder -> a .bsd folder (io/dual_folder.py)
        return _dual_folder(args, emit)
    out = args.output or str(Path(args.src).with_suffix(".bsd"))
    from ..io import progress as prog

    with prog.bar(Path(args.src).stat().st_size, f"dual {Path(args.src).name}", _progress(args)) as bar:
        r = create(args.src, out, force=args.force, durable=not args.no_fsync, progress=bar)
    orig = max(1, r.original_bytes)
    emit(args, r.to_json(),
         f"{r.src} -> {r.dst}: {_mb(r.original_bytes)} -> {_mb(r.fast_member_bytes + r.exact_member_bytes)} "
         f"({100 * (r.fast_member_bytes + r.exact_member_bytes) / orig:.2f} %); fast member (lossy INT4) "
         f"{_mb(r.fast_member_bytes)} ({100 * r.fast_member_bytes / orig:.2f} %), exact member "
         f"{_mb(r.exact_member_bytes)}; {r.quantized} tensors quantized, {r.exact_tensors} kept exact; "
         f"{r.seconds:.2f} s")
    return 0


def _progress(args: argparse.Namespace) -> bool | None:
    return False if (args.no_progress or args.json) else None


def _dual_folder(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.dual_folder import create_folder

    r = create_folder(args.src, args.output, force=args.force, durable=not args.no_fsync,
                      progress=_progress(args))
    orig = max(1, r.original_bytes)
    emit(args, r.to_json(),
         f"{r.src} -> {r.dst}/: {_mb(r.original_bytes)} -> {_mb(r.file_bytes)} ({100 * r.file_bytes / orig:.2f} %); "
         f"{r.bsd_files} safetensors file(s) as .bsd: fast members (lossy INT4) {_mb(r.fast_member_bytes)} "
         f"({100 * r.fast_member_bytes / orig:.2f} %), exact members {_mb(r.exact_member_bytes)}; "
         f"{r.copied_files} other file(s) copied ({_mb(r.copied_bytes)}); {r.quantized} tensors quantized, "
         f"{r.exact_tensors} kept exact; {r.seconds:.2f} s")
    return 0


def info_bsd(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.dual_folder import open_dual

    with open_dual(args.src) as d:
        payload = d.info()
    payload["path"] = args.src
    folder = payload["format"] == "bsd-folder"
    what = ("bigsmall dual-fidelity folder (.bsd files + manifest) format" if folder
            else "bigsmall dual-fidelity file (.bsd) format")
    emit(args, payload,
         f"{args.src}: {what} {payload['version'][0]}.{payload['version'][1]}\n"
         f"  {_mb(payload['original_bytes'])} -> {_mb(payload['file_bytes'])} ({payload['ratio_pct']:.2f} %)\n"
         f"  fast member (lossy INT4, groups of 128): {_mb(payload['fast_member_bytes'])} "
         f"({payload['fast_member_pct']:.2f} %); exact member: {_mb(payload['exact_member_bytes'])}\n"
         f"  {payload['tensors']} tensors: {payload['quantized']} quantized, {payload['exact_tensors']} exact"
         + (f"\n  {payload['bsd_files']} .bsd file(s), {payload['copied_files']} other file(s) copied"
            if folder else ""))
    return 0


def verify_bsd(args: argparse.Namespace, emit: Emit) -> int:
    from ..errors import IntegrityError
    from ..io.dual_folder import open_dual

    with open_dual(args.src) as d:
        try:
            rep = d.verify()
        except IntegrityError as exc:
            emit(args, {"src": args.src, "ok": False, "problems": [str(exc)]}, f"{args.src}: CORRUPT: {exc}")
            return 3
    emit(args, {"src": args.src, "mode": "full", **rep},
         f"{args.src}: OK: both members decode; {rep['tensors']} tensors and "
         + (f"the {rep['files']} original files' sha256 verified" if "files" in rep
            else "the original file's sha256 verified"))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dual", parents=[common], help="safetensors file or model folder -> .bsd (a lossy INT4 fast member + the exact original)",
                       description="Write a dual-fidelity .bsd: first a fast member (large matrices in "
                       "group-wise INT4, LOSSY; the rest exact), then the exact member, the original bits "
                       "coded given the INT4 code. `decompress` restores the original byte for byte; "
                       "bigsmall.load(path, mode='fast') reads only the fast member. A model folder "
                       "becomes a .bsd folder: each .safetensors file a .bsd, the other files (config, "
                       "tokenizer, shard index) copied, and a manifest; `bigsmall run FOLDER.bsd --mode "
                       "fast` runs the fast members. See docs/dual.md.")
    p.add_argument("src", help="a .safetensors file or a model folder")
    p.add_argument("-o", "--output", help="output path (default: SRC with the suffix .bsd; a folder: SRC.bsd/)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--no-fsync", action="store_true", help="do not fsync the output before renaming it into place")
    p.set_defaults(handler=cmd_dual)
