"""The ``fieldp`` chunk encoder (spec §19.3): one pass, each lane writing its own stream into a
scratch buffer with a 64-bit bit accumulator and 8-byte stores, then the four streams
concatenated behind their lengths.

Why one pass: the first version sized the lanes in a pass of its own, then wrote byte by byte,
and found each element's matrix row by a division; it was ~20 % of a default-level fp32
compress. This one (row tracked incrementally, whole-word stores) writes the same bytes 2.5-2.9x
faster (CPU time, every chunk of the three reference models, interleaved A/B; outputs compared
byte for byte)."""

from __future__ import annotations

import numpy as np
from numba import njit

from .loads import st64

LANES = 4
MAXCODE = 15  # == prefix.LMAX: the longest code


@njit(nogil=True, cache=True)
def encode_chunk(values, k0, ncols, rowctx, colctx, w, lens, codes, p, eb, mb, rshift):
    """The chunk bytes of ``values`` (units ``k0 ..`` of the tensor, spec §19.3); an empty
    array if a unit's symbol has zero weight in its context (``w``: joint weights; a model
    that does not cover the data would be a bug)."""
    n = values.shape[0]
    c = eb + mb
    width = values.itemsize * 8
    rbits = width - c
    smask = (1 << c) - 1
    lowmask = (1 << p) - 1
    hishift = p + c
    if n == 0:
        return np.zeros(4 * LANES, np.uint8)
    # a lane's bytes: at most MAXCODE + rbits bits a unit, plus the last store's 8 bytes
    cap = (((n + LANES - 1) // LANES) * (MAXCODE + rbits) + 7) // 8 + 8
    tmp = np.empty(LANES * cap, np.uint8)
    acc = np.zeros(LANES, np.int64)  # bits not yet whole bytes (< 8 of them)
    nb = np.zeros(LANES, np.int64)
    pos = np.empty(LANES, np.int64)  # next byte of each lane in ``tmp``
    for lane in range(LANES):
        pos[lane] = lane * cap
    i = k0 // ncols
    j = k0 - i * ncols
    rc = rowctx[i]
    h = rshift[i]
    bw = rbits - h
    for t in range(n):
        lane = t & 3
        ctx = rc + colctx[j]
        v = np.int64(values[t])
        s = (v >> p) & smask
        if w[ctx, s] <= 0:
            return np.zeros(0, np.uint8)
        raw = ((v & lowmask) | ((v >> hishift) << p)) >> h
        b = nb[lane]
        a = acc[lane] | (codes[ctx, s] << b)  # < 8 + 15 + 24 bits: fits
        b += lens[ctx, s]
        a |= raw << b
        b += bw
        q = pos[lane]
        st64(tmp, q, a)  # bits above ``b`` are zero: the partial byte is zero-padded
        pos[lane] = q + (b >> 3)
        acc[lane] = a >> (b & ~7)
        nb[lane] = b & 7
        j += 1
        if j == ncols and t + 1 < n:
            j = 0
            i += 1
            rc = rowctx[i]
            h = rshift[i]
            bw = rbits - h
    size = np.empty(LANES, np.int64)
    for lane in range(LANES):
        size[lane] = pos[lane] - lane * cap + (1 if nb[lane] > 0 else 0)
    out = np.empty(4 * LANES + size.sum(), np.uint8)
    o = 4 * LANES
    for lane in range(LANES):
        for z in range(4):
            out[4 * lane + z] = (size[lane] >> (8 * z)) & 0xFF
        out[o : o + size[lane]] = tmp[lane * cap : lane * cap + size[lane]]
        o += size[lane]
    return out
