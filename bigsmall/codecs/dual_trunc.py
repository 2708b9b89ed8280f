"""The ``.bsd`` v2 exact code: the original coded with a value model *truncated to its INT4 bin*.

Pure (bytes and arrays in and out); the v1 code and the fast code live in ``codecs/dual.py``.
Why this model (``benchmarks/dual_study.py``, docs/dual.md): the INT4 code already says which bin
``[lo + (q - 1/2) s, lo + (q + 1/2) s]`` a weight lies in, so the exact member should cost only
``-log2 P(w | bin) = -log2 P(w) / P(bin)`` under a good standalone model of the values. v1 coded
a position in the bin nearly flat in key space; this one learns, per block, how the values are
spread over the dtype's (sign, exponent, top 2 mantissa bits) *classes* and renormalises that
density over each bin (the study's "truncated" model).

Per weight, with ``key`` the ordered key (bit pattern mapped so that integer order is value
order; for F32 its top 16 bits, the low 16 stored raw, each row's without the trailing zero bits
all its weights share, as the .bs codec's row shifts) and ``[ka, kb]`` the keys of its bin:

* every key of class ``c`` weighs ``W[c]`` (learned from the block, stored as u8 levels
  ``2^(i/4)``, zstd-coded);
  the bin's mass is ``M = sum of its keys' weights + 1`` (the 1: an escape for a weight outside
  its bin, whose key is then stored raw);
* the symbol ``[CW(k) - CW(ka), + W)`` of ``M`` is coded with rANS at precision 2^31
  (``S(v) = floor(v 2^31 / M)``, every interval non-empty since ``M <= 2^31``), 63-bit states,
  32-bit renormalisation, ``LANES`` states interleaved by element over one word stream.

The decoder finds the key from the slot by a binary search over the bin's classes and one
division: no per-element Python, no table of the bin's keys. Chunk layout (little-endian)::

    u32 T | T bytes zstd(tables) | u32 E | E x u16 escaped keys | F32: the low halves (below)
    | u64 x_0 .. x_{LANES-1} | u32 S | S x u32 words

Tables: per context ``0..NCTX-1`` (one): u16 first class, u16 end class, then ``end - first``
u8 levels (0: absent class). Any damage raises ``IntegrityError``: ranges checked before the kernels,
the kernels' reads bounded, every final state must equal the encoder's initial 2^31.
"""

from __future__ import annotations

import struct
import sys

import numpy as np
import zstandard
from numba import njit

from .. import native
from ..container.format import zstd_decompress
from ..errors import IntegrityError
from . import dual as v1

LANES = 4
NCTX = 1  # one table a block: contexts (scale exponent, bin occupancy) measured worse, docs/dual.md
WMAX = (1 << 15) - 1
LEVELS = 62  # stored weight levels: 0 (absent) and 2^(i/4), i < 61 (<= 2^15)
PREC = 31
J = 2  # mantissa bits kept in a class beside the sign and exponent
_LE = sys.byteorder == "little"  # (a numba compile-time constant)
_MANT = {"BF16": 7, "F16": 10, "F32": 7}  # F32: the top 16 bits of its key, a bf16-like key
_U32 = struct.Struct("<I")


def _shift(dtype: str) -> int:
    return _MANT[dtype] - J


@njit(cache=True, nogil=True)
def _keys16(bits, wide):  # type: ignore[no-untyped-def]
    """Ordered 16-bit keys (F32: of the key's top half), and the bits' low halves (F32 only)."""
    n = bits.size
    out = np.empty(n, dtype=np.int32)
    low = np.empty(n if wide else 0, dtype=np.uint16)
    for t in range(n):
        b = np.int64(bits[t])
        if wide:
            k = (~b & 0xFFFFFFFF) if b & 0x80000000 else (b | 0x80000000)
            out[t] = np.int32(k >> 16)
            low[t] = np.uint16(b & 0xFFFF)  # the bits' own low half (its trailing zeros: _pack_low)
        else:
            out[t] = np.int32((~b & 0xFFFF) if b & 0x8000 else (b | 0x8000))
    return out, low


@njit(cache=True, nogil=True)
def _count(keys, q, kat, kbt, cols, groups, sh, counts):  # type: ignore[no-untyped-def]
    """Per class the block's in-bin weights (``kat``/``kbt``: flat, 16 per group)."""
    t = 0
    for r in range(keys.size // cols):
        for c in range(cols):
            bi = ((r * groups + (c >> 7)) << 4) + q[t]
            k = keys[t]
            if kat[bi] <= k <= kbt[bi]:
                counts[k >> sh] += 1
            t += 1


@njit(cache=True, nogil=True)
def _cumulative(W, sh):  # type: ignore[no-untyped-def]
    """CC[c]: the weight of every key of the classes below ``c``."""
    cc = np.zeros(W.size + 1, dtype=np.int64)
    for c in range(W.size):
        cc[c + 1] = cc[c] + (np.int64(W[c]) << sh)
    return cc


@njit(cache=True, nogil=True, inline="always")
def _cw(cc, W, k, sh):  # type: ignore[no-untyped-def]
    c = k >> sh
    if c >= W.size:
        return cc[W.size]
    return cc[c] + np.int64(k - (c << sh)) * np.int64(W[c])


@njit(cache=True, nogil=True)
def _bins(kat, kbt, cc, W, sh):  # type: ignore[no-untyped-def]
    """Per bin: CW(ka) and its mass M (+1: the escape); a bin without a value: only the escape."""
    base = np.zeros(kat.size, dtype=np.int64)
    mass = np.ones(kat.size, dtype=np.int64)
    for i in range(kat.size):
        if kbt[i] >= kat[i]:
            base[i] = _cw(cc, W, kat[i], sh)
            mass[i] = _cw(cc, W, kbt[i] + 1, sh) - base[i] + 1
    return base, mass


@njit(cache=True, nogil=True, inline="always")
def _scaled(v, m, r):  # type: ignore[no-untyped-def]
    """``(v << PREC) // m`` (``0 <= v <= m <= 2^31``) from ``r = 2^PREC / m`` in float64: its
    error is far below one, so one step of integer correction makes it exact."""
    a = np.int64(v * r)
    t = v << PREC
    if a * m > t:
        a -= 1
    elif (a + 1) * m <= t:
        a += 1
    return a


@njit(cache=True, nogil=True)
def _encode(keys, q, kat, kbt, base, mass, W, cc, cols, groups, sh):  # type: ignore[no-untyped-def]
    n = keys.size
    esc = np.empty(n, dtype=np.uint16)
    ne = 0
    lo_s = np.empty(n, dtype=np.int64)  # scaled start and frequency of every symbol
    fr_s = np.empty(n, dtype=np.int64)
    t = 0
    for r in range(n // cols):
        for c in range(cols):
            bi = ((r * groups + (c >> 7)) << 4) + q[t]
            k = keys[t]
            m = mass[bi]
            if kat[bi] <= k <= kbt[bi]:
                st = _cw(cc, W, k, sh) - base[bi]
                en = st + W[k >> sh]
            else:
                esc[ne] = np.uint16(k)
                ne += 1
                st = m - 1
                en = m
            a = (st << PREC) // m
            lo_s[t] = a
            fr_s[t] = ((en << PREC) // m) - a
            t += 1
    words = np.empty(n + 8, dtype=np.uint32)
    wp = words.size
    xs = np.full(LANES, np.uint64(1) << np.uint64(PREC), dtype=np.uint64)
    for t in range(n - 1, -1, -1):
        ln = t & (LANES - 1)
        x = xs[ln]
        f = np.uint64(fr_s[t])
        if x >= (f << np.uint64(32)):  # at most one word per element: ``words`` has room
            wp -= 1
            words[wp] = np.uint32(x & np.uint64(0xFFFFFFFF))
            x >>= np.uint64(32)
        x = ((x // f) << np.uint64(PREC)) + (x % f) + np.uint64(lo_s[t])
        xs[ln] = x
    return xs, words[wp:].copy(), esc[:ne].copy()


@njit(cache=True, nogil=True)
def _decode(xs0, words, esc, q, kat, kbt, base, mass, rinv, W, winv, cc, cols, groups, sh, out):  # type: ignore[no-untyped-def]
    """Keys of the block into ``out``; 0, or 1 when the streams do not decode (corrupt)."""
    xs = xs0.copy()
    n = out.size
    nw = words.size
    wp = 0
    ep = 0
    mask = (np.uint64(1) << np.uint64(PREC)) - np.uint64(1)
    low = np.uint64(1) << np.uint64(PREC)
    ncls = W.size
    t = 0
    for r in range(n // cols):
        for c in range(cols):
            bi = ((r * groups + (c >> 7)) << 4) + q[t]
            ln = t & (LANES - 1)
            x = xs[ln]
            m = mass[bi]
            slot = np.int64(x & mask)
            u = ((slot + 1) * m - 1) >> PREC
            if u == m - 1:
                if ep >= esc.size:
                    return 1
                k = np.int64(esc[ep])
                ep += 1
                st = m - 1
                en = m
            else:
                target = u + base[bi]
                lo = kat[bi] >> sh
                hi = kbt[bi] >> sh
                if lo < 0 or hi >= ncls:
                    return 1
                span = hi - lo + 1
                while span > 1:  # the largest class c in [lo, hi] with cc[c] <= target, branchless
                    half = span >> 1
                    mid = lo + half
                    lo = mid if cc[mid] <= target else lo
                    span -= half
                w = np.int64(W[lo])
                if w == 0:
                    return 1
                d = target - cc[lo]
                j = np.int64(d * winv[lo])  # d // w without a division: off by one at most
                if j * w > d:
                    j -= 1
                elif (j + 1) * w <= d:
                    j += 1
                k = (lo << sh) + j
                st = cc[lo] + (k - (lo << sh)) * w - base[bi]
                en = st + w
                if st > u or en <= u:
                    return 1
            a = _scaled(st, m, rinv[bi])
            f = _scaled(en, m, rinv[bi]) - a
            x = np.uint64(f) * (x >> np.uint64(PREC)) + np.uint64(slot - a)
            if x < low:
                if wp >= nw:
                    return 1
                x = (x << np.uint64(32)) | np.uint64(words[wp])
                wp += 1
            xs[ln] = x
            out[t] = k
            t += 1
    for ln in range(LANES):
        if xs[ln] != low:
            return 1
    if wp != nw or ep != esc.size:
        return 1
    return 0


@njit(cache=True, nogil=True)
def _unkey(keys, low, wide, out):  # type: ignore[no-untyped-def]
    """Bits from 16-bit keys (F32: the top half's, its low half from ``low``)."""
    for t in range(keys.size):
        k = np.int64(keys[t])
        top = (k ^ 0x8000) if k & 0x8000 else (~k & 0xFFFF)
        out[t] = (top << 16) | np.int64(low[t]) if wide else top


@njit(cache=True, nogil=True)
def _row_shifts(low, cols):  # type: ignore[no-untyped-def]
    """Per row, the trailing zero bits every low half of the row shares (16: all zero). A row
    stored from a narrower format (fp16, bf16) has them; the .bs codec drops them too."""
    rows = low.size // cols
    tz = np.empty(rows, dtype=np.uint8)
    for r in range(rows):
        acc = 0
        for c in range(cols):
            acc |= np.int64(low[r * cols + c])
        z = 0
        while z < 16 and not (acc >> z) & 1:
            z += 1
        tz[r] = z
    return tz


@njit(cache=True, nogil=True)
def _pack_low(low, cols, tz):  # type: ignore[no-untyped-def]
    """Low halves, each row's shifted right by its shift, in ``16 - shift`` bits, LSB first."""
    nbits = 0
    for r in range(tz.size):
        nbits += (16 - np.int64(tz[r])) * cols
    out = np.zeros((nbits + 7) // 8 + 8, dtype=np.uint8)
    acc = np.uint64(0)
    nb = 0
    pos = 0
    for r in range(tz.size):
        k = 16 - np.int64(tz[r])
        for c in range(cols):
            v = np.uint64(np.int64(low[r * cols + c]) >> tz[r])
            pos, acc, nb = v1.put_bits(out, pos, acc, nb, v, k)
    return out[:v1.flush_bits(out, pos, acc, nb)].copy()


@njit(cache=True, nogil=True)
def _unpack_low(buf, cols, tz, low):  # type: ignore[no-untyped-def]
    """Inverse of ``_pack_low``; 0, or 1 when ``buf`` is not exactly the packed bits."""
    acc = np.uint64(0)
    nb = 0
    pos = 0
    for r in range(tz.size):
        k = 16 - np.int64(tz[r])
        if k < 0:
            return 1
        if k == 16 and nb == 0:  # a full-width row at a byte boundary: little-endian u16s
            # (real fp32 rows share no trailing zero: the bit loop was ~3.7 ns a weight, half
            # of a .bsd fp32 exact decode)
            if pos + 2 * cols > buf.size:
                return 1
            if _LE:
                low[r * cols:(r + 1) * cols] = buf[pos:pos + 2 * cols].view(np.uint16)
            else:
                for c in range(cols):
                    low[r * cols + c] = np.uint16(np.int64(buf[pos + 2 * c]) | (np.int64(buf[pos + 2 * c + 1]) << 8))
            pos += 2 * cols
            continue
        for c in range(cols):
            while nb < k:
                if pos >= buf.size:
                    return 1
                acc |= np.uint64(buf[pos]) << np.uint64(nb)
                pos += 1
                nb += 8
            v = acc & ((np.uint64(1) << np.uint64(k)) - np.uint64(1))
            acc >>= np.uint64(k)
            nb -= k
            low[r * cols + c] = np.uint16(np.int64(v) << tz[r])
    if pos != buf.size or acc != np.uint64(0):
        return 1
    return 0


def _bin_keys(s16: np.ndarray, lo16: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    kat, kbt = v1._bin_tables(s16, lo16, dtype)
    if dtype == "F32":  # the top halves' range: every key of the bin lies in it
        kat, kbt = kat >> 16, kbt >> 16
    return np.ascontiguousarray(kat), np.ascontiguousarray(kbt)


def _levels(counts: np.ndarray, sh: int) -> np.ndarray:
    """Class counts -> stored levels (u8): 0 for an absent class, else ``1 + round(4 log2(w))``
    of the per-key weight ``w`` in ``[1, WMAX]`` (scaled per context): steps of 2^(1/4) cost
    < 0.01 bit a weight and make the tables a fraction of raw u16 weights."""
    dens = counts.astype(np.float64) / (1 << sh)
    top = dens.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.clip(dens * WMAX / np.where(top > 0, top, 1), 1, WMAX)
        lv = np.where(counts > 0, 1 + np.clip(np.rint(4 * np.log2(w)), 0, LEVELS - 2), 0)
    return lv.astype(np.uint8)


_LEVEL_W = np.concatenate([[0], np.minimum(np.rint(2.0 ** (np.arange(LEVELS - 1) / 4)), WMAX)]).astype(np.uint16)


def _pack_tables(lv: np.ndarray) -> bytes:
    parts = []
    for row in lv:
        nz = np.flatnonzero(row)
        a, b = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
        parts.append(np.array([a, b], "<u2").tobytes() + row[a:b].tobytes())
    return zstandard.ZstdCompressor(level=19).compress(b"".join(parts))


def _unpack_tables(data: bytes | memoryview, ncls: int) -> np.ndarray:
    """Stored tables -> per-key weights (NCTX, classes) u16."""
    raw = np.frombuffer(zstd_decompress(data, NCTX * (ncls + 4), "dual v2 tables"), np.uint8)
    lv = np.zeros((NCTX, ncls), dtype=np.uint8)
    pos = 0
    for x in range(NCTX):
        if pos + 4 > raw.size:
            raise IntegrityError("dual v2 chunk: tables truncated")
        a, b = (int(v) for v in raw[pos:pos + 4].view("<u2"))
        pos += 4
        if not (a <= b <= ncls) or pos + b - a > raw.size:
            raise IntegrityError("dual v2 chunk: a table's class range is invalid")
        lv[x, a:b] = raw[pos:pos + b - a]
        pos += b - a
    if pos != raw.size or int(lv.max(initial=0)) >= LEVELS:
        raise IntegrityError("dual v2 chunk: tables of the wrong size or level")
    return _LEVEL_W[lv]


def _low_bytes(low: np.ndarray, cols: int) -> bytes:
    """F32's low halves: ``u32 P | P bytes zstd(row shifts u8) | u32 B | B bytes packed``."""
    tz = _row_shifts(low, cols)
    shifts = zstandard.ZstdCompressor(level=19).compress(tz.tobytes())
    packed = _pack_low(low, cols, tz)
    return b"".join([_U32.pack(len(shifts)), shifts, _U32.pack(packed.size), packed.tobytes()])


def _setup(s16: np.ndarray, lo16: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    kat, kbt = _bin_keys(s16, lo16, dtype)
    return kat.ravel(), kbt.ravel()


def encode_exact(bits: np.ndarray, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray, dtype: str) -> bytes:
    """Raw bits of a block (uint16/uint32, (rows, cols)) coded given its fast code."""
    wide = dtype == "F32"
    sh = _shift(dtype)
    cols = q.shape[1]
    kat, kbt = _setup(s16, lo16, dtype)
    keys, low = _keys16(np.ascontiguousarray(bits).ravel(), wide)
    qf = np.ascontiguousarray(q).ravel()
    groups = s16.shape[1]
    counts = np.zeros((NCTX, 1 << (16 - sh)), dtype=np.int64)
    _count(keys, qf, kat, kbt, cols, groups, sh, counts[0])
    lv = _levels(counts, sh)
    W = _LEVEL_W[lv[0]]
    cc = _cumulative(W, sh)
    base, mass = _bins(kat, kbt, cc, W, sh)
    xs, words, esc = _encode(keys, qf, kat, kbt, base, mass, W, cc, cols, groups, sh)
    tab = _pack_tables(lv)
    return b"".join([_U32.pack(len(tab)), tab, _U32.pack(esc.size), esc.astype("<u2").tobytes(),
                     _low_bytes(low, cols) if wide else b"", xs.astype("<u8").tobytes(), _U32.pack(words.size),
                     words.astype("<u4").tobytes()])


def parse_chunk(data: bytes | memoryview, shape: tuple[int, ...], sh: int, wide: bool,
                streams: int = 0) -> tuple[np.ndarray, memoryview, np.ndarray, memoryview, memoryview]:
    """An exact chunk's parts (the layout v2 and v3 share): per-key class weights, escaped keys,
    F32's low halves, the lanes' states, the words (v2: ``u32 S | S words``; v3, ``streams`` = 4:
    ``u32 S_0 .. S_3`` then the lanes' words, returned with their counts in front). Damage raises
    ``IntegrityError``."""
    rows, cols = shape
    buf = memoryview(data).cast("B")
    take = v1._take
    head, pos = take(buf, 0, 4, "table length")
    tab, pos = take(buf, pos, _U32.unpack(head)[0], "tables")
    W = _unpack_tables(tab, 1 << (16 - sh))[0]
    head, pos = take(buf, pos, 4, "escape count")
    eb, pos = take(buf, pos, 2 * _U32.unpack(head)[0], "escapes")
    low = np.empty(0, dtype=np.uint16)
    if wide:
        low, pos = parse_low(buf, pos, rows, cols)
    xb, pos = take(buf, pos, 8 * LANES, "states")
    if streams:
        head, _ = take(buf, pos, 4 * streams, "word counts")
        total = sum(_U32.unpack(head[4 * i:4 * i + 4])[0] for i in range(streams))
        wb, pos = take(buf, pos, 4 * streams + 4 * total, "words")
    else:
        head, pos = take(buf, pos, 4, "word count")
        wb, pos = take(buf, pos, 4 * _U32.unpack(head)[0], "words")
    if pos != len(buf):
        raise IntegrityError("dual v2 chunk: trailing bytes")
    return W, eb, low, xb, wb


def parse_low(buf: memoryview, pos: int, rows: int, cols: int) -> tuple[np.ndarray, int]:
    """F32's low halves (``_low_bytes``) at ``pos``: (uint16 per weight, the position after)."""
    take = v1._take
    n = rows * cols
    low = np.empty(n, dtype=np.uint16)
    head, pos = take(buf, pos, 4, "row shifts length")
    sb, pos = take(buf, pos, _U32.unpack(head)[0], "row shifts")
    tz = np.frombuffer(zstd_decompress(sb, n // max(1, cols), "dual v2 row shifts"), np.uint8)
    head, pos = take(buf, pos, 4, "low halves length")
    lb, pos = take(buf, pos, _U32.unpack(head)[0], "low halves")
    if tz.size != rows or int(tz.max(initial=0)) > 16 or \
            _unpack_low(np.frombuffer(lb, np.uint8), cols, tz, low):
        raise IntegrityError("dual v2 chunk: low halves corrupt")
    return low, pos


def decode_exact(data: bytes | memoryview, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray,
                 dtype: str) -> np.ndarray:
    """Inverse of ``encode_exact``: the block's raw bits (uint16/uint32, flat)."""
    wide = dtype == "F32"
    sh = _shift(dtype)
    n = q.size
    W, eb, low, xb, wb = parse_chunk(data, q.shape, sh, wide)
    kat, kbt = _setup(s16, lo16, dtype)
    cc = _cumulative(W, sh)
    base, mass = _bins(kat, kbt, cc, W, sh)
    if int(mass.max(initial=1)) > (1 << PREC):
        raise IntegrityError("dual v2 chunk: a bin's mass exceeds the coder's precision")
    keys = np.empty(n, dtype=np.int32)
    rinv = float(1 << PREC) / mass
    winv = 1.0 / np.maximum(W, 1)
    nat = native.dual()
    kernel = nat.decode_exact if nat is not None else _decode
    if kernel(np.frombuffer(xb, "<u8").astype(np.uint64), np.frombuffer(wb, "<u4").astype(np.uint32),
               np.frombuffer(eb, "<u2").astype(np.uint16), np.ascontiguousarray(q).ravel(), kat, kbt,
               base, mass, rinv, W, winv, cc, q.shape[1], s16.shape[1], sh, keys):
        raise IntegrityError("dual stream corrupt: it does not decode")
    out = np.empty(n, dtype=np.uint32 if wide else np.uint16)
    _unkey(keys, low, wide, out)
    return out
