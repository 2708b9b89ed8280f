"""The fast rANS encoder: the same bytes as ``rans.encode_chunk``, ~4x faster.

The format, the lane layout and the reference encoder (``encode_chunk``, lane by lane with a
hardware division) are in ``rans.py``, with the tables: ``rans.encoder_table`` turns the
frequency tables into the division-free rows these kernels read. Here: the four lanes coded
in lock-step (``encode_chunk_fast``), the symbol rows they code (``_symbols``) and the raw bits
flushed 32 at a time (``_raw_lane_fast``, which ``field8`` uses too).
``property_tests/test_encoder_kernels.py`` checks these against the reference byte for byte.

All kernels are pure functions of their arguments (``nogil=True``, ``cache=True``).
"""

from __future__ import annotations

import numpy as np

from ..native.jit import njit  # numba imported on first use (native/jit.py)
from .rans import LANES, RANS_L, _raw_lane


@njit(nogil=True, cache=True)
def _put(x, tab, s, wbuf, lane, wp):
    """One rANS encode step of symbol row ``s`` of ``tab``; returns (state, word position)."""
    if x >= tab[s, 0]:
        wp -= 1
        wbuf[lane, wp] = np.uint16(x & np.uint64(0xFFFF))
        x >>= np.uint64(16)
    q = (x + ((x * tab[s, 1]) >> np.uint64(32))) >> tab[s, 2]
    cc = tab[s, 3]
    return x + (cc & np.uint64(0xFFFFFFFF)) + q * (cc >> np.uint64(32)), wp


@njit(nogil=True, cache=True)
def _raw_lane_fast(values, k0, b, e, ncols, p, c, rshift):
    """``rans._raw_lane`` with the same bytes, flushing 32 bits at a time instead of testing for a
    whole byte after every element (~2x faster on fp16/fp32, whose raw part is most of the
    chunk). Needs at most 32 raw bits per element; wider layouts use ``rans._raw_lane``."""
    n = e - b
    rbits = values.itemsize * 8 - c
    if rbits > 32:
        return _raw_lane(values, k0, b, e, ncols, p, c, rshift)
    raw = np.empty((n * rbits + 7) // 8 + 8, dtype=np.uint8)
    if rbits == 0 or n == 0:
        return raw[:0]
    lowmask = np.uint64((1 << p) - 1)
    up = np.uint64(p + c)
    pp = np.uint64(p)
    m8 = np.uint64(0xFF)
    acc = np.uint64(0)
    nb = np.uint64(0)
    rpos = 0
    t = b
    while t < e:
        k = k0 + t
        i = k // ncols
        seg = min(ncols - (k - i * ncols), e - t)
        rs = np.uint64(rshift[i])
        w = np.uint64(rbits - rshift[i])
        for u in range(t, t + seg):
            v = np.uint64(values[u])
            acc |= (((v & lowmask) | ((v >> up) << pp)) >> rs) << nb
            nb += w
            if nb >= 32:
                raw[rpos] = np.uint8(acc & m8)
                raw[rpos + 1] = np.uint8((acc >> np.uint64(8)) & m8)
                raw[rpos + 2] = np.uint8((acc >> np.uint64(16)) & m8)
                raw[rpos + 3] = np.uint8((acc >> np.uint64(24)) & m8)
                rpos += 4
                acc >>= np.uint64(32)
                nb -= np.uint64(32)
        t += seg
    while nb > 0:
        raw[rpos] = np.uint8(acc & m8)
        rpos += 1
        acc >>= np.uint64(8)
        nb = nb - np.uint64(8) if nb > 8 else np.uint64(0)
    return raw[:rpos]


@njit(nogil=True, cache=True)
def _symbols(values, k0, ncols, rowctx, colctx, alpha, mrow, malpha, p, eb, mb):
    """Per element: the exponent's row in the exponent encoder table (``ctx * alpha + e``) and
    the mantissa part's row in the mantissa table (``mrow[e] * malpha + m``).

    Row segment by row segment, so the inner loop has no row bookkeeping and reads the column
    contexts contiguously."""
    n = values.shape[0]
    es = np.empty(n, dtype=np.int32)
    ms = np.empty(n if mb > 0 else 0, dtype=np.int32)
    cbase = np.empty(ncols, dtype=np.int32)
    for j in range(ncols):
        cbase[j] = colctx[j] * alpha
    mbase = np.empty(mrow.shape[0], dtype=np.int32)
    for e in range(mrow.shape[0]):
        mbase[e] = mrow[e] * malpha
    sh_e = p + mb
    emask = (1 << eb) - 1
    mmask = (1 << mb) - 1
    t = 0
    while t < n:
        k = k0 + t
        i = k // ncols
        j0 = k - i * ncols
        seg = min(ncols - j0, n - t)
        rb = np.int32(rowctx[i] * alpha)
        if mb > 0:
            for u in range(seg):
                v = np.int64(values[t + u])
                ex = (v >> sh_e) & emask
                es[t + u] = rb + cbase[j0 + u] + ex
                ms[t + u] = mbase[ex] + ((v >> p) & mmask)
        else:
            for u in range(seg):
                v = np.int64(values[t + u])
                es[t + u] = rb + cbase[j0 + u] + ((v >> sh_e) & emask)
        t += seg
    return es, ms


@njit(nogil=True, cache=True)
def _lanes4(es, ms, etab, mtab, b0, b1, b2, b3, common, wbuf, x0, x1, x2, x3, w0, w1, w2, w3):
    """Steps ``common - 1`` down to 0 of the four lanes in lock-step (see ``encode_chunk_fast``);
    returns the four states and word positions.

    A function of its own: inside the bigger kernel LLVM allocates registers worse and the
    same loop ran at half the speed. The steps are written out per lane (a helper call per
    step keeps numba's reference counting of the arrays in the loop, which costs more than the
    step itself) and branch-free: the renormalisation test goes either way at random (~1 step
    in 6), and a mispredicted branch costs more than always storing the word and advancing the
    position by 0 or 1."""
    m16 = np.uint64(0xFFFF)
    m32 = np.uint64(0xFFFFFFFF)
    s4 = np.uint64(4)
    s32 = np.uint64(32)
    if ms.shape[0] > 0:
        for t in range(common - 1, -1, -1):
            s = ms[b0 + t]
            f = np.uint64(x0 >= mtab[s, 0])
            wbuf[0, w0 - 1] = np.uint16(x0 & m16)
            w0 -= np.int64(f)
            x0 >>= f << s4
            q = (x0 + ((x0 * mtab[s, 1]) >> s32)) >> mtab[s, 2]
            cc = mtab[s, 3]
            x0 += (cc & m32) + q * (cc >> s32)
            s = ms[b1 + t]
            f = np.uint64(x1 >= mtab[s, 0])
            wbuf[1, w1 - 1] = np.uint16(x1 & m16)
            w1 -= np.int64(f)
            x1 >>= f << s4
            q = (x1 + ((x1 * mtab[s, 1]) >> s32)) >> mtab[s, 2]
            cc = mtab[s, 3]
            x1 += (cc & m32) + q * (cc >> s32)
            s = ms[b2 + t]
            f = np.uint64(x2 >= mtab[s, 0])
            wbuf[2, w2 - 1] = np.uint16(x2 & m16)
            w2 -= np.int64(f)
            x2 >>= f << s4
            q = (x2 + ((x2 * mtab[s, 1]) >> s32)) >> mtab[s, 2]
            cc = mtab[s, 3]
            x2 += (cc & m32) + q * (cc >> s32)
            s = ms[b3 + t]
            f = np.uint64(x3 >= mtab[s, 0])
            wbuf[3, w3 - 1] = np.uint16(x3 & m16)
            w3 -= np.int64(f)
            x3 >>= f << s4
            q = (x3 + ((x3 * mtab[s, 1]) >> s32)) >> mtab[s, 2]
            cc = mtab[s, 3]
            x3 += (cc & m32) + q * (cc >> s32)
            s = es[b0 + t]
            f = np.uint64(x0 >= etab[s, 0])
            wbuf[0, w0 - 1] = np.uint16(x0 & m16)
            w0 -= np.int64(f)
            x0 >>= f << s4
            q = (x0 + ((x0 * etab[s, 1]) >> s32)) >> etab[s, 2]
            cc = etab[s, 3]
            x0 += (cc & m32) + q * (cc >> s32)
            s = es[b1 + t]
            f = np.uint64(x1 >= etab[s, 0])
            wbuf[1, w1 - 1] = np.uint16(x1 & m16)
            w1 -= np.int64(f)
            x1 >>= f << s4
            q = (x1 + ((x1 * etab[s, 1]) >> s32)) >> etab[s, 2]
            cc = etab[s, 3]
            x1 += (cc & m32) + q * (cc >> s32)
            s = es[b2 + t]
            f = np.uint64(x2 >= etab[s, 0])
            wbuf[2, w2 - 1] = np.uint16(x2 & m16)
            w2 -= np.int64(f)
            x2 >>= f << s4
            q = (x2 + ((x2 * etab[s, 1]) >> s32)) >> etab[s, 2]
            cc = etab[s, 3]
            x2 += (cc & m32) + q * (cc >> s32)
            s = es[b3 + t]
            f = np.uint64(x3 >= etab[s, 0])
            wbuf[3, w3 - 1] = np.uint16(x3 & m16)
            w3 -= np.int64(f)
            x3 >>= f << s4
            q = (x3 + ((x3 * etab[s, 1]) >> s32)) >> etab[s, 2]
            cc = etab[s, 3]
            x3 += (cc & m32) + q * (cc >> s32)
    else:
        for t in range(common - 1, -1, -1):
            s = es[b0 + t]
            f = np.uint64(x0 >= etab[s, 0])
            wbuf[0, w0 - 1] = np.uint16(x0 & m16)
            w0 -= np.int64(f)
            x0 >>= f << s4
            q = (x0 + ((x0 * etab[s, 1]) >> s32)) >> etab[s, 2]
            cc = etab[s, 3]
            x0 += (cc & m32) + q * (cc >> s32)
            s = es[b1 + t]
            f = np.uint64(x1 >= etab[s, 0])
            wbuf[1, w1 - 1] = np.uint16(x1 & m16)
            w1 -= np.int64(f)
            x1 >>= f << s4
            q = (x1 + ((x1 * etab[s, 1]) >> s32)) >> etab[s, 2]
            cc = etab[s, 3]
            x1 += (cc & m32) + q * (cc >> s32)
            s = es[b2 + t]
            f = np.uint64(x2 >= etab[s, 0])
            wbuf[2, w2 - 1] = np.uint16(x2 & m16)
            w2 -= np.int64(f)
            x2 >>= f << s4
            q = (x2 + ((x2 * etab[s, 1]) >> s32)) >> etab[s, 2]
            cc = etab[s, 3]
            x2 += (cc & m32) + q * (cc >> s32)
            s = es[b3 + t]
            f = np.uint64(x3 >= etab[s, 0])
            wbuf[3, w3 - 1] = np.uint16(x3 & m16)
            w3 -= np.int64(f)
            x3 >>= f << s4
            q = (x3 + ((x3 * etab[s, 1]) >> s32)) >> etab[s, 2]
            cc = etab[s, 3]
            x3 += (cc & m32) + q * (cc >> s32)
    return x0, x1, x2, x3, w0, w1, w2, w3


@njit(nogil=True, cache=True, native="encode_chunk_fast")  # C port: native/enc_rans4.h
def encode_chunk_fast(values, k0, ncols, rowctx, colctx, etab, alpha, mtab, mrow, malpha, p, eb,
                      mb, rshift):
    """``rans.encode_chunk`` with the same output bytes, ~4x faster: the four lanes are coded in
    lock-step (four independent dependency chains for the CPU to overlap instead of one at a
    time) and the division is a multiply-and-shift (``rans.encoder_table``).

    ``etab`` / ``mtab``: ``rans.encoder_table`` of the exponent tables (rows ``ctx * alpha + e``) and
    of the mantissa tables (rows ``mrow[e] * malpha + m``).
    """
    n = values.shape[0]
    q = (n + LANES - 1) // LANES
    es, ms = _symbols(values, k0, ncols, rowctx, colctx, alpha, mrow, malpha, p, eb, mb)
    cap = 2 * q + 2
    wbuf = np.empty((LANES, cap), dtype=np.uint16)
    b = np.empty(LANES, dtype=np.int64)
    ln = np.empty(LANES, dtype=np.int64)
    for L in range(LANES):
        b[L] = min(n, L * q)
        ln[L] = min(n, (L + 1) * q) - b[L]
    x0 = np.uint64(RANS_L)
    x1 = np.uint64(RANS_L)
    x2 = np.uint64(RANS_L)
    x3 = np.uint64(RANS_L)
    w0 = cap
    w1 = cap
    w2 = cap
    w3 = cap
    common = ln[3]  # every lane has at least this many elements; the longer ones go first
    for t in range(ln[0] - 1, common - 1, -1):
        k = b[0] + t
        if mb > 0:
            x0, w0 = _put(x0, mtab, ms[k], wbuf, 0, w0)
        x0, w0 = _put(x0, etab, es[k], wbuf, 0, w0)
    for t in range(ln[1] - 1, common - 1, -1):
        k = b[1] + t
        if mb > 0:
            x1, w1 = _put(x1, mtab, ms[k], wbuf, 1, w1)
        x1, w1 = _put(x1, etab, es[k], wbuf, 1, w1)
    for t in range(ln[2] - 1, common - 1, -1):
        k = b[2] + t
        if mb > 0:
            x2, w2 = _put(x2, mtab, ms[k], wbuf, 2, w2)
        x2, w2 = _put(x2, etab, es[k], wbuf, 2, w2)
    x0, x1, x2, x3, w0, w1, w2, w3 = _lanes4(es, ms, etab, mtab, b[0], b[1], b[2], b[3], common,
                                             wbuf, x0, x1, x2, x3, w0, w1, w2, w3)
    xs = (x0, x1, x2, x3)
    wps = (w0, w1, w2, w3)
    raws = []
    total = 32
    for L in range(LANES):
        rw = _raw_lane_fast(values, k0, b[L], b[L] + ln[L], ncols, p, eb + mb, rshift)
        raws.append(rw)
        total += 4 + 2 * (cap - wps[L]) + rw.shape[0]
    out = np.empty(total, dtype=np.uint8)
    pos = 32
    for L in range(LANES):
        size = 4 + 2 * (cap - wps[L])
        rsize = raws[L].shape[0]
        for z in range(4):
            out[4 * L + z] = (size >> (8 * z)) & 0xFF
            out[4 * (L + 4) + z] = (rsize >> (8 * z)) & 0xFF
        x = xs[L]
        for z in range(4):
            out[pos + z] = np.uint8((x >> np.uint64(8 * z)) & np.uint64(0xFF))
        pos += 4
        for w in range(wps[L], cap):
            word = wbuf[L, w]
            out[pos] = word & 0xFF
            out[pos + 1] = word >> 8
            pos += 2
    for L in range(LANES):
        r = raws[L]
        out[pos : pos + r.shape[0]] = r
        pos += r.shape[0]
    return out
