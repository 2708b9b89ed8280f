"""The layering rule: imports inside ``bigsmall`` point down the layers only.

Why a test: the design keeps a pure core under an I/O shell, and an upward import (a codec
reaching into the planner, the core into the codecs) is how that shape erodes one convenient
line at a time. Every ``import``/``from`` in every module — those inside functions included —
is checked against the ranks below; a same-rank import is fine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import bigsmall

PKG = Path(bigsmall.__file__).parent

RANKS = {
    "errors": 0,
    "core": 1,  # value types, dtypes, safetensors header: pure, imports only errors
    "container": 2,  # the .bs byte layout and index validation: pure
    "native": 2.5,  # optional C decode kernels + their switch (reads BIGSMALL_NATIVE): codecs call it
    "codecs": 3,  # encode/decode of one tensor: pure
    "plan": 4,  # codec choice per tensor, decode jobs: pure
    "io": 5,  # the shell: files, threads, progress
    "torch": 6,  # tensors, transformers, streaming
    "testing": 7,  # corpus and synthetic models for tests and benchmarks
    "cli": 8,
    "__init__": 9,
    "__main__": 9,
}
PURE = ("core", "container", "codecs", "plan")
SHELL_ONLY = {"os", "io", "pathlib", "shutil", "tempfile", "time", "threading", "subprocess",
              "socket", "mmap", "concurrent", "multiprocessing", "aiofiles", "anyio", "httpx",
              "http", "ssl", "urllib", "psutil", "random"}


def _layer(parts: tuple[str, ...]) -> str:
    return parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str, int]]:
    """(line, absolute dotted module, level) of every import in ``path``."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    return _imports_of(path.read_text(), list(rel.parts[:-1]))


def _imports_of(source: str, package: list[str]) -> list[tuple[int, str, int]]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
                out += [(node.lineno, n, node.level) for n in names]
            else:
                out.append((node.lineno, node.module or "", 0))
    return out


def _upward(own: str, imports: list[tuple[int, str, int]]) -> list[tuple[int, str]]:
    bad = []
    for line, mod, _level in imports:
        parts = mod.split(".")
        if parts[0] != "bigsmall" or len(parts) < 2 or parts[1] not in RANKS:
            continue
        if RANKS[parts[1]] > RANKS[own]:
            bad.append((line, mod))
    return bad


def test_the_rule_catches_an_upward_import() -> None:
    src = "import numpy\nfrom ..core.types import TensorSpec\n\ndef f():\n    from ..io.reader import BsFile\n"
    assert _upward("codecs", _imports_of(src, ["bigsmall", "codecs"])) == [(5, "bigsmall.io.reader")]
    src = "from . import base\nfrom bigsmall.plan.decode import plan_decode\n"
    assert _upward("container", _imports_of(src, ["bigsmall", "container"])) == [
        (2, "bigsmall.plan.decode")]


def test_imports_point_down_the_layers() -> None:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        own = _layer(path.relative_to(PKG).parts)
        assert own in RANKS, f"{path}: no layer rank for {own!r}: add it to RANKS"
        for line, mod in _upward(own, _imports(path)):
            bad.append(f"{path.relative_to(PKG.parent)}:{line}: {own} imports {mod} (upward)")
    assert not bad, "\n".join(bad)


def test_pure_layers_do_no_io() -> None:
    """The pure layers import no module whose purpose is I/O, threads, clocks or randomness
    (the kernel generators, developer tools that write source files, excepted)."""
    bad = []
    for layer in PURE:
        for path in sorted((PKG / layer).rglob("*.py")):
            if path.name.startswith("gen_"):
                continue
            for line, mod, level in _imports(path):
                top = mod.split(".")[0]
                if level == 0 and top in SHELL_ONLY:
                    bad.append(f"{path.relative_to(PKG.parent)}:{line}: imports {mod}")
    assert not bad, "\n".join(bad)
