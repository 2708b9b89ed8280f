"""Static rANS with per-element contexts, four independent lanes per chunk, as numba kernels.

Why rANS: static-table rANS codes each symbol within a few thousandths of a bit of its
information content (Huffman loses ~0.03 bit/symbol on the skewed exponent distributions of
weights, which is more than the whole gain of context modelling), and the table can change from
one element to the next for free, which is what context modelling needs.

Why four lanes over four *quarters* of a chunk: lane ``L`` codes elements
``[L*q, min(n, (L+1)*q))`` with ``q = ceil(n/4)``, with its own state, word stream and raw bits.
The decoder advances the four lanes in lock-step, so the CPU overlaps four independent dependency
chains without any per-element lane bookkeeping.

Per element: the exponent ``e`` is decoded with the table of its context
``rowctx[k // ncols] + colctx[k % ncols]`` (row cluster x column cluster), then (if ``mb`` > 0)
the top ``mb`` mantissa bits with the table of ``e``, from the same lane state. The other bits are
raw, packed LSB-first per lane, ``rbits - rshift[row]`` bits per element (rows whose low bits
are all zero drop them). An element is ``low | (e << mb | m) << p | high << (p + eb + mb)``.

State: 32-bit, interval [2^16, 2^32), 16-bit little-endian renormalisation words.

All kernels are pure functions of their arguments (``nogil=True``: the shell runs them on
threads; ``cache=True``: the CLI does not pay JIT time on each run).
"""

from __future__ import annotations

import numpy as np
from numba import njit

RANS_L = 1 << 16  # lower bound of the state interval [L, 2^32)
LANES = 4


@njit(nogil=True, cache=True)
def _raw_lane(values, k0, b, e, ncols, p, c, rshift):
    """The raw bits of elements [b, e) of the chunk, packed LSB-first: one lane's raw bytes."""
    n = e - b
    rbits = values.itemsize * 8 - c
    lowmask = np.uint64((1 << p) - 1)
    up = np.uint64(p + c)
    pp = np.uint64(p)
    raw = np.zeros((n * rbits + 7) // 8 + 8, dtype=np.uint8)
    rpos = 0
    if rbits > 0 and n > 0:
        acc = np.uint64(0)
        nb = 0
        i = (k0 + b) // ncols
        j = (k0 + b) - i * ncols
        rs = np.uint64(rshift[i])
        w = rbits - rshift[i]
        for t in range(b, e):
            v = np.uint64(values[t])
            r = ((v & lowmask) | ((v >> up) << pp)) >> rs
            acc |= r << np.uint64(nb)
            nb += w
            while nb >= 8:
                raw[rpos] = np.uint8(acc & np.uint64(0xFF))
                rpos += 1
                acc >>= np.uint64(8)
                nb -= 8
            j += 1
            if j == ncols:
                j = 0
                i += 1
                if t + 1 < e:
                    rs = np.uint64(rshift[i])
                    w = rbits - rshift[i]
        if nb > 0:
            raw[rpos] = np.uint8(acc & np.uint64(0xFF))
            rpos += 1
    return raw[:rpos]


@njit(nogil=True, cache=True)
def _rans_lane(values, k0, b, e, ncols, rowctx, colctx, freq, cum, pbits, mfreq, mcum, mrow,
               mpbits, p, eb, mb):
    """The rANS stream of elements [b, e) of the chunk, coded backwards: one lane's stream.

    Unsigned arithmetic: numba's signed ``//`` carries Python's floor-division sign fix-ups,
    and the state is never negative (this alone made the encoder ~1.5x faster)."""
    n = e - b
    words = np.empty(2 * n + 4, dtype=np.uint16)
    nw = 0
    x = np.uint64(RANS_L)
    xmax_a = np.uint64((RANS_L >> pbits) << 16)
    xmax_b = np.uint64((RANS_L >> mpbits) << 16)
    emask = np.uint64((1 << eb) - 1)
    mmask = np.uint64((1 << mb) - 1)
    pp = np.uint64(p)
    sh_e = np.uint64(p + mb)
    sa = np.uint64(pbits)
    sb = np.uint64(mpbits)
    s16 = np.uint64(16)
    m16 = np.uint64(0xFFFF)
    if n > 0:
        k = k0 + e - 1
        i = k // ncols
        j = k - i * ncols
        for t in range(e - 1, b - 1, -1):
            v = np.uint64(values[t])
            ex = np.int64((v >> sh_e) & emask)
            if mb > 0:
                m = np.int64((v >> pp) & mmask)
                row = mrow[ex]
                f = np.uint64(mfreq[row, m])
                if x >= xmax_b * f:
                    words[nw] = np.uint16(x & m16)
                    nw += 1
                    x >>= s16
                q = x // f
                x = (q << sb) + (x - q * f) + np.uint64(mcum[row, m])
            ctx = rowctx[i] + colctx[j]
            f = np.uint64(freq[ctx, ex])
            if x >= xmax_a * f:
                words[nw] = np.uint16(x & m16)
                nw += 1
                x >>= s16
            q = x // f
            x = (q << sa) + (x - q * f) + np.uint64(cum[ctx, ex])
            j -= 1
            if j < 0:
                j = ncols - 1
                i -= 1
    out = np.empty(4 + nw * 2, dtype=np.uint8)
    out[0] = np.uint8(x & np.uint64(0xFF))
    out[1] = np.uint8((x >> np.uint64(8)) & np.uint64(0xFF))
    out[2] = np.uint8((x >> np.uint64(16)) & np.uint64(0xFF))
    out[3] = np.uint8((x >> np.uint64(24)) & np.uint64(0xFF))
    for w in range(nw):
        word = words[nw - 1 - w]
        out[4 + 2 * w] = word & 0xFF
        out[5 + 2 * w] = word >> 8
    return out


@njit(nogil=True, cache=True)
def encode_chunk(values, k0, ncols, rowctx, colctx, freq, cum, pbits, mfreq, mcum, mrow, mpbits,
                 p, eb, mb, rshift):
    """Code one chunk: header (4 stream lengths, 4 raw lengths, u32 LE), streams, raws."""
    n = values.shape[0]
    q = (n + LANES - 1) // LANES
    streams = []
    raws = []
    total = 32
    for ln in range(LANES):
        b = min(n, ln * q)
        e = min(n, (ln + 1) * q)
        st = _rans_lane(values, k0, b, e, ncols, rowctx, colctx, freq, cum, pbits, mfreq, mcum,
                        mrow, mpbits, p, eb, mb)
        rw = _raw_lane(values, k0, b, e, ncols, p, eb + mb, rshift)
        streams.append(st)
        raws.append(rw)
        total += st.shape[0] + rw.shape[0]
    out = np.empty(total, dtype=np.uint8)
    pos = 32
    for ln in range(LANES):
        for part, slot in ((streams[ln], ln), (raws[ln], ln + 4)):
            size = part.shape[0]
            out[4 * slot] = size & 0xFF
            out[4 * slot + 1] = (size >> 8) & 0xFF
            out[4 * slot + 2] = (size >> 16) & 0xFF
            out[4 * slot + 3] = (size >> 24) & 0xFF
    for ln in range(LANES):
        s = streams[ln]
        out[pos : pos + s.shape[0]] = s
        pos += s.shape[0]
    for ln in range(LANES):
        r = raws[ln]
        out[pos : pos + r.shape[0]] = r
        pos += r.shape[0]
    return out


def encoder_table(freq: np.ndarray, cum: np.ndarray, pbits: int) -> np.ndarray:
    """Per (row, symbol): what one rANS encode step needs, with the division replaced by an
    exact multiply-and-shift (``uint64[rows * alphabet, 4]``: limit, magic, shift, cum | cmpl << 32).

    Why: the state update needs ``x // f``; a hardware division is the slowest step of the
    encoder and serialises its dependency chain. For ``x < 2**32`` and ``2**(l-1) < f <= 2**l``,
    ``m = ceil(2**(32 + l) / f)`` gives ``x // f == (x + (x * (m - 2**32) >> 32)) >> l``
    exactly (Granlund & Montgomery 1994, Thm 4.2), and the encoder's state is always below
    ``2**32`` before the step. ``limit`` is the renormalisation threshold ``xmax * f``, and the
    step itself is ``x + cum + q * (2**pbits - f)``. Absent symbols (f == 0) get a zero row
    (never used: every coded symbol has f >= 1).
    """
    f = np.asarray(freq, dtype=np.int64).ravel()
    c = np.asarray(cum, dtype=np.int64).ravel()
    out = np.zeros((f.size, 4), dtype=np.uint64)
    ok = f > 0
    fo = f[ok]
    shift = np.zeros(fo.size, dtype=np.int64)
    while True:  # shift = ceil(log2 f), integer-only
        more = (np.int64(1) << shift) < fo
        if not more.any():
            break
        shift += more
    magic = -((-(np.int64(1) << (32 + shift))) // fo) - (np.int64(1) << 32)  # ceil(...) - 2**32
    out[ok, 0] = (((RANS_L >> pbits) << 16) * fo).astype(np.uint64)
    out[ok, 1] = magic.astype(np.uint64)
    out[ok, 2] = shift.astype(np.uint64)
    out[ok, 3] = (c[ok] | (((1 << pbits) - fo) << 32)).astype(np.uint64)
    return out


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
    """``_raw_lane`` with the same bytes, flushing 32 bits at a time instead of testing for a
    whole byte after every element (~2x faster on fp16/fp32, whose raw part is most of the
    chunk). Needs at most 32 raw bits per element; wider layouts use ``_raw_lane``."""
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


@njit(nogil=True, cache=True)
def encode_chunk_fast(values, k0, ncols, rowctx, colctx, etab, alpha, mtab, mrow, malpha, p, eb,
                      mb, rshift):
    """``encode_chunk`` with the same output bytes, ~4x faster: the four lanes are coded in
    lock-step (four independent dependency chains for the CPU to overlap instead of one at a
    time) and the division is a multiply-and-shift (``encoder_table``).

    ``etab`` / ``mtab``: ``encoder_table`` of the exponent tables (rows ``ctx * alpha + e``) and
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


from ._generated.decode4 import decode_chunk  # noqa: E402,F401  (generated by _generated/gen_decode.py)


def build_split_tables(freq: np.ndarray, cum: np.ndarray, pbits: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode tables in two small parts: slot -> symbol (uint8, 2^pbits per row) and
    symbol -> freq | cum << 16 (uint32, 256 per row).

    Why split: one packed uint32 entry per slot makes 4 KiB x 4 B per context, a megabyte for an
    8x8 grid, and the random slot lookups then miss the L2 cache; uint8 slots are a quarter of
    that and the per-symbol entries that are actually hit stay in L1.

    Plain numpy, not a numba kernel: it runs once per tensor on small tables, and loading one
    more cached kernel is a noticeable part of a short command's start-up. ``freq`` rows come
    from ``normalize_weights`` (each sums to ``2**pbits``, or is all zero).
    """
    freq = np.asarray(freq, dtype=np.int64)
    cum = np.asarray(cum, dtype=np.int64)
    nrow, a = freq.shape
    tsym = np.zeros(nrow << pbits, dtype=np.uint8)
    tfc = np.zeros((nrow, 256), dtype=np.uint32)
    tfc[:, :a] = (freq | (cum << 16)).astype(np.uint32)
    counts = freq.ravel()
    total = int(counts.sum())
    if total:
        # slot q of row r holds symbol s for cum[r, s] <= q < cum[r, s] + freq[r, s]
        start = ((np.arange(nrow, dtype=np.int64) << pbits)[:, None] + cum).ravel()
        first = np.cumsum(counts) - counts  # where each run starts in the repeated sequence
        pos = np.arange(total, dtype=np.int64) + np.repeat(start - first, counts)
        tsym[pos] = np.repeat(np.tile(np.arange(a, dtype=np.int64), nrow), counts).astype(np.uint8)
    return tsym, tfc.ravel()


def normalize_weights(weights: np.ndarray, prob_bits: int) -> np.ndarray:
    """Turn positive integer weights into frequencies summing to ``2**prob_bits``.

    Integer-only and deterministic (stable sorts on integer keys), because the decoder rebuilds
    the very same table from the stored weights: any platform difference here would be data loss.
    Every symbol with weight > 0 gets frequency >= 1. ``weights`` is ``int64[nctx, A]``.
    The reference: encoder and decoder run ``decode_tables._normalize`` (compiled, from the
    stored codes), which must equal this (``tests/test_decode_tables.py``).
    """
    w = np.asarray(weights, dtype=np.int64)
    target = 1 << prob_bits
    out = np.zeros_like(w)
    for ctx in range(w.shape[0]):
        row = w[ctx]
        present = np.flatnonzero(row > 0)
        if present.size == 0:
            continue
        if present.size > target:
            raise ValueError("more distinct symbols than table slots")
        wp = row[present]
        total = int(wp.sum())
        # proportional share, using Python ints where the product could exceed int64
        if total < (1 << 40):
            f = (wp * target) // total
            rem = (wp * target) % total
        else:
            f = np.array([(int(x) * target) // total for x in wp], dtype=np.int64)
            rem = np.array([(int(x) * target) % total for x in wp], dtype=np.int64)
        f = np.maximum(f, 1)
        diff = target - int(f.sum())
        if diff > 0:
            order = np.lexsort((present, -rem))  # largest remainder first, then lowest symbol
            k = 0
            while diff > 0:
                f[order[k % order.size]] += 1
                diff -= 1
                k += 1
        while diff < 0:
            # take from the largest frequencies (ties: lowest symbol) while keeping >= 1
            order = np.lexsort((present, -f))
            for idx in order:
                if diff == 0:
                    break
                if f[idx] > 1:
                    f[idx] -= 1
                    diff += 1
        out[ctx, present] = f
    return out


def cumulative(freq: np.ndarray) -> np.ndarray:
    """Exclusive prefix sums per context."""
    cum = np.zeros_like(freq)
    np.cumsum(freq[:, :-1], axis=1, out=cum[:, 1:])
    return cum
