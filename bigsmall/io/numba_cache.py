"""Faster loading of cached numba kernels, for short-lived processes (the command line).

Why: before numba loads a kernel from its on-disk cache (``cache=True``) it refreshes the whole
target context: it imports and installs every typing and lowering registry numba has (numpy,
math, random, typed containers, ...), about 0.3 s on a small machine, more than the load itself.
A cached kernel is machine code and needs none of that; only compiling does, and numba's
compiler refreshes the context itself before it compiles. So the patched load tries the cache
first with only the runtime (NRT) initialised, and falls back to numba's own path (refresh,
load, compile on a miss) whenever that does not give a kernel.

The patch is installed lazily, when ``numba.core.caching`` is first imported, so a command
that never needs a kernel (``info``, raw/zstd-only containers) does not import numba for it.
Only the CLI installs it: it owns its process; a library caller keeps numba as it is.

The same hook sees a cache miss first: ``on_first_compile`` lets the CLI say, once, that the
kernels are being compiled (a fresh install's first ``compress`` compiles for ~1-2 minutes on
a small machine; without a word it looks hung).
"""

from __future__ import annotations

import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

_MODULE = "numba.core.caching"
_on_miss: list[Callable[[], None]] = []  # called once, at the first cache miss (then emptied)


def on_first_compile(callback: Callable[[], None] | None) -> None:
    """Call ``callback`` (once, from whichever thread compiles) when a kernel is not in the
    on-disk cache and numba is about to compile it; None forgets a callback not yet called.
    Needs ``install()``."""
    _on_miss[:] = [] if callback is None else [callback]


def _missed() -> None:
    if _on_miss:
        callback = _on_miss.pop()
        try:
            callback()
        except Exception:  # noqa: BLE001, S110 - a notice must never break a compile
            pass


def _patch(caching: ModuleType) -> None:
    cls = getattr(caching, "Cache", None)
    original = getattr(cls, "load_overload", None)
    if (cls is None or original is None or getattr(original, "_bigsmall", False)
            or not hasattr(cls, "_load_overload")
            or not hasattr(cls, "_guard_against_spurious_io_errors")):
        return  # not the numba this was written for: leave it alone

    def load_overload(self: Any, sig: Any, target_context: Any) -> Any:
        data = None
        try:
            from numba.core.runtime import nrt

            nrt.rtsys.initialize(target_context)  # what a loaded kernel needs (allocation)
            with self._guard_against_spurious_io_errors():
                data = self._load_overload(sig, target_context)
        except Exception:  # noqa: BLE001 - any doubt: numba's own path below decides
            data = None
        if data is None:
            data = original(self, sig, target_context)
            if data is None:  # not cached: numba compiles it next
                _missed()
        return data

    load_overload._bigsmall = True  # type: ignore[attr-defined]
    cls.load_overload = load_overload  # type: ignore[union-attr]


class _AfterImport:
    """A meta path finder (duck-typed: importlib.abc costs an import) that finds nothing
    itself; it wraps the real loader of numba.core.caching to patch the module once run."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != _MODULE:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Make later loads of cached numba kernels skip the full context refresh (idempotent)."""
    mod = sys.modules.get(_MODULE)
    if mod is not None:
        _patch(mod)
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())
