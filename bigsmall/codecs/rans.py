"""Interleaved static rANS with per-element contexts, as numba kernels.

Why rANS: static-table rANS codes each symbol within a few thousandths of a bit of its
information content (Huffman loses ~0.03 bit/symbol on the skewed exponent distributions of
weights, which is more than the whole gain of context modelling), and the per-symbol table can
change from one element to the next for free, which is what context modelling needs.

Layout of one coded stream: ``lanes`` 32-bit states (the encoder's final states, little-endian),
then 16-bit words read forwards. Element ``t`` of a chunk uses lane ``t % lanes``; independent
lanes give the CPU instruction-level parallelism.

The context of an element at flat index ``k`` of a tensor viewed as ``(nrows, ncols)`` is
``rowctx[k // ncols] + colctx[k % ncols]``: row clusters times column clusters.

Raw bits (the part of each element that is not coded) are packed LSB-first, ``rbits`` per element.
An element is rebuilt as ``low | sym << p | high << (p + c)`` where ``low``/``high`` are the raw
bits below and above the coded field.

All kernels are pure functions of their arguments (``nogil=True``: the shell runs them on
threads; ``cache=True``: the CLI does not pay JIT time on each run).
"""

from __future__ import annotations

import numpy as np
from numba import njit

RANS_L = 1 << 16  # lower bound of the state interval [L, 2^32)


@njit(nogil=True, cache=True)
def encode_chunk(
    values,  # uint8/16/32/64[n] elements of this chunk
    k0,  # flat index of values[0] in the tensor
    ncols,
    rowctx,  # int64[nrows]
    colctx,  # int64[ncols]
    freq,  # int64[nctx, 2^eb]   exponent tables per context
    cum,
    pbits,
    mfreq,  # int64[nexp, 2^mb]  mantissa-top tables per exponent row (see mrow)
    mcum,
    mrow,  # int64[2^eb] -> row of mfreq for that exponent (-1: absent)
    mpbits,
    lanes,
    p,
    eb,
    mb,
    rshift,  # int64[nrows]: low raw bits known to be zero in every element of that row
):
    """Code one chunk; returns (stream bytes, raw bytes)."""
    n = values.shape[0]
    c = eb + mb
    rbits = values.itemsize * 8 - c
    emask = (1 << eb) - 1
    mmask = (1 << mb) - 1
    lowmask = (1 << p) - 1
    # --- raw bits, forwards ---
    raw = np.zeros((n * rbits + 7) // 8 + 8, dtype=np.uint8)
    pos = 0
    if rbits > 0:
        acc = np.uint64(0)
        nb = 0
        i = k0 // ncols
        j = k0 - i * ncols
        rs = rshift[i] if n > 0 else 0
        for t in range(n):
            v = np.uint64(values[t])
            r = ((v & np.uint64(lowmask)) | ((v >> np.uint64(p + c)) << np.uint64(p))) >> np.uint64(rs)
            acc |= r << np.uint64(nb)
            nb += rbits - rs
            while nb >= 8:
                raw[pos] = np.uint8(acc & np.uint64(0xFF))
                pos += 1
                acc >>= np.uint64(8)
                nb -= 8
            j += 1
            if j == ncols:
                j = 0
                i += 1
                if t + 1 < n:
                    rs = rshift[i]
        if nb > 0:
            raw[pos] = np.uint8(acc & np.uint64(0xFF))
            pos += 1
    raw_len = pos
    # --- rANS, backwards: per element the mantissa symbol first, then the exponent ---
    words = np.empty(2 * n + 16, dtype=np.uint16)
    nw = 0
    states = np.full(lanes, RANS_L, dtype=np.int64)
    xmax_a = (RANS_L >> pbits) << 16
    xmax_b = (RANS_L >> mpbits) << 16
    if n > 0:
        k = k0 + n - 1
        i = k // ncols
        j = k - i * ncols
        for t in range(n - 1, -1, -1):
            lane = t % lanes
            v = np.uint64(values[t])
            e = np.int64((v >> np.uint64(p + mb)) & np.uint64(emask))
            x = states[lane]
            if mb > 0:
                m = np.int64((v >> np.uint64(p)) & np.uint64(mmask))
                row = mrow[e]
                f = mfreq[row, m]
                if x >= xmax_b * f:
                    words[nw] = np.uint16(x & 0xFFFF)
                    nw += 1
                    x >>= 16
                x = ((x // f) << mpbits) + (x % f) + mcum[row, m]
            ctx = rowctx[i] + colctx[j]
            f = freq[ctx, e]
            if x >= xmax_a * f:
                words[nw] = np.uint16(x & 0xFFFF)
                nw += 1
                x >>= 16
            x = ((x // f) << pbits) + (x % f) + cum[ctx, e]
            states[lane] = x
            j -= 1
            if j < 0:
                j = ncols - 1
                i -= 1
    out = np.empty(lanes * 4 + nw * 2, dtype=np.uint8)
    for ln in range(lanes):
        x = states[ln]
        out[4 * ln] = x & 0xFF
        out[4 * ln + 1] = (x >> 8) & 0xFF
        out[4 * ln + 2] = (x >> 16) & 0xFF
        out[4 * ln + 3] = (x >> 24) & 0xFF
    base = lanes * 4
    for w in range(nw):
        word = words[nw - 1 - w]
        out[base + 2 * w] = word & 0xFF
        out[base + 2 * w + 1] = word >> 8
    return out, raw[:raw_len]


@njit(nogil=True, cache=True)
def decode_chunk(
    out,  # uint8/16/32/64[n] destination (a view of the final buffer)
    k0,
    ncols,
    rowctx,
    colctx,
    dsym,  # uint16[nctx, 2^pbits]
    freq,
    cum,
    pbits,
    mdsym,  # uint16[nexp, 2^mpbits]
    mfreq,
    mcum,
    mrow,
    mpbits,
    lanes,
    p,
    eb,
    mb,
    rshift,
    stream,  # uint8[...]
    raw,  # uint8[...]
):
    """Decode one chunk into ``out``; returns the stream bytes consumed, or < 0 if corrupt."""
    n = out.shape[0]
    if n == 0:
        return 0
    if stream.shape[0] < lanes * 4:
        return -1
    c = eb + mb
    rbits = out.itemsize * 8 - c
    states = np.empty(lanes, dtype=np.int64)
    for ln in range(lanes):
        states[ln] = (
            np.int64(stream[4 * ln])
            | (np.int64(stream[4 * ln + 1]) << 8)
            | (np.int64(stream[4 * ln + 2]) << 16)
            | (np.int64(stream[4 * ln + 3]) << 24)
        )
    pos = lanes * 4
    slen = stream.shape[0]
    amask = (1 << pbits) - 1
    bmask = (1 << mpbits) - 1
    lowmask = np.uint64((1 << p) - 1)
    hishift = np.uint64(p + c)
    pshift = np.uint64(p)
    mbs = np.uint64(mb)
    acc = np.uint64(0)
    nb = 0
    rpos = 0
    rlen = raw.shape[0]
    i = k0 // ncols
    j = k0 - i * ncols
    rc = rowctx[i]
    rs = rshift[i]
    rb = rbits - rs
    rmask = np.uint64((1 << rb) - 1)
    used = 0
    for t in range(n):
        lane = t % lanes
        x = states[lane]
        ctx = rc + colctx[j]
        slot = x & amask
        e = np.int64(dsym[ctx, slot])
        x = freq[ctx, e] * (x >> pbits) + slot - cum[ctx, e]
        if x < RANS_L:
            if pos + 1 >= slen:
                return -1
            x = (x << 16) | np.int64(stream[pos]) | (np.int64(stream[pos + 1]) << 8)
            pos += 2
        sym = np.uint64(e)
        if mb > 0:
            row = mrow[e]
            if row < 0:
                return -3
            slot = x & bmask
            m = np.int64(mdsym[row, slot])
            x = mfreq[row, m] * (x >> mpbits) + slot - mcum[row, m]
            if x < RANS_L:
                if pos + 1 >= slen:
                    return -1
                x = (x << 16) | np.int64(stream[pos]) | (np.int64(stream[pos + 1]) << 8)
                pos += 2
            sym = (sym << mbs) | np.uint64(m)
        states[lane] = x
        v = sym << pshift
        if rb > 0:
            while nb < rb:
                if rpos < rlen:
                    acc |= np.uint64(raw[rpos]) << np.uint64(nb)
                rpos += 1
                nb += 8
            r = (acc & rmask) << np.uint64(rs)
            acc >>= np.uint64(rb)
            nb -= rb
            used += rb
            v |= (r & lowmask) | ((r >> pshift) << hishift)
        out[t] = v
        j += 1
        if j == ncols:
            j = 0
            i += 1
            if t + 1 < n:
                rc = rowctx[i]
                rs = rshift[i]
                rb = rbits - rs
                rmask = np.uint64((1 << rb) - 1)
    if (used + 7) // 8 != rlen:
        return -4
    for ln in range(lanes):
        if states[ln] != RANS_L:
            return -2
    return pos


@njit(nogil=True, cache=True)
def build_decode_table(freq, cum, prob_bits):
    """slot -> symbol tables, one row per context."""
    nctx = freq.shape[0]
    a = freq.shape[1]
    dsym = np.zeros((nctx, 1 << prob_bits), dtype=np.uint16)
    for ctx in range(nctx):
        for s in range(a):
            f = freq[ctx, s]
            c0 = cum[ctx, s]
            for q in range(c0, c0 + f):
                dsym[ctx, q] = s
    return dsym


def normalize_weights(weights: np.ndarray, prob_bits: int) -> np.ndarray:
    """Turn positive integer weights into frequencies summing to ``2**prob_bits``.

    Integer-only and deterministic (stable sorts on integer keys), because the decoder rebuilds
    the very same table from the stored weights: any platform difference here would be data loss.
    Every symbol with weight > 0 gets frequency >= 1. ``weights`` is ``int64[nctx, A]``.
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
