"""repair, and the ECC part of verify (``compress --ecc``'s parity: ``bigsmall/io/ecc.py``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

Emit = Callable[[argparse.Namespace, dict[str, Any], str], None]


def ecc_status(src: str) -> Any:
    """The ECC state of a local file (``io.ecc.EccStatus``), or None for anything else (a URL,
    a file that cannot be read): what ``verify`` adds to its report."""
    if not os.path.isfile(src):
        return None
    from ..io.ecc import try_check

    return try_check(src)


def ecc_line(st: Any) -> str:
    hint = "; run `bigsmall repair` to rebuild it" if st.found and st.damaged and st.repairable else ""
    return f"ECC: {st.summary()}{hint}"


def verify_unreadable(args: argparse.Namespace, emit: Emit, exc: BaseException, st: Any) -> int:
    """``verify`` of a container that cannot be opened (a damaged header or index) but has an
    ECC section: say what is damaged and whether ``repair`` can rebuild it (exit 3)."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    payload = {"src": args.src, "mode": None, "ok": False, "problems": [msg], "ecc": st.to_json()}
    emit(args, payload, f"{args.src}: DAMAGED: {msg}\n{ecc_line(st)}")
    return 3


def cmd_repair(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.ecc import repair

    r = repair(args.src, args.output, force=args.force)
    if not r.repaired:
        text = f"{r.src}: intact, nothing to repair" + (f" (copied to {r.dst})" if r.dst != r.src else "")
    else:
        text = (f"{r.src} -> {r.dst}: repaired {r.data_blocks} data and {r.parity_blocks} parity "
                f"blocks in {r.stripes} stripes, {r.seconds:.2f} s "
                f"({r.bytes / 1e6 / max(r.seconds, 1e-9):.0f} MB/s)")
    emit(args, r.to_json(), text)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "repair", parents=[common], help="rebuild damaged bytes of a .bs from its ECC parity",
        description="Rebuild the damaged blocks of a .bs written with `compress --ecc P` (its "
        "blobs, index, header and parity) from the erasure-code parity, byte for byte the file "
        "compress wrote. `bigsmall verify` says whether a damaged file is repairable.")
    p.add_argument("src", help="a .bs container with an ECC section")
    p.add_argument("-o", "--output", help="write the repaired file here (default: repair SRC "
                   "in place, which needs --force)")
    p.add_argument("-f", "--force", action="store_true",
                   help="repair SRC in place (without -o), or overwrite an existing OUTPUT")
    p.set_defaults(handler=cmd_repair)
