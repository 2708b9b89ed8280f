"""The ``field8`` encoder kernel (numba; imported on first use by ``field8``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ..loads import ld

LANES = 8
RL = 1 << 31
MAX_FREQ = 1 << 12  # largest frequency of either table (``field.PROB_BITS``, ``MANT_PROB_BITS``)


@intrinsic
def _umulhi(typingctx: Any, a: Any, b: Any) -> Any:
    """High 64 bits of the 128-bit product of two uint64 (one ``mul`` instruction)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        i128 = ir.IntType(128)
        p = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        return builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), ir.IntType(64))

    return types.uint64(types.uint64, types.uint64), codegen


def _reciprocals() -> tuple[np.ndarray, np.ndarray]:
    """Per frequency ``f`` in ``1 .. MAX_FREQ``: (magic, shift) with
    ``x // f == umulhi(2 * x, magic) >> shift`` for every ``x < 2**63``.

    Why: the state update needs ``x // f``; a 64-bit hardware division is the slowest step of
    the encoder and serialises its dependency chain. With ``l = ceil(log2 f)`` and
    ``magic = ceil(2**(63 + l) / f)`` (< 2**64), ``floor(x * magic / 2**(63 + l)) == x // f``
    for ``0 <= x < 2**63`` (Granlund & Montgomery 1994, Thm 4.2: ``magic * f - 2**(63 + l) < f
    <= 2**l``), and ``umulhi(2 * x, magic) >> l`` is that quotient (``2 * x`` fits: the
    field8 states stay below ``2**63``). ``rans.encoder_table`` does the same for 32-bit states.
    Index 0 (an absent symbol, never coded) is left zero."""
    f = np.arange(1, MAX_FREQ + 1, dtype=np.uint64)
    shift = np.zeros(f.size, dtype=np.uint64)
    while True:  # shift = ceil(log2 f), integer-only
        more = (np.uint64(1) << shift) < f
        if not more.any():
            break
        shift += more.astype(np.uint64)
    # 2**(63 + l) = (Q * f + R) * 2**l with 2**63 = Q * f + R: quotient Q * 2**l + (R * 2**l) // f
    big = np.uint64(1 << 63)
    q, r = big // f, big % f
    rs = r << shift
    magic = (q << shift) + rs // f + (rs % f != 0).astype(np.uint64)
    return (np.concatenate([np.zeros(1, np.uint64), magic]),
            np.concatenate([np.zeros(1, np.uint64), shift]))


MAGIC, SHIFT = _reciprocals()


@njit(nogil=True, cache=True)
def encode_values(values, k0, ncols, rowctx, colctx, alpha, mrow, malpha, p, eb, mb, efreq, ecum,
                  mfreq, mcum, pbits, mpbits, magic, shift):
    """rANS-code one chunk (units ``k0 ..`` of the tensor) in reverse decoder order; returns
    (decoder initial states, words in decoder order).

    The symbols are ``rans_encode._symbols``' (exponent: row ``ctx * alpha + e`` of the flat exponent
    tables; mantissa part: row ``mrow[e] * malpha + m`` of the flat mantissa tables), computed
    on the fly instead of in two arrays first.

    Per group, last to first: the renormalisation of every lane, then the mantissa steps, then
    the exponent steps, each in reverse lane order (the decoder does the reverse). The lanes
    are independent and only renormalisations emit words, so coding each lane's three steps
    together (renormalise, mantissa, exponent; lanes in reverse order, i.e. units last to
    first) emits the very same words in the same order, with the lane's state in a register
    instead of three round trips through memory. The states reach 2^63, beyond
    ``rans.encoder_table``'s 32-bit multiply-and-shift: ``x // f`` is a 128-bit multiply by
    the reciprocal of ``f`` (``magic``/``shift`` = ``MAGIC``/``SHIFT``, indexed by the
    frequency) instead of a 64-bit division. Together ~1.4x faster than the phase-by-phase
    loop with divisions (which either change alone does not gain), same bytes. Table reads
    are ``loads.ld`` (no negative-index fix-up; ~1.3x): every index is in range by
    construction (``e < 2**eb == alpha``, ``m < 2**mb == malpha``, contexts below the table
    rows, frequencies ``<= MAX_FREQ``). The eight lane states are scalars, a group's eight
    steps written out by ``gen_encode.py`` (the state went through an array before): 11-23 % less CPU time, same
    bytes (median of 7 interleaved passes over every field8 chunk of MiniLM bf16 / fp32 and
    Whisper tiny fp16, ``level=fast``: 13.3 -> 10.3, 10.8 -> 9.6, 13.0 -> 10.8 ns a unit);
    its first compile takes ~3.8 s instead of ~2 s."""
    n = values.shape[0]
    hasm = mb > 0
    x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = np.uint64(RL)
    words = np.empty(n + 1, np.uint32)
    nw = 0
    cbase = np.empty(ncols, dtype=np.int64)
    for j in range(ncols):
        cbase[j] = colctx[j] * alpha
    mbase = np.empty(mrow.shape[0], dtype=np.int64)
    for e in range(mrow.shape[0]):
        mbase[e] = mrow[e] * malpha
    sh_e = p + mb
    emask = (1 << eb) - 1
    mmask = (1 << mb) - 1
    m32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    one = np.uint64(1)
    pe = np.uint64(pbits)
    pm = np.uint64(mpbits)
    kshift = np.uint64(31 - pbits - (mpbits if hasm else 0))
    if n > 0:
        k = k0 + n - 1
        i = k // ncols
        j = k - i * ncols
        rb = rowctx[i] * alpha
        # groups of LANES units, last to first; unit ``base + L`` is lane L's (only the first
        # group handled, the last of the chunk, can be partial)
        for g in range((n - 1) // LANES, -1, -1):
            base = g * LANES
            # >>> gen_encode: rans8_steps
            if base + 7 < n:
                v = ld(values, base + 7)
                ex = (v >> sh_e) & emask
                es = rb + ld(cbase, j) + ex
                ei = ld(efreq, es)
                ms = 0
                mi = 1
                if hasm:
                    ms = ld(mbase, ex) + ((v >> p) & mmask)
                    mi = ld(mfreq, ms)
                x = x7
                if (x >> s32) >= ((np.uint64(ei) * np.uint64(mi)) << kshift):
                    words[nw] = np.uint32(x & m32)
                    nw += 1
                    x = x >> s32
                if hasm:
                    q = _umulhi(x << one, np.uint64(ld(magic, mi))) >> np.uint64(ld(shift, mi))
                    x = (q << pm) + (x - q * np.uint64(mi)) + np.uint64(ld(mcum, ms))
                q = _umulhi(x << one, np.uint64(ld(magic, ei))) >> np.uint64(ld(shift, ei))
                x7 = (q << pe) + (x - q * np.uint64(ei)) + np.uint64(ld(ecum, es))
                j -= 1
                if j < 0 and base + 7 > 0:
                    j = ncols - 1
                    i -= 1
                    rb = rowctx[i] * alpha
            if base + 6 < n:
                v = ld(values, base + 6)
                ex = (v >> sh_e) & emask
                es = rb + ld(cbase, j) + ex
                ei = ld(efreq, es)
                ms = 0
                mi = 1
                if hasm:
                    ms = ld(mbase, ex) + ((v >> p) & mmask)
                    mi = ld(mfreq, ms)
                x = x6
                if (x >> s32) >= ((np.uint64(ei) * np.uint64(mi)) << kshift):
                    words[nw] = np.uint32(x & m32)
                    nw += 1
                    x = x >> s32
                if hasm:
                    q = _umulhi(x << one, np.uint64(ld(magic, mi))) >> np.uint64(ld(shift, mi))
                    x = (q << pm) + (x - q * np.uint64(mi)) + np.uint64(ld(mcum, ms))
                q = _umulhi(x << one, np.uint64(ld(magic, ei))) >> np.uint64(ld(shift, ei))
                x6 = (q << pe) + (x - q * np.uint64(ei)) + np.uint64(ld(ecum, es))
                j -= 1
                if j < 0 and base + 6 > 0:
                    j = ncols - 1
                    i -= 1
                    rb = rowctx[i] * alpha
            if base + 5 < n:
                v = ld(values, base + 5)
                ex = (v >> sh_e) & emask
                es = rb + ld(cbase, j) + ex
                ei = ld(efreq, es)
                ms = 0
                mi = 1
                if hasm:
                    ms = ld(mbase, ex) + ((v >> p) & mmask)
                    mi = ld(mfreq, ms)
                x = x5
                if (x >> s32) >= ((np.uint64(ei) * np.uint64(mi)) << kshift):
                    words[nw] = np.uint32(x & m32)
                    nw += 1
                    x = x >> s32
                if hasm:
                    q = _umulhi(x << one, np.uint64(ld(magic, mi))) >> np.uint64(ld(shift, mi))
                    x = (q << pm) + (x - q * np.uint64(mi)) + np.uint64(ld(mcum, ms))
                q = _umulhi(x << one, np.uint64(ld(magic, ei))) >> np.uint64(ld(shift, ei))
                x5 = (q << pe) + (x - q * np.uint64(ei)) + np.uint64(ld(ecum, es))
                j -= 1
                if j < 0 and base + 5 > 0:
                    j = ncols - 1
                    i -= 1
                    rb = rowctx[i] * alpha
            if base + 4 < n:
                v = ld(values, base + 4)
                ex = (v >> sh_e) & emask
                es = rb + ld(cbase, j) + ex
                ei = ld(efreq, es)
                ms = 0
                mi = 1
                if hasm:
                    ms = ld(mbase, ex) + ((v >> p) & mmask)
                    mi = ld(mfreq, ms)
                x = x4
                if (x >> s32) >= ((np.uint64(ei) * np.uint64(mi)) << kshift):
                    words[nw] = np.uint32(x & m32)
                    nw += 1
                    x = x >> s32
                if hasm:
                    q = _umulhi(x << one, np.uint64(ld(magic, mi))) >> np.uint64(ld(shift, mi))
                    x = (q << pm) + (x - q * np.uint64(mi)) + np.uint64(ld(mcum, ms))
                q = _umulhi(x << one, np.uint64(ld(magic, ei))) >> np.uint64(ld(shift, ei))
                x4 = (q << pe) + (x - q * np.uint64(ei)) + np.uint64(ld(ecum, es))
                j -= 1
                if j < 0 and base + 4 > 0:
                    j = ncols - 1
                    i -= 1
                    rb = rowctx[i] * alpha
            if base + 3 < n:
                v = ld(values, base + 3)
                ex = (v >> sh_e) & emask
                es = rb + ld(cbase, j) + ex
                ei = ld(efreq, es)
                ms = 0
                mi = 1
                if hasm:
                    ms = ld(mbase, ex) + ((v >> p) & mmask)
                    mi = ld(mfreq, ms)
                x = x3
                if (x >> s32) >= ((np.uint64(ei) * np.uint64(mi)) << kshift):
                    words[nw] = np.uint32(x & m32)
                    nw += 1
                    x = x >> s32
                if hasm:
                    q = _umulhi(x << one, np.uint64(ld(magic, mi))) >> np.uint64(ld(shift, mi))
                    x = (q << pm) + (x - q * np.uint64(mi)) + np.uint64(ld(mcum, ms))
                q = _umulhi(x << one, np.uint64(ld(magic, ei))) >> np.uint64(ld(shift, ei))
                x3 = (q << pe) + (x - q * np.uint64(ei)) + np.uint64(ld(ecum, es))
                j -= 1
                if j < 0 and base + 3 > 0:
                    j = ncols - 1
                    i -= 1
                    rb = rowctx[i] * alpha
            if base + 2 < n:
                v = ld(values, base + 2)
                ex = (v >> sh_e) & emask
                es = rb + ld(cbase, j) + ex
                ei = ld(efreq, es)
                ms = 0
                mi = 1
                if hasm:
                    ms = ld(mbase, ex) + ((v >> p) & mmask)
                    mi = ld(mfreq, ms)
                x = x2
                if (x >> s32) >= ((np.uint64(ei) * np.uint64(mi)) << kshift):
                    words[nw] = np.uint32(x & m32)
                    nw += 1
                    x = x >> s32
                if hasm:
                    q = _umulhi(x << one, np.uint64(ld(magic, mi))) >> np.uint64(ld(shift, mi))
                    x = (q << pm) + (x - q * np.uint64(mi)) + np.uint64(ld(mcum, ms))
                q = _umulhi(x << one, np.uint64(ld(magic, ei))) >> np.uint64(ld(shift, ei))
                x2 = (q << pe) + (x - q * np.uint64(ei)) + np.uint64(ld(ecum, es))
                j -= 1
                if j < 0 and base + 2 > 0:
                    j = ncols - 1
                    i -= 1
                    rb = rowctx[i] * alpha
            if base + 1 < n:
                v = ld(values, base + 1)
                ex = (v >> sh_e) & emask
                es = rb + ld(cbase, j) + ex
                ei = ld(efreq, es)
                ms = 0
                mi = 1
                if hasm:
                    ms = ld(mbase, ex) + ((v >> p) & mmask)
                    mi = ld(mfreq, ms)
                x = x1
                if (x >> s32) >= ((np.uint64(ei) * np.uint64(mi)) << kshift):
                    words[nw] = np.uint32(x & m32)
                    nw += 1
                    x = x >> s32
                if hasm:
                    q = _umulhi(x << one, np.uint64(ld(magic, mi))) >> np.uint64(ld(shift, mi))
                    x = (q << pm) + (x - q * np.uint64(mi)) + np.uint64(ld(mcum, ms))
                q = _umulhi(x << one, np.uint64(ld(magic, ei))) >> np.uint64(ld(shift, ei))
                x1 = (q << pe) + (x - q * np.uint64(ei)) + np.uint64(ld(ecum, es))
                j -= 1
                if j < 0 and base + 1 > 0:
                    j = ncols - 1
                    i -= 1
                    rb = rowctx[i] * alpha
            if base + 0 < n:
                v = ld(values, base + 0)
                ex = (v >> sh_e) & emask
                es = rb + ld(cbase, j) + ex
                ei = ld(efreq, es)
                ms = 0
                mi = 1
                if hasm:
                    ms = ld(mbase, ex) + ((v >> p) & mmask)
                    mi = ld(mfreq, ms)
                x = x0
                if (x >> s32) >= ((np.uint64(ei) * np.uint64(mi)) << kshift):
                    words[nw] = np.uint32(x & m32)
                    nw += 1
                    x = x >> s32
                if hasm:
                    q = _umulhi(x << one, np.uint64(ld(magic, mi))) >> np.uint64(ld(shift, mi))
                    x = (q << pm) + (x - q * np.uint64(mi)) + np.uint64(ld(mcum, ms))
                q = _umulhi(x << one, np.uint64(ld(magic, ei))) >> np.uint64(ld(shift, ei))
                x0 = (q << pe) + (x - q * np.uint64(ei)) + np.uint64(ld(ecum, es))
                j -= 1
                if j < 0 and base + 0 > 0:
                    j = ncols - 1
                    i -= 1
                    rb = rowctx[i] * alpha
            # <<< rans8_steps
    xs = np.empty(LANES, np.uint64)
    xs[0] = x0
    xs[1] = x1
    xs[2] = x2
    xs[3] = x3
    xs[4] = x4
    xs[5] = x5
    xs[6] = x6
    xs[7] = x7
    out = np.empty(nw, np.uint32)
    for w in range(nw):
        out[w] = words[nw - 1 - w]
    return xs, out
