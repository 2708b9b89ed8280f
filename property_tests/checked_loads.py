"""Bounds-checked stand-ins for ``bigsmall.codecs.loads`` and a builder that compiles a
generated decode kernel against them.

Why: the production kernels use unchecked load/store intrinsics on paths the kernel proves to
be in bounds. Rebuilding the same generated source with loads that raise ``IndexError`` turns
any flaw in those proofs into a test failure instead of a silent out-of-bounds read."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from numba import njit


@njit
def ld(arr, i):  # type: ignore[no-untyped-def]
    if i < 0 or i >= arr.shape[0]:
        raise IndexError("ld out of bounds")
    return np.int64(arr[i])


@njit
def ld16(buf, i):  # type: ignore[no-untyped-def]
    if i < 0 or i + 2 > buf.shape[0]:
        raise IndexError("ld16 out of bounds")
    return np.int64(buf[i]) | (np.int64(buf[i + 1]) << 8)


@njit
def ld32(buf, i):  # type: ignore[no-untyped-def]
    if i < 0 or i + 4 > buf.shape[0]:
        raise IndexError("ld32 out of bounds")
    a = 0
    for z in range(4):
        a |= np.int64(buf[i + z]) << (8 * z)
    return a


@njit
def ld64(buf, i):  # type: ignore[no-untyped-def]
    if i < 0 or i + 8 > buf.shape[0]:
        raise IndexError("ld64 out of bounds")
    a = 0
    for z in range(8):
        a |= np.int64(buf[i + z]) << (8 * z)
    return a


@njit
def st(out, i, v):  # type: ignore[no-untyped-def]
    if i < 0 or i >= out.shape[0]:
        raise IndexError("st out of bounds")
    out[i] = v


def checked_build(src: str, name: str) -> dict[str, Any]:
    """The namespace of generated kernel source ``src`` compiled with the checked loads (its
    ``from .loads import ...`` line dropped, numba's disk cache off)."""
    from bigsmall.codecs.loads import tail64  # already bounds-checked

    src = re.sub(r"^from \.+loads import .*$", "", src, flags=re.M).replace("cache=True", "cache=False")
    ns: dict[str, Any] = {"ld": ld, "ld16": ld16, "ld32": ld32, "ld64": ld64, "st": st, "_tail64": tail64}
    exec(compile(src, f"<bounds-checked {name}>", "exec"), ns)
    return ns
