"""The ``bigsmall`` command line.

Every command: ``--help``, ``--json`` (one JSON object on stdout), a progress bar on stderr only
when it is a TTY (``--no-progress`` to silence), and on failure a one-line message on stderr with
exit code 1 (2 for usage errors); ``--debug`` shows the traceback. With ``--json`` a failure
also prints one object, ``{"error": message, "type": exception class}``, on stdout, so that a
script reading stdout always gets exactly one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from . import (
    autopilot_commands,
    core_commands,
    delta_commands,
    dual_commands,
    integrity_commands,
    remote_commands,
    run_command,
    tools_commands,
)

EXIT_ERROR = 1


def _json_error(message: str, kind: str) -> None:
    json.dump({"error": message, "type": kind}, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


class _Parser(argparse.ArgumentParser):
    """Usage errors (exit 2) are also one JSON object on stdout when ``--json`` was given.

    ``json_errors`` is set by ``main`` from the raw arguments: a usage error may come before
    (or instead of) the parsing of ``--json`` itself. Subcommand parsers are of this class
    too (``add_subparsers`` makes them of the parent's class)."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if _Parser.json_errors:
            _json_error(message, "UsageError")
        super().error(message)


def _message(args: argparse.Namespace, exc: BaseException) -> str:
    """The error's first line, prefixed by the command's input path unless it names the
    input or the output already: every message must say which file it is about (a decoder
    error deep in a container says "tensor 'x': ...", not which container)."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    names = [str(v) for v in (getattr(args, "src", None), getattr(args, "output", None)) if v]
    if names and not any(n in msg or str(Path(n)) in msg for n in names):
        msg = f"{names[0]}: {msg}"
    return msg


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="bigsmall",
        description="Lossless compression of neural-network weights (safetensors <-> .bs).",
    )
    p.add_argument("--version", action="version", version=f"bigsmall {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    common.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    core_commands.register(sub, common)
    delta_commands.register(sub, common)
    integrity_commands.register(sub, common)
    run_command.register(sub, common)
    autopilot_commands.register(sub, common)
    tools_commands.register(sub, common)
    remote_commands.register(sub, common)
    dual_commands.register(sub, common)
    return p


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if args.json:
        json.dump(payload, sys.stdout, indent=None, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


# Commands that run with the cyclic garbage collector off: their steady state makes no cyclic
# garbage (``tests/test_cli.py`` checks compress, decompress and verify), while a collection
# of the ~100k objects that importing numba and loading its kernels leaves behind costs tens of
# ms each time: measured ~75 ms (13 young, 1 full collection) of a ~1.1 s ``decompress`` of
# MiniLM bf16, and the whole command ~0.1 s faster with collection off (6 interleaved runs).
# ``run`` (torch, transformers) keeps the default.
NO_GC_COMMANDS = frozenset({"compress", "decompress", "verify", "info", "stat", "benchmark",
                            "xray", "scan", "reshard"})


def _on_first_compile(notice: bool) -> None:
    """A kernel is not in numba's cache and is about to be compiled: the compiler does make
    cyclic garbage, so the collector comes back on; on a terminal, say what is happening."""
    gc.enable()
    if notice:
        _compile_notice()


def _compile_notice() -> None:
    """Said once when numba starts compiling (first use after an install): the ~1-2 minutes
    it takes on a small machine would otherwise look like a hang."""
    msg = ("bigsmall: compiling the kernels for this machine (first use after an install; "
           "cached for later runs; may take a minute or two; `bigsmall warmup` compiles them "
           "on every core at once)")
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:  # a progress bar may be on screen: print above it
        tqdm.tqdm.write(msg, file=sys.stderr)
    else:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    from ..io import numba_cache

    numba_cache.install()  # a command's start-up: cached kernels load without numba's full refresh
    parser = build_parser()
    _Parser.json_errors = "--json" in (sys.argv[1:] if argv is None else list(argv))
    try:
        args = parser.parse_args(argv)
    finally:
        _Parser.json_errors = False
    if getattr(args, "debug", False):  # e.g. each retried HTTP range request (bigsmall.remote)
        import logging

        logging.basicConfig(format="bigsmall: %(name)s: %(message)s")
        logging.getLogger("bigsmall").setLevel(logging.DEBUG)
    notice = (not (getattr(args, "no_progress", False) or getattr(args, "json", False))
              and sys.stderr.isatty())
    numba_cache.on_first_compile(lambda: _on_first_compile(notice))
    gc_was_on = gc.isenabled()
    if args.command in NO_GC_COMMANDS:
        gc.disable()
    try:
        code = int(args.handler(args, emit) or 0)
        # The process ends right after: let the interpreter's final garbage collections skip
        # what is alive now (numba's object graph made them cost ~0.25 s of every command).
        gc.freeze()
        return code
    except KeyboardInterrupt:
        if args.json:
            _json_error("interrupted; no partial output was left", "KeyboardInterrupt")
        sys.stderr.write("bigsmall: interrupted; no partial output was left\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's one place that turns errors into exit codes
        if args.debug:
            raise
        msg = _message(args, exc)
        if args.json:
            _json_error(msg, type(exc).__name__)
        sys.stderr.write(f"bigsmall {args.command}: error: {msg}\n")
        return EXIT_ERROR
    finally:
        numba_cache.on_first_compile(None)
        if gc_was_on:  # a caller's process (tests call ``main``) gets its collector back
            gc.enable()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
