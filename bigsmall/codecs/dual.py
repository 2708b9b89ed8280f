"""The dual-fidelity code (``.bsd``): a tensor as an INT4 *fast* code plus the exact bits given it.

Pure: bytes and arrays in, bytes and arrays out (the file layout is ``container/dual_format.py``,
the I/O ``io/dual.py``). Why two codes of one tensor: the INT4 code is a function of the weights,
so the original coded *given* it costs only what the code does not already say; the file then
holds a lossy model that loads by reading ~a fifth of the bytes, and the original, for little
more than the lossless ``.bs`` (measured: ``benchmarks/bench_dual.py``; design study:
``benchmarks/dual_study.py``, docs/dual.md).

The fast code (the autopilot's fast mode, ``torch/fast.py``, bit for bit): groups of 128 along
the last dimension, fp16 minimum ``lo`` and scale ``s``, ``q = clip(rint((w - lo) / s), 0, 15)``.
Here: the quantizer, the scales' coding, the 1.0 fast chunk (codes rANS-coded in the context of
the bin that holds 0.0 in their group), the rANS stream with raw bits, and the bins' key ranges
``[ka, kb]`` (the dtype's values in ``[lo + (q - 1/2) s, lo + (q + 1/2) s]`` as *ordered keys*:
the bit pattern mapped so that integer order is value order), shared by both exact codes:
1.0's key-run code (``codecs/dual_keyrun.py``) and 2.0's truncated model
(``codecs/dual_trunc.py``; 2.0's fast chunk: ``codecs/dual_fast.py``). Every path is bit-exact
for every pattern: correctness never depends on the bin arithmetic, only on encoder and decoder
computing the same bins (they run this same code).
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard
from numba import njit

from ..container.format import zstd_decompress
from ..errors import IntegrityError

GROUP = 128  # the fast mode's group (plan.autopilot.GROUP; codecs may not import plan)
PB = 14  # rANS probability bits
M = 1 << PB
BLOCK_ELEMENTS = 1 << 20  # rows coded together: bounds the temporaries (~40 bytes an element)
WIDTH = {"BF16": 16, "F16": 16, "F32": 32}
QUANTIZABLE = tuple(WIDTH)
MAX_ABS = 6e4  # fp16 must hold the minimum and the scale (torch/fast.py: ``quantize``)
_U32 = struct.Struct("<I")


# ---------------------------------------------------------------- rANS with raw bits

@njit(cache=True, nogil=True, inline="always")
def put_bits(out, pos, acc, nb, v, k):  # type: ignore[no-untyped-def]
    """Append the ``k`` (< 32) low bits of ``v`` (uint64, no higher bits set) to an LSB-first
    bit stream: whole bytes to ``out[pos:]``; returns (pos, acc, nb)."""
    acc |= v << np.uint64(nb)
    nb += k
    while nb >= 8:
        out[pos] = np.uint8(acc & np.uint64(255))
        acc >>= np.uint64(8)
        nb -= 8
        pos += 1
    return pos, acc, nb


@njit(cache=True, nogil=True, inline="always")
def flush_bits(out, pos, acc, nb):  # type: ignore[no-untyped-def]
    """The last partial byte of a ``put_bits`` stream; returns its length."""
    if nb > 0:
        out[pos] = np.uint8(acc & np.uint64(255))
        pos += 1
    return pos


@njit(cache=True, nogil=True)
def _encode(sym, ctx, nraw, raw, freq, cum):  # type: ignore[no-untyped-def]
    n = sym.size
    bits = 0
    for t in range(n):
        bits += nraw[ctx[t], sym[t]]
    rbuf = np.zeros(bits // 8 + 9, dtype=np.uint8)
    acc = np.uint64(0)
    nb = 0
    pos = 0
    for t in range(n):
        k = nraw[ctx[t], sym[t]]
        if k > 0:
            v = np.uint64(raw[t]) & ((np.uint64(1) << np.uint64(k)) - np.uint64(1))
            pos, acc, nb = put_bits(rbuf, pos, acc, nb, v, k)
    pos = flush_bits(rbuf, pos, acc, nb)
    words = np.empty(n + 2, dtype=np.uint16)
    wp = n + 2
    x = np.uint64(1 << 16)
    for t in range(n - 1, -1, -1):
        c = ctx[t]
        s = sym[t]
        f = np.uint64(freq[c, s])
        if x >= (f << np.uint64(32 - PB)):
            wp -= 1
            words[wp] = np.uint16(x & np.uint64(0xFFFF))
            x >>= np.uint64(16)
        x = (x // f << np.uint64(PB)) + (x % f) + np.uint64(cum[c, s])
    wp -= 1
    words[wp] = np.uint16(x >> np.uint64(16))
    wp -= 1
    words[wp] = np.uint16(x & np.uint64(0xFFFF))
    return words[wp:].copy(), rbuf[:pos].copy()


@njit(cache=True, nogil=True, inline="always")
def _step(x, c, lut, freq, cum, words, wp):  # type: ignore[no-untyped-def]
    """One rANS decode step in context ``c``: (symbol, state, word position, ok)."""
    slot = x & np.uint64(M - 1)
    s = lut[c, slot]
    x = np.uint64(freq[c, s]) * (x >> np.uint64(PB)) + slot - np.uint64(cum[c, s])
    if x < np.uint64(1 << 16):
        if wp >= words.size:
            return s, x, wp, False
        x = (x << np.uint64(16)) | np.uint64(words[wp])
        wp += 1
    return s, x, wp, True


@njit(cache=True, nogil=True, inline="always")
def _bits(rbuf, rp, acc, nb, k):  # type: ignore[no-untyped-def]
    """``k`` (<= 32) raw bits, LSB-first: (value, read position, accumulator, bits held, ok)."""
    while nb < k:
        if rp >= rbuf.size:
            return np.uint64(0), rp, acc, nb, False
        acc |= np.uint64(rbuf[rp]) << np.uint64(nb)
        rp += 1
        nb += 8
    v = acc & ((np.uint64(1) << np.uint64(k)) - np.uint64(1))
    return v, rp, acc >> np.uint64(k), nb - k, True


@njit(cache=True, nogil=True)
def _decode(words, rbuf, ctx, nraw, freq, cum, lut, ok, sym, raw):  # type: ignore[no-untyped-def]
    """Fills ``sym``, ``raw``; returns 0, or 1 when the streams do not decode (corrupt)."""
    n = sym.size
    nw = words.size
    if nw < 2:
        return 1
    x = np.uint64(words[0]) | (np.uint64(words[1]) << np.uint64(16))
    wp = 2
    acc = np.uint64(0)
    nb = 0
    rp = 0
    for t in range(n):
        c = ctx[t]
        if not ok[c]:
            return 1
        s, x, wp, good = _step(x, c, lut, freq, cum, words, wp)
        if not good:
            return 1
        sym[t] = s
        v = np.uint64(0)
        if nraw[c, s] > 0:
            v, rp, acc, nb, good = _bits(rbuf, rp, acc, nb, nraw[c, s])
            if not good:
                return 1
        raw[t] = v
    if x != np.uint64(1 << 16) or wp != nw:
        return 1
    return 0


def _normalize(counts: np.ndarray) -> np.ndarray:
    """Counts (nctx, alpha) -> frequencies summing to ``M`` per used context (0 rows unused),
    every seen symbol at least 1."""
    out = np.zeros(counts.shape, dtype=np.int64)
    for c in np.flatnonzero(counts.sum(1)):
        row = counts[c].astype(np.float64)
        f = np.where(row > 0, np.maximum(1, np.floor(row * M / row.sum())), 0).astype(np.int64)
        f[int(np.argmax(f))] += M - int(f.sum())
        out[c] = f
    return out


def encode_stream(sym: np.ndarray, ctx: np.ndarray, nraw: np.ndarray, raw: np.ndarray,
                  nctx: int, alpha: int) -> bytes:
    """Symbols (each coded with the table of its context) + raw bits -> bytes:
    ``u32 table length, zstd(table u16[nctx, alpha]), u32 words, words u16, raw bits``."""
    counts = np.bincount(ctx.astype(np.int32, copy=False) * np.int32(alpha) + sym.astype(np.int32, copy=False),
                         minlength=nctx * alpha).reshape(nctx, alpha)
    freq = _normalize(counts)
    cum = np.concatenate([np.zeros((nctx, 1), np.int64), np.cumsum(freq, 1)[:, :-1]], 1)
    words, rbuf = _encode(sym.astype(np.int32, copy=False), ctx.astype(np.int32, copy=False),
                          nraw.astype(np.int64, copy=False), raw.astype(np.uint64, copy=False), freq, cum)
    table = zstandard.ZstdCompressor(level=19).compress(freq.astype("<u2").tobytes())
    return b"".join([_U32.pack(len(table)), table, _U32.pack(words.size), words.astype("<u2").tobytes(),
                     rbuf.tobytes()])


def _take(buf: memoryview, pos: int, n: int, what: str) -> tuple[memoryview, int]:
    if pos + n > len(buf):
        raise IntegrityError(f"dual stream truncated in its {what}")
    return buf[pos:pos + n], pos + n


def _parse_stream(data: bytes | memoryview, nctx: int, alpha: int,
                  with_lut: bool = True) -> tuple[np.ndarray, ...]:
    """(words, raw bytes, freq, cum, lut, ok) of a stream; ``ok[c]``: context ``c`` has a table
    (a row of zeros is an unused context; any other row must sum to one)."""
    buf = memoryview(data).cast("B")
    head, pos = _take(buf, 0, 4, "table length")
    tab, pos = _take(buf, pos, _U32.unpack(head)[0], "table")
    freq = np.frombuffer(zstd_decompress(tab, nctx * alpha * 2, "dual table"), "<u2")
    if freq.size != nctx * alpha:
        raise IntegrityError("dual stream: table of the wrong size")
    freq = freq.reshape(nctx, alpha).astype(np.int64)
    sums = freq.sum(1)
    if np.any((sums != 0) & (sums != M)):
        raise IntegrityError("dual stream: a probability table does not sum to one")
    head, pos = _take(buf, pos, 4, "word count")
    wb, pos = _take(buf, pos, 2 * _U32.unpack(head)[0], "words")
    words = np.frombuffer(wb, "<u2").astype(np.uint16)
    rbuf = np.frombuffer(buf[pos:], np.uint8)
    cum = np.concatenate([np.zeros((nctx, 1), np.int64), np.cumsum(freq, 1)[:, :-1]], 1)
    ok = sums == M
    if not with_lut:  # the C kernel searches ``cum`` instead
        return words, rbuf, freq, cum, np.zeros((0, M), np.uint8), ok
    lut = np.zeros((nctx, M), dtype=np.uint8)
    used = np.flatnonzero(ok)
    if used.size:  # every used row sums to M: one repeat fills them all
        lut[used] = np.repeat(np.tile(np.arange(alpha, dtype=np.uint8), used.size),
                              freq[used].ravel()).reshape(used.size, M)
    return words, rbuf, freq, cum, lut, ok


def decode_stream(data: bytes | memoryview, ctx: np.ndarray, nraw: np.ndarray, nctx: int,
                  alpha: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``encode_stream`` for ``ctx.size`` symbols (contexts in ``[0, nctx)``):
    (symbols, raw values). Any damage is an ``IntegrityError``: tables are checked before the
    kernel runs, the kernel's reads are bounded and its final state must return to the initial one."""
    words, rbuf, freq, cum, lut, ok = _parse_stream(data, nctx, alpha)
    sym = np.empty(ctx.size, dtype=np.int32)
    raw = np.empty(ctx.size, dtype=np.uint64)
    if _decode(words, rbuf, ctx.astype(np.int32), nraw.astype(np.int64), freq, cum, lut, ok, sym, raw):
        raise IntegrityError("dual stream corrupt: it does not decode")
    return sym, raw


# ---------------------------------------------------------------- the fast code

def as_float32(bits: np.ndarray, dtype: str) -> np.ndarray:
    """Raw bits of a BF16/F16/F32 tensor as float32 (exact: every such value is one)."""
    if dtype == "BF16":
        return (bits.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return bits.view({"F16": np.float16, "F32": np.float32}[dtype]).astype(np.float32)


def quantizable(bits: np.ndarray, dtype: str, shape: tuple[int, ...]) -> bool:
    """Whether the fast code holds this tensor: 2-D float, every value finite and within what
    fp16 scales and minimums hold (as ``torch/fast.py: quantize``); else it is stored exactly."""
    if dtype not in QUANTIZABLE or len(shape) != 2 or 0 in shape:
        return False
    flat = bits.reshape(-1)
    step = BLOCK_ELEMENTS
    for i in range(0, flat.size, step):
        x = as_float32(flat[i:i + step], dtype)
        if not np.all(np.isfinite(x)) or float(np.abs(x).max()) > MAX_ABS:
            return False
    return True


def block_rows(cols: int) -> int:
    return max(1, BLOCK_ELEMENTS // (-(-cols // GROUP) * GROUP))


def quantize_block(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 (rows, cols) -> codes uint8 (rows, cols), scale and minimum fp16 (rows, groups)."""
    rows, cols = w.shape
    groups = -(-cols // GROUP)
    pad = groups * GROUP - cols
    x = np.concatenate([w, np.repeat(w[:, -1:], pad, axis=1)], axis=1) if pad else w
    x = x.reshape(rows, groups, GROUP)
    lo16 = x.min(-1).astype(np.float16)
    s16 = ((x.max(-1) - lo16.astype(np.float32)) / np.float32(15)).astype(np.float16)
    s = s16.astype(np.float32)
    s = np.where(s > 0, s, np.float32(1))
    q = np.clip(np.rint((x - lo16.astype(np.float32)[..., None]) / s[..., None]), 0, 15).astype(np.uint8)
    return q.reshape(rows, -1)[:, :cols], s16, lo16


def dequantize_block(q: np.ndarray, s16: np.ndarray, lo16: np.ndarray) -> np.ndarray:
    """The fast code back as float32 (the fast mode's ``q * scale + minimum``)."""
    cols = q.shape[1]
    s = np.repeat(s16.astype(np.float32), GROUP, axis=1)[:, :cols]
    lo = np.repeat(lo16.astype(np.float32), GROUP, axis=1)[:, :cols]
    return q.astype(np.float32) * s + lo


def to_dtype_bits(x: np.ndarray, dtype: str) -> np.ndarray:
    """float32 -> raw bits of ``dtype``, rounded to nearest even (as torch's ``.to(dtype)``);
    finite inputs only (the dequantized fast code always is)."""
    if dtype == "F32":
        return x.view(np.uint32)
    if dtype == "F16":
        return x.astype(np.float16).view(np.uint16)
    u = x.view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)


def _zero_bin_groups(s16: np.ndarray, lo16: np.ndarray) -> np.ndarray:
    """The bin that holds 0.0, per group (rows, groups) int32."""
    s = s16.astype(np.float32)
    s = np.where(s > 0, s, np.float32(1))
    return np.clip(np.rint(-lo16.astype(np.float32) / s), 0, 15).astype(np.int32)


def _zero_bin(s16: np.ndarray, lo16: np.ndarray, cols: int) -> np.ndarray:
    """The bin that holds 0.0, per code (rows, cols)."""
    return np.repeat(_zero_bin_groups(s16, lo16), GROUP, axis=1)[:, :cols]


_NO_RAW16 = np.zeros((16 * 4, 16), dtype=np.int64)  # also the v2 fast chunk's 64 contexts


def side_bytes(s16: np.ndarray, lo16: np.ndarray) -> bytes:
    """Scales then minimums, high bytes then low bytes (the exponents compress, the rest
    barely), zstd-19; measured no better: deltas, a minimum predicted from its scale."""
    side16 = np.concatenate([s16.ravel(), lo16.ravel()]).astype("<f2").view(np.uint8).reshape(-1, 2)
    return zstandard.ZstdCompressor(level=19).compress(side16[:, 1].tobytes() + side16[:, 0].tobytes())


def read_side(buf: memoryview, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(scales, minimums, bytes used) of a fast chunk's ``u32 length | zstd`` side block."""
    groups = -(-cols // GROUP)
    head, pos = _take(buf, 0, 4, "side length")
    side, pos = _take(buf, pos, _U32.unpack(head)[0], "scales")
    sb = zstd_decompress(side, 4 * rows * groups, "dual scales")
    if len(sb) != 4 * rows * groups:
        raise IntegrityError("dual fast chunk: scales of the wrong size")
    planes = np.frombuffer(sb, np.uint8).reshape(2, -1)
    sm = np.stack([planes[1], planes[0]], axis=1).copy().view("<f2").ravel().astype(np.float16)
    return sm[:rows * groups].reshape(rows, groups), sm[rows * groups:].reshape(rows, groups), pos


def encode_fast(w: np.ndarray) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """float32 block -> (fast chunk bytes, codes, scales, minimums)."""
    q, s16, lo16 = quantize_block(w)
    side = side_bytes(s16, lo16)
    stream = encode_stream(q.ravel(), _zero_bin(s16, lo16, w.shape[1]).ravel(), _NO_RAW16,
                           np.zeros(1, np.uint64), 16, 16)  # no raw bits: the kernel never reads it
    return _U32.pack(len(side)) + side + stream, q, s16, lo16


def decode_fast(data: bytes | memoryview, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fast chunk -> (codes uint8 (rows, cols), scales, minimums fp16 (rows, groups))."""
    buf = memoryview(data).cast("B")
    s16, lo16, pos = read_side(buf, rows, cols)
    sym, _ = decode_stream(buf[pos:], _zero_bin(s16, lo16, cols).ravel(), _NO_RAW16, 16, 16)
    if sym.size and sym.max() > 15:
        raise IntegrityError("dual fast chunk: a code outside 0..15")
    return sym.astype(np.uint8).reshape(rows, cols), s16, lo16


# ---------------------------------------------------------------- the exact code given the fast one

def _key(bits: np.ndarray, width: int) -> np.ndarray:
    """Ordered key of raw bits (int64): integer order is value order, -0 just below +0."""
    b = bits.astype(np.int64)
    sign = np.int64(1) << (width - 1)
    mask = (np.int64(1) << width) - 1
    return np.where(b & sign, ~b & mask, b | sign)


def _unkey(key: np.ndarray, width: int) -> np.ndarray:
    sign = np.int64(1) << (width - 1)
    mask = (np.int64(1) << width) - 1
    k = key & mask
    return np.where(k & sign, k ^ sign, ~k & mask)


def _key_value(key: np.ndarray, dtype: str) -> np.ndarray:
    bits = _unkey(key, WIDTH[dtype])
    if dtype == "F32":
        return bits.astype(np.uint32).view(np.float32).astype(np.float64)
    return as_float32(bits.astype(np.uint16), dtype).astype(np.float64)


def _approx_key(v: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        if dtype == "F16":
            bits = v.astype(np.float16).view(np.uint16)
        elif dtype == "BF16":
            bits = (v.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        else:
            bits = v.astype(np.float32).view(np.uint32)
    return _key(bits, WIDTH[dtype])


def _limits(dtype: str) -> tuple[int, int]:
    width = WIDTH[dtype]
    top = {"BF16": 0x7F7F, "F16": 0x7BFF, "F32": 0x7F7FFFFF}[dtype]  # largest finite
    sign = 1 << (width - 1)
    return (~(top | sign)) & ((1 << width) - 1), top | sign


def _bin_tables(s16: np.ndarray, lo16: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """First and last key of every bin, (rows, groups, 16): a deterministic function of the
    fast code (the bin of code ``q``: ``lo + (q -+ 1/2) s``, clipped to the finite values)."""
    s = s16.astype(np.float64)[..., None]
    centre = lo16.astype(np.float64)[..., None] + np.arange(16, dtype=np.float64) * s
    a, b = centre - s / 2, centre + s / 2
    # the end bins hold no weight beyond the group's minimum / maximum (up to fp16 rounding of
    # the minimum and scale, well within s/32): only their inner halves, a bit saved per weight
    a[..., 0] = lo16.astype(np.float64) - s[..., 0] / 32
    b[..., 15] = centre[..., 15] + s[..., 0] / 32
    kmin, kmax = _limits(dtype)
    ka = np.clip(_approx_key(a, dtype), kmin, kmax)
    kb = np.clip(_approx_key(b, dtype), kmin, kmax)
    for _ in range(2):  # a key or two off, from the casts: step onto the bin's first / last value
        ka = np.where((_key_value(ka, dtype) < a) & (ka < kmax), ka + 1, ka)
        ka = np.where((ka > kmin) & (_key_value(ka - 1, dtype) >= a), ka - 1, ka)
        kb = np.where((_key_value(kb, dtype) > b) & (kb > kmin), kb - 1, kb)
        kb = np.where((kb < kmax) & (_key_value(kb + 1, dtype) <= b), kb + 1, kb)
    return np.ascontiguousarray(ka), np.ascontiguousarray(kb)
