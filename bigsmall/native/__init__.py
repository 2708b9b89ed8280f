"""The optional C kernels and the switch between them and the numba reference.

Why a layer of its own (below ``codecs``, above ``container`` in tests/test_layers_rule.py):
the codecs choose a kernel per call and must stay pure (no ``os``), while the choice depends
on the environment (``BIGSMALL_NATIVE``) and on whether the extension was built. This module
reads both once, at import, and the codecs only ask :func:`kernels`.

- ``BIGSMALL_NATIVE=0``: the numba kernels (the reference) everywhere, whatever is built.
- unset or ``1``: the C kernels (``_kernels.c``, built by setup.py at install) for the codecs
  where they are at least as fast as numba (``DEFAULT``: ``fieldp``'s decoder and chunk
  encoder), numba elsewhere; numba everywhere if the extension does not import.
- ``all``: the C kernels for every codec they cover (``ALL``: also ``field8``'s decoder, which
  measured x0.92-0.95 of numba's kernel speed on MiniLM bf16, ``benchmarks/bench_native.py
  --kernels``; the same bytes).

The C kernels take the numba kernels' arguments and return their values, byte for byte
(``property_tests/test_native.py``); see README.md in this folder.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

ENV = "BIGSMALL_NATIVE"
DEFAULT = frozenset({"fieldp"})  # codecs served natively by default: measured not slower
ALL = frozenset({"fieldp", "field8"})  # every codec with a C kernel


def built() -> ModuleType | None:
    """The C kernel module if it is built (whatever ``BIGSMALL_NATIVE`` says): what the
    property tests compare against the reference."""
    try:
        from . import _kernels  # type: ignore[attr-defined]
    except ImportError:  # not built (no compiler at install), or built for another Python
        return None
    return _kernels


def _select(mode: str) -> tuple[ModuleType | None, frozenset[str], str]:
    mode = mode.strip().lower()
    if mode == "0":
        return None, frozenset(), f"numba ({ENV}=0)"
    k = built()
    if k is None:
        return None, frozenset(), "numba (native extension not built)"
    codecs = ALL if mode == "all" else DEFAULT
    return k, codecs, f"native ({k.isa()}) for {', '.join(sorted(codecs))}; numba elsewhere"


_KERNELS, _CODECS, _STATUS = _select(os.environ.get(ENV, "1"))


def kernels(codec: str) -> ModuleType | None:
    """The C kernel module if it serves ``codec`` in this process, else None (use numba)."""
    return _KERNELS if codec in _CODECS else None


# the optional extensions other than ``_kernels``, looked up on first use: name -> the module
# (or its wrapper), or False (absent, or disabled by BIGSMALL_NATIVE=0, read at import)
_LOADED: dict[str, Any] = {}
_DISABLED = os.environ.get(ENV, "1").strip() == "0"


def _optional(name: str) -> Any:
    """The extension ``name`` (``_enc`` wrapped in ``enc.Enc``), or None when it is not built
    or the reference is forced. Threads may race on a first lookup: each computes the same
    answer and stores it whole, so none sees a half-set state and falls back to numba."""
    mod = _LOADED.get(name)
    if mod is None:
        mod = False
        if not _DISABLED:
            try:
                if name == "_enc":
                    from . import _enc  # type: ignore[attr-defined]
                    from .enc import Enc

                    mod = Enc(_enc)
                elif name == "_delta":
                    from . import _delta  # type: ignore[attr-defined]

                    mod = _delta
                elif name == "_dual":
                    from . import _dual  # type: ignore[attr-defined]

                    mod = _dual
                elif name == "_cells":
                    from . import _cells  # type: ignore[attr-defined]

                    mod = _cells
            except ImportError:  # not built (no compiler at install)
                pass
        _LOADED[name] = mod
    return mod or None


def enc_kernels() -> Any:
    """The C table builders and encoder kernels (``enc.Enc`` over ``_enc``) unless
    ``BIGSMALL_NATIVE=0`` or not built: then None (use numba). Not limited to codecs like
    :func:`kernels`: they replace kernels that are not decode loops (no speed to weigh), and
    with them a decompress compiles and imports no numba (README.md, "_enc")."""
    return _optional("_enc")


def delta() -> ModuleType | None:
    """The delta codec's C chunk decoder (``_delta.c``) unless ``BIGSMALL_NATIVE=0`` or not
    built: then None (use numba). Always on otherwise: measured 1.3-1.6x the numba kernel's
    speed on the fine-tune pairs (``benchmarks/bench_delta.py --kernels``), the same bytes."""
    return _optional("_delta")


def dual() -> ModuleType | None:
    """The ``.bsd`` 2.0 chunk decoders (``_dual.c``) unless ``BIGSMALL_NATIVE=0`` or not built:
    then None (use numba). Same keys and codes as the numba kernels (property_tests/test_dual.py)."""
    return _optional("_dual")


def cells() -> ModuleType | None:
    """The ``.bsd`` 5.0 exact chunk decoder (``_cells.c``) unless ``BIGSMALL_NATIVE=0`` or not
    built: then None (use numba). Same patterns and return codes as ``codecs/dual_cells.py``
    (property_tests/test_dual_cells.py)."""
    return _optional("_cells")


def status() -> str:
    """Which kernels serve this process, in words (``native (avx2) for fieldp; ...``)."""
    return _STATUS


def use(mode: str) -> None:
    """Switch this process's codecs as ``BIGSMALL_NATIVE=mode`` would (``"0"``, ``"1"``,
    ``"all"``): for benchmarks and tests that compare both in one process."""
    global _KERNELS, _CODECS, _STATUS, _DISABLED
    _KERNELS, _CODECS, _STATUS = _select(mode)
    _DISABLED = mode.strip() == "0"
    _LOADED.clear()
