"""The ``fieldp`` chunk encoder (spec §19.3): one pass to size the four lane streams, one to
write them, each lane with its own 64-bit bit accumulator."""

from __future__ import annotations

import numpy as np
from numba import njit

LANES = 4


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
    bits = np.zeros(LANES, np.int64)
    for t in range(n):
        k = k0 + t
        i = k // ncols
        ctx = rowctx[i] + colctx[k - i * ncols]
        s = (np.int64(values[t]) >> p) & smask
        if w[ctx, s] <= 0:
            return np.zeros(0, np.uint8)
        bits[t & 3] += lens[ctx, s] + rbits - rshift[i]
    size = (bits + 7) // 8
    total = 4 * LANES + size.sum()
    out = np.zeros(total, np.uint8)
    pos = np.zeros(LANES, np.int64)
    start = 4 * LANES
    for lane in range(LANES):
        for z in range(4):
            out[4 * lane + z] = (size[lane] >> (8 * z)) & 0xFF
        pos[lane] = start
        start += size[lane]
    acc = np.zeros(LANES, np.int64)
    nb = np.zeros(LANES, np.int64)
    for t in range(n):
        lane = t & 3
        k = k0 + t
        i = k // ncols
        ctx = rowctx[i] + colctx[k - i * ncols]
        v = np.int64(values[t])
        s = (v >> p) & smask
        h = rshift[i]
        raw = ((v & lowmask) | ((v >> hishift) << p)) >> h
        a = acc[lane] | (codes[ctx, s] << nb[lane])
        b = nb[lane] + lens[ctx, s]
        a |= raw << b
        b += rbits - h
        q = pos[lane]
        while b >= 8:
            out[q] = a & 0xFF
            q += 1
            a >>= 8
            b -= 8
        pos[lane] = q
        acc[lane] = a
        nb[lane] = b
    for lane in range(LANES):
        if nb[lane] > 0:
            out[pos[lane]] = acc[lane] & 0xFF
    return out
