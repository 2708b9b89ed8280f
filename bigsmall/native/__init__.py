"""The optional C decode kernels and the switch between them and the numba reference.

Why a layer of its own (below ``codecs``, above ``container`` in tests/test_layers_rule.py):
the codecs choose a kernel per call and must stay pure (no ``os``), while the choice depends
on the environment (``BIGSMALL_NATIVE``) and on whether the extension was built. This module
reads both once, at import, and the codecs only ask :func:`kernels`.

- ``BIGSMALL_NATIVE=0``: the numba kernels (the reference), whatever is built.
- otherwise: the C kernels (``_kernels.c``, built by setup.py when bigsmall is installed)
  when their extension imports, else numba.

The C kernels take the numba kernels' arguments and return their values, byte for byte
(``property_tests/test_native.py``); see README.md in this folder.
"""

from __future__ import annotations

import os
from types import ModuleType

ENV = "BIGSMALL_NATIVE"


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get(ENV, "").strip() == "0":
        return None, f"numba ({ENV}=0)"
    try:
        from . import _kernels
    except ImportError as exc:  # not built (no compiler at install), or built for another Python
        return None, f"numba (native extension not available: {exc})"
    return _kernels, f"native ({_kernels.isa()})"


_KERNELS, _STATUS = _load()


def kernels() -> ModuleType | None:
    """The C kernel module when it is built and not disabled, else None (use numba)."""
    return _KERNELS


def built() -> ModuleType | None:
    """The C kernel module if it is built, even when ``BIGSMALL_NATIVE=0`` disabled it for
    the codecs: what the property tests compare against the reference."""
    try:
        from . import _kernels
    except ImportError:
        return None
    return _kernels


def status() -> str:
    """Which decode kernels serve this process, in words (``native (avx2)``, ``numba (...)``)."""
    return _STATUS


def use(enabled: bool) -> None:
    """Switch this process's codecs to the C kernels (if built) or to numba: for benchmarks
    and tests that compare both in one process. The environment variable is not consulted."""
    global _KERNELS, _STATUS
    k = built() if enabled else None
    _KERNELS = k
    _STATUS = f"native ({k.isa()})" if k is not None else "numba (switched off by native.use)"
