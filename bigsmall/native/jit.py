"""``njit`` that imports numba on first use, not at import: the numba kernels stay the reference
and fallback, but a process that never runs one (a ``decompress`` or ``load`` served by the C
kernels, ``bigsmall info``) no longer pays numba's import (~0.3-0.5 s of a cold start).

How: ``@njit(...)`` on a function returns a :class:`LazyDispatcher` while numba is not imported.
The first call (or attribute access: ``.compile``, ``.signatures``, ``.py_func``) of ANY lazy
kernel imports numba and turns EVERY pending one into its real dispatcher at once, then puts
the real dispatchers in place of the placeholders in the globals of every loaded ``bigsmall``
module. That matters: numba resolves a kernel's callees through its module's globals when it
compiles (or loads from its cache) the caller, and must find dispatchers there, including
callees imported from other modules (``from .decode_tables import _read_rows``). Once numba is
imported, ``njit`` is numba's own (no placeholder, no cost). The cache (``cache=True``) is keyed
by the function's code, not by when the dispatcher was made: cached kernels load as before.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

_LOCK = threading.RLock()
_PENDING: list[LazyDispatcher] = []
_REAL: list[Any] = []  # [numba.njit] once imported


class LazyDispatcher:
    """Stands for ``numba.njit(**options)(py_func)`` until a kernel is first needed."""

    def __init__(self, py_func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = py_func
        self._options = options
        self._real: Any = None
        self.__doc__ = py_func.__doc__
        self.__name__ = py_func.__name__
        self.__qualname__ = py_func.__qualname__
        self.__module__ = py_func.__module__
        self.__wrapped__ = py_func

    def dispatcher(self) -> Any:
        """The real numba dispatcher (imports numba, materialises every pending kernel)."""
        if self._real is None:
            materialize()
        return self._real

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.dispatcher()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # .compile, .signatures, .overloads, ...
        return getattr(self.dispatcher(), name)

    def __repr__(self) -> str:
        return f"<lazy numba kernel {self.__module__}.{self.__qualname__}>"


def materialize() -> None:
    """Import numba; make every pending kernel's dispatcher; swap them into module globals."""
    with _LOCK:
        if not _REAL:
            from numba import njit as real

            _REAL.append(real)
        real = _REAL[0]
        for lazy in _PENDING:
            if lazy._real is None:
                lazy._real = real(**lazy._options)(lazy.py_func)
        _PENDING.clear()
        for name, mod in list(sys.modules.items()):
            if not name.startswith("bigsmall") or mod is None:
                continue
            d = vars(mod)
            for key, val in list(d.items()):
                if isinstance(val, LazyDispatcher) and val._real is not None:
                    d[key] = val._real


class NativeFirst:
    """A kernel with a C port (``native=`` of :func:`njit`): a call from Python runs the
    port (``bigsmall.native.enc.Enc.<name>``: same arguments, same results) when the C
    kernels serve this process, else the numba kernel. Attributes (``.py_func``, ``.compile``:
    ``bigsmall warmup``) are the numba kernel's; a port that returns ``NotImplemented`` hands
    those arguments to numba. Not callable from other numba kernels: only kernels that Python
    alone calls get a port this way."""

    def __init__(self, name: str, kernel: Any) -> None:
        self.native_name = name
        self.kernel = kernel
        self.__doc__ = getattr(kernel, "__doc__", None)
        self.__wrapped__ = getattr(kernel, "py_func", None) or getattr(kernel, "__wrapped__", None)

    def __call__(self, *args: Any) -> Any:
        from . import enc_kernels

        e = enc_kernels()
        if e is not None:
            out = getattr(e, self.native_name)(*args)
            if out is not NotImplemented:  # the port covers these arguments
                return out
        k = self.kernel
        return (k.dispatcher() if isinstance(k, LazyDispatcher) else k)(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kernel, name)


def njit(*args: Any, native: str | None = None, **options: Any) -> Any:
    """``numba.njit``'s decorator forms (``@njit``, ``@njit(**options)``), lazily; with
    ``native="name"`` a :class:`NativeFirst` around the kernel."""
    if args and callable(args[0]) and len(args) == 1 and not options and native is None:
        return _decorate(args[0], {})
    if args:
        raise TypeError("lazy njit takes keyword options only (no signatures)")

    def deco(f: Callable[..., Any]) -> Any:
        kernel = _decorate(f, options)
        return kernel if native is None else NativeFirst(native, kernel)

    return deco


def _decorate(f: Callable[..., Any], options: dict[str, Any]) -> Any:
    with _LOCK:
        if _REAL:
            return _REAL[0](**options)(f)
        if "numba" in sys.modules:  # imported by someone else: no reason to wait
            materialize()
            return _REAL[0](**options)(f)
        lazy = LazyDispatcher(f, options)
        _PENDING.append(lazy)
        return lazy
