"""The ``delta`` codec's compiled kernels (numba: the reference, and the fallback where the C
decoder ``bigsmall.native._delta`` is not built or ``BIGSMALL_NATIVE=0``).

Why a module of their own: ``delta.py`` holds the format and the model choices; these loops are
what the C port must match byte for byte (``property_tests/test_native_delta.py`` compares
them), so they read best side by side with nothing else around them. The format they implement
is described in ``delta.py``'s docstring and spec §21.
"""

from __future__ import annotations

import numpy as np

from ..native.jit import njit  # numba imported on first use (native/jit.py)
from .decode_tables import _read_rows

RANS_L = 1 << 16
LANES = 4  # interleaved rANS states per chunk of version 2 (a power of two)
LANES3 = 32  # version 3: as many as an AVX2 decoder keeps in flight (four vectors of 8)


@njit(nogil=True, cache=True)
def _mono(w, kind, top, mask):
    if kind == 2:
        if w & top:
            return (~w) & mask
        return w | top
    if kind == 1:
        return w ^ top
    return w


@njit(nogil=True, cache=True)
def _unmono(m, kind, top, mask):
    if kind == 2:
        if m & top:
            return m ^ top
        return (~m) & mask
    if kind == 1:
        return m ^ top
    return m


@njit(nogil=True, cache=True)
def _bitlen(z):
    n = 0
    while z:
        n += 1
        z >>= np.uint64(1)
    return n


@njit(nogil=True, cache=True)
def _zig(b, f, kind, top, mask):
    """The zig-zagged difference of the monotone images of base word ``b`` and word ``f``."""
    d = (_mono(f, kind, top, mask) - _mono(b, kind, top, mask)) & mask
    if d & top:
        return (((~d) & mask) << np.uint64(1)) + np.uint64(1)
    return d << np.uint64(1)


@njit(nogil=True, cache=True)
def _symbols(base, ft, wbits, kind, mbits, ebits, elo, nk):
    """Per element: its symbol and the exponent bucket of its base value (uint8 each)."""
    n = base.shape[0]
    sym = np.empty(n, np.uint8)
    ce = np.zeros(n, np.uint8)
    top = np.uint64(1) << np.uint64(wbits - 1)
    mask = np.uint64(0xFFFFFFFFFFFFFFFF) if wbits == 64 else (np.uint64(1) << np.uint64(wbits)) - np.uint64(1)
    emask = np.uint64((1 << ebits) - 1)
    for k in range(n):
        b = np.uint64(base[k])
        z = _zig(b, np.uint64(ft[k]), kind, top, mask)
        if z < np.uint64(2):
            sym[k] = np.uint8(z)
        else:
            nb = _bitlen(z)
            sym[k] = np.uint8(2 * (nb - 1) + np.int64((z >> np.uint64(nb - 2)) & np.uint64(1)))
        if kind == 2:
            e = np.int64((b >> np.uint64(mbits)) & emask) - elo
            ce[k] = 0 if e < 0 else (nk - 1 if e >= nk else e)
    return sym, ce


@njit(nogil=True, cache=True)
def _counts(sym, ce, rowctx, ncols, nr, nctx, alpha):
    out = np.zeros((nctx, alpha), np.int64)
    n = sym.shape[0]
    for i in range(rowctx.shape[0]):
        r = np.int64(rowctx[i])
        for k in range(i * ncols, min(n, (i + 1) * ncols)):
            out[np.int64(ce[k]) * nr + r, sym[k]] += 1
    return out


@njit(nogil=True, cache=True)
def _encode(sym, ce, rowctx, k0, ncols, nr, base, ft, wbits, kind, tab, alpha, det, lanes):
    """Elements [k0, k0 + len(sym)): u32 rANS length, rANS bytes (the ``lanes`` final states,
    then the words), then the raw bits, LSB-first. Element ``k`` (chunk-relative) is coded by
    lane ``k % lanes``; the lanes share one word stream (the decoder reads it in element order)."""
    n = sym.shape[0]
    words = np.empty(n // 4 + 16, np.uint16)
    nw = 0
    xs = np.full(lanes, np.uint64(RANS_L), np.uint64)
    total_raw = 0
    i = (k0 + n - 1) // ncols  # row of the last element, and where that row starts
    rstart = i * ncols - k0
    r = np.int64(rowctx[i]) if n else 0
    for k in range(n - 1, -1, -1):
        if k < rstart:
            i -= 1
            rstart -= ncols
            r = np.int64(rowctx[i])
        s = np.int64(sym[k])
        if s >= 4:
            total_raw += s // 2 - 1
        c = np.int64(ce[k]) * nr + r
        if det[c]:  # symbol 0 at frequency 2**pb: the step leaves the state as it is
            continue
        row = c * alpha + s  # the step of rans_encode._put
        lane = k & (lanes - 1)
        x = xs[lane]
        if x >= tab[row, 0]:
            if nw == words.shape[0]:
                words = np.concatenate((words, np.empty(words.shape[0], np.uint16)))
            words[nw] = np.uint16(x & np.uint64(0xFFFF))
            nw += 1
            x >>= np.uint64(16)
        q = (x + ((x * tab[row, 1]) >> np.uint64(32))) >> tab[row, 2]
        cc = tab[row, 3]
        xs[lane] = x + (cc & np.uint64(0xFFFFFFFF)) + q * (cc >> np.uint64(32))
    nraw = (total_raw + 7) // 8
    rbytes = 4 * lanes + 2 * nw
    out = np.zeros(4 + rbytes + nraw, np.uint8)
    for i in range(4):
        out[i] = np.uint8((rbytes >> (8 * i)) & 0xFF)
    for j in range(lanes):
        for i in range(4):
            out[4 + 4 * j + i] = np.uint8((xs[j] >> np.uint64(8 * i)) & np.uint64(0xFF))
    pos = 4 + 4 * lanes
    for i in range(nw - 1, -1, -1):  # the decoder reads the last word written first
        out[pos] = np.uint8(words[i] & 0xFF)
        out[pos + 1] = np.uint8(words[i] >> 8)
        pos += 2
    top = np.uint64(1) << np.uint64(wbits - 1)
    mask = np.uint64(0xFFFFFFFFFFFFFFFF) if wbits == 64 else (np.uint64(1) << np.uint64(wbits)) - np.uint64(1)
    acc = np.uint64(0)
    nacc = 0
    for k in range(n):
        s = np.int64(sym[k])
        if s < 4:
            continue
        r = s // 2 - 1
        v = _zig(np.uint64(base[k]), np.uint64(ft[k]), kind, top, mask)
        while r > 0:
            take = min(r, 32)
            part = v & ((np.uint64(1) << np.uint64(take)) - np.uint64(1))
            acc |= part << np.uint64(nacc)
            nacc += take
            v >>= np.uint64(take)
            r -= take
            while nacc >= 8:
                out[pos] = np.uint8(acc & np.uint64(0xFF))
                pos += 1
                acc >>= np.uint64(8)
                nacc -= 8
    if nacc > 0:
        out[pos] = np.uint8(acc & np.uint64(0xFF))
        pos += 1
    return out[:pos]


@njit(nogil=True, cache=True)
def _decode(chunk, base, out, k0, wbits, kind, mbits, ebits, elo, nk, ncols, rowctx, nr,
            tsym, tfc, alpha, pb, det, skip, zlead, rawn, lanes):
    """Inverse of ``_encode`` for elements [k0, k0 + len(base)); returns 0 or an error code
    (1 truncated, 2 trailing bytes, 3 bad state).

    ``det[c]``: context ``c`` holds symbol 0 only (frequency ``2**pb``): decoding it leaves the
    state as it is and reads nothing, so its elements are copied from the base without a
    decoding step; ``skip[r]``: every context of row cluster ``r`` is such, so its rows are
    copied whole (the unchanged rows of a fine-tune: most of an embedding).

    ``lanes``: the chunk's rANS states (4 in version 2, ``LANES3`` in version 3).

    Speed: ``lanes`` independent states (element ``k`` on lane ``k % lanes``) let the CPU run
    the table look-ups of consecutive elements at once; symbols below 4 need no raw bits and
    equal ``z`` (the common case, one branch), and the monotone map is branch-free."""
    n = base.shape[0]
    size = chunk.shape[0]
    hb = 4 + 4 * lanes
    if size < hb:
        return 1
    rbytes = np.int64(chunk[0]) | np.int64(chunk[1]) << 8 | np.int64(chunk[2]) << 16 | np.int64(chunk[3]) << 24
    if rbytes < 4 * lanes or 4 + rbytes > size:
        return 1
    lbound = np.uint64(RANS_L)
    xs = np.empty(lanes, np.uint64)
    for j in range(lanes):
        x = np.uint64(0)
        for i in range(4):
            x |= np.uint64(chunk[4 + 4 * j + i]) << np.uint64(8 * i)
        if x < lbound:
            return 3
        xs[j] = x
    pos = hb
    rend = 4 + rbytes
    rpos = rend
    acc = np.uint64(0)
    nacc = 0
    top = np.uint64(1) << np.uint64(wbits - 1)
    mask = np.uint64(0xFFFFFFFFFFFFFFFF) if wbits == 64 else (np.uint64(1) << np.uint64(wbits)) - np.uint64(1)
    sh = np.uint64(wbits - 1)
    emask = np.uint64((1 << ebits) - 1)
    pmask = np.uint64((1 << pb) - 1)
    upb = np.uint64(pb)
    umb = np.uint64(mbits)
    i = k0 // ncols  # current row and where the next one starts (no division per element)
    rnext = (i + 1) * ncols - k0
    rc = np.int64(rowctx[i]) if n else 0
    k = 0
    while k < n:
        if k == rnext:
            i += 1
            rnext += ncols
            rc = np.int64(rowctx[i])
            if skip[rc]:
                end = min(rnext, n)
                out[k:end] = base[k:end]
                k = end
                continue
        elif k == 0 and skip[rc]:
            end = min(rnext, n)
            out[k:end] = base[k:end]
            k = end
            continue
        end = min(rnext, n)
        while k < end:  # the elements of one row: no row bookkeeping
            b = np.uint64(base[k])
            ce = 0
            if kind == 2:
                e = np.int64((b >> umb) & emask) - elo
                ce = 0 if e < 0 else (nk - 1 if e >= nk else e)
            c = ce * nr + rc
            if det[c]:
                out[k] = base[k]
                k += 1
                continue
            lane = k & (lanes - 1)
            x = xs[lane]
            slot = x & pmask
            s = np.int64(tsym[(c << pb) + np.int64(slot)])
            fc = np.uint64(tfc[c * alpha + s])  # freq | cum << 16: one small table, one load
            x = (fc & np.uint64(0xFFFF)) * (x >> upb) + slot - (fc >> np.uint64(16))
            # renormalise without a branch (whether a word is due is a coin toss for the
            # predictor): the read is clamped into the chunk, a stream that runs past its end
            # (corrupt) is caught by the final position check
            nx = np.uint64(x < lbound)
            p2 = min(pos, size - 2)
            wd = np.uint64(chunk[p2]) | (np.uint64(chunk[p2 + 1]) << np.uint64(8))
            xs[lane] = (x << (nx << np.uint64(4))) | (wd & (np.uint64(0) - nx))
            pos += 2 * np.int64(nx)
            # z and its raw bits without a branch on the symbol (a third of a fine-tune's
            # elements have raw bits: a coin toss for the predictor, and a mispredicted branch
            # here serialises the lanes): zlead[s] holds z's known bits, rawn[s] the raw count
            r = np.int64(rawn[s])
            if r <= 32 and rpos + 4 <= size:
                need = np.uint64(nacc < r)
                wr = (np.uint64(chunk[rpos]) | (np.uint64(chunk[rpos + 1]) << np.uint64(8))
                      | (np.uint64(chunk[rpos + 2]) << np.uint64(16))
                      | (np.uint64(chunk[rpos + 3]) << np.uint64(24)))
                acc |= (wr & (np.uint64(0) - need)) << np.uint64(nacc)
                rpos += 4 * np.int64(need)
                nacc += 32 * np.int64(need)
                v = acc & ((np.uint64(1) << np.uint64(r)) - np.uint64(1))
                acc >>= np.uint64(r)
                nacc -= r
            else:  # the last bytes of the chunk, or more than 32 raw bits (64-bit words)
                v = np.uint64(0)
                got = 0
                while r > 0:
                    take = min(r, 32)
                    while nacc < take:
                        if rpos >= size:
                            return 1
                        acc |= np.uint64(chunk[rpos]) << np.uint64(nacc)
                        rpos += 1
                        nacc += 8
                    v |= (acc & ((np.uint64(1) << np.uint64(take)) - np.uint64(1))) << np.uint64(got)
                    acc >>= np.uint64(take)
                    nacc -= take
                    got += take
                    r -= take
            z = zlead[s] | v
            # d = z / 2 (z even) or -(z >> 1) - 1 (z odd), branch-free
            d = ((z >> np.uint64(1)) ^ (np.uint64(0) - (z & np.uint64(1)))) & mask
            if kind == 2:
                m = ((b ^ (((np.uint64(0) - (b >> sh)) & mask) | top)) + d) & mask
                out[k] = m ^ ((((m >> sh) - np.uint64(1)) & mask) | top)
            elif kind == 1:
                out[k] = (((b ^ top) + d) & mask) ^ top
            else:
                out[k] = (b + d) & mask
            k += 1
    if pos > rend:
        return 1
    if pos != rend or rpos - (nacc >> 3) != size:  # whole bytes read ahead: not used
        return 2
    for j in range(lanes):
        if xs[j] != lbound:
            return 3
    return 0


@njit(nogil=True, cache=True)
def _tables(raw, pos, nctx, alpha, pb):
    """The frequency rows at ``raw[pos:]`` (``tables.pack_rows``), normalised to ``2**pb``
    (``decode_tables``: what ``unpack_rows`` + ``dequantize`` + ``normalize_weights`` give),
    and the decoder's slot -> symbol table, in one compiled pass: in numpy this was 4 ms a
    tensor, a third of a small tensor's decoding. Returns (freq, cum, tsym, pos, error)."""
    freq = np.zeros((nctx, alpha), np.int64)
    cum = np.zeros((nctx, alpha), np.int64)
    tsym = np.zeros(nctx << pb, np.uint8)
    q = np.zeros(256, np.uint8)
    f = np.zeros(256, np.int64)
    w = np.empty(256, np.int64)
    rem = np.empty(256, np.int64)
    pos, err = _read_rows(raw, pos, freq, alpha, pb, q, f, w, rem)
    if err != 0:
        return freq, cum, tsym, pos, err
    for c in range(nctx):
        acc = 0
        for s in range(alpha):
            cum[c, s] = acc
            if freq[c, s] > 0:  # one slice fill a symbol: a byte loop is ~2x slower
                tsym[(c << pb) + acc:(c << pb) + acc + freq[c, s]] = np.uint8(s)
            acc += freq[c, s]
    return freq, cum, tsym, pos, 0
