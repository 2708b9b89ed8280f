"""The ``field8`` encoder kernel (numba; imported on first use by ``field8``)."""

from __future__ import annotations

import numpy as np
from numba import njit

LANES = 8
RL = 1 << 31


@njit(nogil=True, cache=True)
def encode_symbols(es, ms, efreq, ecum, mfreq, mcum, pbits, mpbits, hasm):
    """rANS-code one chunk's symbols (``es``: rows of the flat exponent tables, ``ms``: of the
    flat mantissa tables) in reverse decoder order; returns (decoder initial states, words in
    decoder order).

    Per group, last to first: the renormalisation of every lane, then the mantissa steps, then
    the exponent steps, each in reverse lane order (the decoder does the reverse). Plain 64-bit
    division: the states reach 2^63, beyond ``rans.encoder_table``'s multiply-and-shift."""
    n = es.shape[0]
    xs = np.full(LANES, RL, np.uint64)
    words = np.empty(n + 1, np.uint32)
    nw = 0
    m32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    pe = np.uint64(pbits)
    pm = np.uint64(mpbits)
    kshift = np.uint64(31 - pbits - (mpbits if hasm else 0))
    groups = (n + LANES - 1) // LANES
    for g in range(groups - 1, -1, -1):
        base = g * LANES
        hi = min(LANES, n - base)
        for ln in range(hi - 1, -1, -1):
            t = base + ln
            f = np.uint64(efreq[es[t]])
            if hasm:
                f *= np.uint64(mfreq[ms[t]])
            x = xs[ln]
            if (x >> s32) >= (f << kshift):
                words[nw] = np.uint32(x & m32)
                nw += 1
                xs[ln] = x >> s32
        if hasm:
            for ln in range(hi - 1, -1, -1):
                t = base + ln
                x = xs[ln]
                f = np.uint64(mfreq[ms[t]])
                xs[ln] = ((x // f) << pm) + (x % f) + np.uint64(mcum[ms[t]])
        for ln in range(hi - 1, -1, -1):
            t = base + ln
            x = xs[ln]
            f = np.uint64(efreq[es[t]])
            xs[ln] = ((x // f) << pe) + (x % f) + np.uint64(ecum[es[t]])
    out = np.empty(nw, np.uint32)
    for w in range(nw):
        out[w] = words[nw - 1 - w]
    return xs, out
