"""Unchecked array loads and stores for the decode kernel, as numba intrinsics.

Why: numba's ``a[i]`` with a signed index adds a negative-index fix-up (compare, add, select) to
every access, which sits on the critical path of the rANS state (slot -> symbol -> frequency ->
next state), and a little-endian u16/u64 read assembled from byte loads is several loads and
shifts that LLVM does not merge once each index carries its own fix-up. These intrinsics emit
one plain (unaligned where needed) load or store. The caller guarantees every index is in
bounds: the kernel either proves it from table sizes or clamps/tests it explicitly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_I64 = ir.IntType(64)


def _ptr(context: Any, builder: Any, aryty: Any, ary: Any, idx: Any) -> Any:
    arr = context.make_array(aryty)(context, builder, ary)
    return builder.gep(arr.data, [idx], inbounds=True)


@intrinsic
def ld(typingctx: Any, arr: Any, idx: Any) -> Any:
    """``arr[idx]`` zero-extended to int64 (arr of unsigned ints or int64), no index fix-up."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        v = builder.load(_ptr(context, builder, sig.args[0], args[0], args[1]))
        return builder.zext(v, _I64) if v.type.width < 64 else v

    return types.int64(arr, types.intp), codegen


def _load_le(context: Any, builder: Any, sig: Any, args: Any, width: int) -> Any:
    ity = ir.IntType(width)
    p = builder.bitcast(_ptr(context, builder, sig.args[0], args[0], args[1]), ity.as_pointer())
    v = builder.load(p, align=1)
    return builder.zext(v, _I64) if width < 64 else v


@intrinsic
def ld16(typingctx: Any, buf: Any, idx: Any) -> Any:
    """u16 little-endian at byte ``idx`` of a uint8 array (unaligned), as int64."""
    return types.int64(buf, types.intp), lambda c, b, s, a: _load_le(c, b, s, a, 16)


@intrinsic
def ld64(typingctx: Any, buf: Any, idx: Any) -> Any:
    """u64 little-endian at byte ``idx`` of a uint8 array (unaligned), as int64 bits."""
    return types.int64(buf, types.intp), lambda c, b, s, a: _load_le(c, b, s, a, 64)


@intrinsic
def st(typingctx: Any, arr: Any, idx: Any, val: Any) -> Any:
    """``arr[idx] = val`` (int64) truncated to the element width, no index fix-up."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        p = _ptr(context, builder, sig.args[0], args[0], args[1])
        ety = context.get_data_type(sig.args[0].dtype)
        v = builder.trunc(args[2], ety) if ety.width < 64 else args[2]
        builder.store(v, p)
        return context.get_dummy_value()

    return types.none(arr, types.intp, types.int64), codegen


@intrinsic
def ld32(typingctx: Any, buf: Any, idx: Any) -> Any:
    """u32 little-endian at byte ``idx`` of a uint8 array (unaligned), as int64."""
    return types.int64(buf, types.intp), lambda c, b, s, a: _load_le(c, b, s, a, 32)


@intrinsic
def st64(typingctx: Any, buf: Any, idx: Any, val: Any) -> Any:
    """Store ``val`` as u64 little-endian at byte ``idx`` of a uint8 array (unaligned): the
    encoders' bit writer (8 bytes at once; the caller leaves 8 bytes of room)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        p = builder.bitcast(_ptr(context, builder, sig.args[0], args[0], args[1]),
                            _I64.as_pointer())
        builder.store(args[2], p, align=1)
        return context.get_dummy_value()

    return types.none(buf, types.intp, types.int64), codegen


@njit(nogil=True, cache=True)
def tail64(buf: Any, idx: int) -> int:
    """Up to 8 bytes of ``buf`` from ``idx`` as a little-endian int64, zeros past either end:
    the bounds-checked load of the kernels' cold end-of-chunk paths (shared by all of them)."""
    a = 0
    for z in range(8):
        if 0 <= idx + z < buf.shape[0]:
            a |= np.int64(buf[idx + z]) << (8 * z)
    return a
