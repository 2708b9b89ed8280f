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

Here: the reference encoder (``encode_chunk``, lane by lane with a hardware division), the
tables (``normalize_weights``, ``cumulative``, ``encoder_table`` for the encoder,
``build_split_tables`` for the decoder) and the decode kernel (``decode_chunk``, generated). The
fast encoder that ``field`` runs (``encode_chunk_fast``, same bytes) is in ``rans_encode.py``.

All kernels are pure functions of their arguments (``nogil=True``: the shell runs them on
threads; ``cache=True``: the CLI does not pay JIT time on each run).
"""

from __future__ import annotations

import numpy as np

from ..native.jit import njit  # numba imported on first use (native/jit.py)

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
    exact multiply-and-shift (``uint64[rows * alphabet, 4]``: limit, magic, shift, cum | cmpl << 32):
    the rows ``rans_encode.encode_chunk_fast`` reads.

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


def __getattr__(name: str) -> object:
    """``rans.decode_chunk`` (``_generated/decode4.py``, generated by ``gen_decode.py``),
    imported when first asked for: its ``loads`` intrinsics import numba."""
    if name == "decode_chunk":
        from ._generated.decode4 import decode_chunk

        return decode_chunk
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
