"""The ``.bsd`` 1.0 exact code (still decoded; 2.0 writes ``codecs/dual_trunc.py``): a weight's
ordered key coded as its position in the run of keys of its INT4 bin.

Pure. Per weight, given its bin's keys ``[ka, kb]`` (``dual._bin_tables``): in a bin that does
not straddle zero, the top 6 bits of the offset from ``ka`` as a symbol (context: the run
length's bit length and next 3 bits) and the rest raw; in a bin that straddles zero, the side and
the bit length of the offset from that side's outer edge (where the weights are dense), the rest
raw; a weight outside its bin is escaped with its raw bits. One rANS stream per chunk
(``dual.encode_stream``), plus a raw bit stream.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import IntegrityError
from .dual import WIDTH, _bin_tables, _bits, _parse_stream, _step, encode_stream

SUB = 3  # a plain bin's context: its run length's bit length and the next SUB bits
HI = 6  # a bin that does not straddle zero: its top HI offset bits are the symbol


@njit(cache=True, nogil=True, inline="always")
def _bitlen1(v):  # type: ignore[no-untyped-def]
    n = 0
    while v > 0:
        v >>= 1
        n += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def _model(ka, kb, zero, half):  # type: ignore[no-untyped-def]
    """(context, straddles zero, shift) of a weight whose bin runs over keys [ka, kb].
    Contexts: a plain bin's run length (bit length and next SUB bits), a straddling bin's bit
    length and which side is longer. Symbols: ``[0, 2 half)`` a straddling bin's side and offset
    bit length, ``[2 half, 2 half + 2^HI)`` a plain bin's top offset bits, then the escape."""
    n = kb - ka + 1
    if n < 1:
        n = 1
    span = _bitlen1(n - 1)
    if ka < zero and kb >= zero:
        big = 1 if (kb - zero) > (zero - 1 - ka) else 0
        return (1 << SUB) * half + span * 2 + big, True, 0
    second = ((n - 1) >> (span - 1 - SUB)) & ((1 << SUB) - 1) if span >= 1 + SUB else 0
    return (span << SUB) + second, False, span - HI if span > HI else 0


@njit(cache=True, nogil=True)
def _bin_models(kat, kbt, width):  # type: ignore[no-untyped-def]
    """Context and shift of every bin (16 per group), once, so the per-weight loops only look
    them up (the straddle flag is ``context >= (1 << SUB) * half``)."""
    zero = np.int64(1) << (width - 1)
    half = width + 1
    ctx = np.empty(kat.shape, dtype=np.int32)
    sh = np.empty(kat.shape, dtype=np.int32)
    a = kat.reshape(-1)
    b = kbt.reshape(-1)
    c = ctx.reshape(-1)
    d = sh.reshape(-1)
    for i in range(a.size):
        cx, _st, shift = _model(a[i], b[i], zero, half)
        c[i] = cx
        d[i] = shift
    return ctx, sh


@njit(cache=True, nogil=True)
def _exact_symbols(bits, q, kat, kbt, cxt, sht, cols, width, sym, ctx, raw):  # type: ignore[no-untyped-def]
    zero = np.int64(1) << (width - 1)
    mask = (np.int64(1) << width) - 1
    half = width + 1
    esc = 2 * half + (1 << HI)
    for t in range(bits.size):
        r = t // cols
        g = (t - r * cols) >> 7  # GROUP
        qq = q[t]
        ka = kat[r, g, qq]
        kb = kbt[r, g, qq]
        cx = cxt[r, g, qq]
        st = cx >= (1 << SUB) * half
        shift = sht[r, g, qq]
        ctx[t] = cx
        b = np.int64(bits[t])
        k = (~b & mask) if b & zero else (b | zero)
        if k < ka or k > kb:
            sym[t] = esc
            raw[t] = b
        elif st:
            side = 1 if k >= zero else 0
            d = kb - k if side else k - ka
            j = _bitlen1(d)
            sym[t] = side * half + j
            raw[t] = d - (np.int64(1) << (j - 1)) if j > 0 else 0
        else:
            d = k - ka
            sym[t] = 2 * half + (d >> shift)
            raw[t] = d & ((np.int64(1) << shift) - 1)


@njit(cache=True, nogil=True)
def _exact_decode(words, rbuf, q, kat, kbt, cxt, sht, cols, width, freq, cum, lut, ok, nraw, out):  # type: ignore[no-untyped-def]
    """rANS decode and reconstruction in one pass; 0, or 1 when the streams do not decode."""
    zero = np.int64(1) << (width - 1)
    mask = (np.int64(1) << width) - 1
    half = width + 1
    esc = 2 * half + (1 << HI)
    n = out.size
    nw = words.size
    if nw < 2:
        return 1
    x = np.uint64(words[0]) | (np.uint64(words[1]) << np.uint64(16))
    wp = 2
    acc = np.uint64(0)
    nb = 0
    rp = 0
    r = 0
    col = 0
    for t in range(n):
        g = col >> 7  # GROUP
        qq = q[t]
        ka = kat[r, g, qq]
        kb = kbt[r, g, qq]
        c = cxt[r, g, qq]
        shift = sht[r, g, qq]
        if not ok[c]:
            return 1
        s, x, wp, good = _step(x, c, lut, freq, cum, words, wp)
        if not good:
            return 1
        v = np.int64(0)
        if nraw[c, s] > 0:
            u, rp, acc, nb, good = _bits(rbuf, rp, acc, nb, nraw[c, s])
            if not good:
                return 1
            v = np.int64(u)
        if s == esc:
            b = v & mask
        else:
            if s >= 2 * half:
                key = ka + ((np.int64(s) - 2 * half) << shift) + v
            else:
                side = s >= half
                j = np.int64(s) - half if side else np.int64(s)
                d = (np.int64(1) << (j - 1)) + v if j > 0 else np.int64(0)
                key = kb - d if side else ka + d
            key &= mask
            b = (key ^ zero) if key & zero else (~key & mask)
        out[t] = b
        col += 1
        if col == cols:
            col = 0
            r += 1
    if x != np.uint64(1 << 16) or wp != nw:
        return 1
    return 0


def _nraw(dtype: str) -> np.ndarray:
    """Raw bits per (context, symbol)."""
    width = WIDTH[dtype]
    half = width + 1
    plain = (1 << SUB) * half
    out = np.zeros((plain + 2 * half, 2 * half + (1 << HI) + 1), dtype=np.int64)
    j = np.arange(2 * half) % half
    out[plain:, :2 * half] = np.maximum(j - 1, 0)
    span = np.arange(plain) >> SUB
    out[:plain, 2 * half:2 * half + (1 << HI)] = np.maximum(span - HI, 0)[:, None]
    out[:, -1] = width
    return out


def encode_exact(bits: np.ndarray, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray, dtype: str) -> bytes:
    """Raw bits of a block (uint16/uint32, (rows, cols)) coded given its fast code."""
    kat, kbt = _bin_tables(s16, lo16, dtype)
    width = WIDTH[dtype]
    n = bits.size
    sym, ctx, raw = np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, np.uint64)
    cxt, sht = _bin_models(kat, kbt, width)
    _exact_symbols(bits.ravel(), q.ravel(), kat, kbt, cxt, sht, q.shape[1], width, sym, ctx, raw)
    nraw = _nraw(dtype)
    return encode_stream(sym, ctx, nraw, raw, nraw.shape[0], nraw.shape[1])


def decode_exact(data: bytes | memoryview, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray,
                 dtype: str) -> np.ndarray:
    """Inverse of ``encode_exact``: the block's raw bits (uint16/uint32, flat)."""
    kat, kbt = _bin_tables(s16, lo16, dtype)
    width = WIDTH[dtype]
    nraw = _nraw(dtype)
    words, rbuf, freq, cum, lut, ok = _parse_stream(data, nraw.shape[0], nraw.shape[1])
    out = np.empty(q.size, dtype=np.uint32 if width == 32 else np.uint16)
    cxt, sht = _bin_models(kat, kbt, width)
    if _exact_decode(words, rbuf, np.ascontiguousarray(q).ravel(), kat, kbt, cxt, sht, q.shape[1], width, freq,
                     cum, lut, ok, nraw, out):
        raise IntegrityError("dual stream corrupt: it does not decode")
    return out
