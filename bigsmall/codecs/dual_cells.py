"""The ``.bsd`` 5.0 exact code: a weight given its INT4 bin, as a value *cell* and raw bits.

Pure (bytes and arrays in and out). 3.0 (``codecs/dual_lookup.py``) codes a weight's key with a
per-block class model truncated to its bin; its decoder rebuilds each bin's class table (16 per
group of 128 weights) and searches it per weight: ~20 ns a weight, 0.2-0.4x the ``.bs`` restore.
5.0 needs no table: inside a bin the weights are nearly uniform *in value*, and a bin holds a
known range of keys, so a weight is

1. its **cell**: the bin's keys cut at multiples of ``delta``, the ulp of the bin's largest
   magnitude (``Et``: that key's exponent, subnormals counted as exponent 1), so every cell but the
   one at 0 is a run of ``2^j`` keys of one exponent that covers ``delta`` of value: the cells are
   equally likely, coded uniformly (``f`` slots each of the 2^16), except up to 3 *special* cells
   next to the group's minimum (bin 0) and ``lo + 15 s`` (bin 15), where the group's minimum and
   maximum sit (measured: ~68 % of bin 0's weights are the minimum itself), which get per-chunk
   frequencies (``6 x u16``); the slots left over are an escape (a weight outside its bin);
2. its place in the cell: ``j`` raw bits, coded as a uniform rANS step (``2^(16-j)`` slots each).

The cell at 0 spans many exponents when ``Et - 1 > M``: a weight there (~0.1 % of the weights)
and an escaped one are coded in a *side stream* (one rANS state, decoded in weight order): the
depth below the bin's top exponent on a per-chunk table of 32 symbols, then the mantissa raw.

Measured on the corpus (``benchmarks/bench_dual.py``, docs/dual.md): the exact member
0.09-0.16 point of raw smaller than 3.0/4.0's, and a decoder of a few multiplies a weight (C
``_cells``, AVX2).

Chunk layout (little-endian)::

    u32 E | 32 x u16 depth table | u32 S | S x u16 side words | 6 x u16 special frequencies
    | F32: the low halves (2.0's, ``dual_trunc._low_bytes``) | u32 W | W x u16 words

rANS: 16 states in ``[2^16, 2^32)`` (weight ``t`` on state ``t mod 16``), precision 2^16, 16-bit
words, one stream; its first 32 words are the states' initial values (lane 0 first, low word
first). Decoding order: per block of 16 weights, their cell steps (lane order) then their raw
steps, a renormalisation read right after each step, so a SIMD decoder does 16 steps at once
(two vectors of 8 whose latency chains overlap).
The final states (both streams') must be 2^16 and every word and escape be consumed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import native
from ..errors import IntegrityError
from . import dual as v1
from . import dual_lookup as lookup
from . import dual_trunc as v2

LANES = 16  # two AVX2 vectors: their dependency chains overlap (8 states: ~5 ns a weight, 16: see docs)
NSPEC = 3  # special cells per edge bin: the edge value's cell and its two neighbours
MAXSPEC = 61440  # the special cells' share of 2^16 at most (the uniform cells keep >= 4095 slots)
NP = 11  # per-bin parameters (columns of ``bin_params``)
P_MLO, P_N, P_ET, P_VS, P_NS, P_C1, P_C2, P_U0, P_F, P_ESC, P_W0 = range(NP)
_MANT = {"BF16": 7, "F16": 10, "F32": 7}
_DT = {"BF16": 0, "F16": 1, "F32": 2}
_M = np.array([7, 10, 7], dtype=np.int64)


@njit(cache=True, nogil=True, inline="always")
def _cell(k, et, mb):  # type: ignore[no-untyped-def]
    """(cell index m, magnitude cell a) of ordered 16-bit key ``k`` in a bin of top exponent ``et``."""
    pos = k >= 0x8000
    g = k - 0x8000 if pos else 0x7FFF - k
    e = g >> mb
    ee = max(e, 1)
    f = g if e <= 1 else (g & ((1 << mb) - 1)) | (1 << mb)
    sh = et - ee
    if sh < 0:  # above the bin's top exponent: outside every cell of the bin
        a = np.int64(1) << 20
    else:
        a = 0 if sh > mb else f >> sh
    return (a if pos else -1 - a), a


@njit(cache=True, nogil=True, inline="always")
def _et(k, mb):  # type: ignore[no-untyped-def]
    g = k - 0x8000 if k >= 0x8000 else 0x7FFF - k
    return max(g >> mb, 1)


@njit(cache=True, nogil=True, inline="always")
def _spec_fields(p, spec, off):  # type: ignore[no-untyped-def]
    """A bin's fields that depend on the special frequencies (``spec[off:off + NSPEC]``: its edge's
    window, which starts at cell ``W0``, clipped to the bin's ``N`` cells)."""
    n = p[P_N]
    v0 = p[P_W0]
    vs = 0
    ns = 0
    c1 = c2 = c3 = np.int64(0)
    if off >= 0:
        i0 = max(0, -v0)
        i1 = min(NSPEC, n - v0)
        if i1 > i0:
            vs = v0 + i0
            ns = i1 - i0
            c1 = spec[off + i0]
            c2 = c1 + (spec[off + i0 + 1] if ns > 1 else 0)
            c3 = c2 + (spec[off + i0 + 2] if ns > 2 else 0)
    u0 = c1 if ns == 1 else (c2 if ns == 2 else c3)
    nu = n - ns
    f = (65535 - u0) // nu if nu > 0 else 0
    p[P_VS] = vs
    p[P_NS] = ns
    p[P_C1] = c1 if ns > 1 else u0
    p[P_C2] = c2 if ns > 2 else u0
    p[P_U0] = u0
    p[P_F] = f
    p[P_ESC] = u0 + nu * f


@njit(cache=True, nogil=True)
def bin_params(sb, lb, dt, spec, par):  # type: ignore[no-untyped-def]
    """Per group (fp16 bits of scale and minimum) and bin, the decoder's parameters into ``par``
    ((groups * 16, NP) int64): the cells ``m_lo``.., ``N``, ``Et``, the special cells ``vs``,
    ``ns`` and their cumulative frequencies (``C1``, ``C2``; the uniform cells start at ``U0``),
    the uniform frequency ``f`` (over the ``N - ns`` other cells), the escape's start ``ESC`` and the special
    window's first cell before clipping ``W0``. ``spec``: the chunk's 6 special frequencies
    (bin 0's 3, bin 15's 3)."""
    mb = _M[dt]
    wide = dt == 2
    ka = np.empty(16, dtype=np.int64)
    kb = np.empty(16, dtype=np.int64)
    for g in range(sb.size):
        lookup.group_bins(sb[g], lb[g], dt, ka, kb)
        s = lookup._fp16_units(sb[g]) << (lookup.U - 24)
        lo = lookup._fp16_units(lb[g]) << (lookup.U - 24)
        for q in range(16):
            p = par[g * 16 + q]
            a, b = ka[q], kb[q]
            if b < a:  # an empty bin: every slot is the escape
                for i in range(NP):
                    p[i] = 0
                continue
            et = max(_et(a, mb), _et(b, mb))
            mlo, _ = _cell(a, et, mb)
            mhi, _ = _cell(b, et, mb)
            p[P_MLO] = mlo
            p[P_N] = mhi - mlo + 1
            p[P_ET] = et
            p[P_W0] = -NSPEC
            if q == 0 or q == 15:
                ek = lookup._edge(lo if q == 0 else lo + 15 * s, dt, q == 0)
                if wide:
                    ek >>= 16
                ve, _ = _cell(ek, et, mb)
                p[P_W0] = ve - mlo - 1  # the window: the edge value's cell and its neighbours
            _spec_fields(p, spec, 0 if q == 0 else (NSPEC if q == 15 else -1))


@njit(cache=True, nogil=True)
def _apply_spec(par, spec):  # type: ignore[no-untyped-def]
    """``par`` (built with no special frequencies) for the chunk's ``spec``: bins 0 and 15 only."""
    for g in range(par.shape[0] // 16):
        for q in (0, 15):
            p = par[g * 16 + q]
            if p[P_N] > 0:
                _spec_fields(p, spec, 0 if q == 0 else NSPEC)


@njit(cache=True, nogil=True, inline="always")
def _floor_log2(a):  # type: ignore[no-untyped-def]
    """floor(log2(a)) for 1 <= a < 2^16 (0 for a <= 1), by halving the range."""
    n = 0
    for sh in (8, 4, 2, 1):
        if a >> sh:
            a >>= sh
            n += sh
    return n


@njit(cache=True, nogil=True, inline="always")
def _raw_bits(a, et, mb):  # type: ignore[no-untyped-def]
    """Raw bits ``j`` of magnitude cell ``a`` (-1: the cell at 0 spans exponents, escaped)."""
    if a == 0:
        return et - 1 if et - 1 <= mb else -1
    return min(mb - _floor_log2(a), et - 1)


@njit(cache=True, nogil=True)
def _params(sb, lb, dt, spec, groups_total):  # type: ignore[no-untyped-def]
    par = np.empty((groups_total * 16, NP), dtype=np.int64)
    bin_params(sb, lb, dt, spec, par)
    return par


@njit(cache=True, nogil=True)
def _special_counts(keys, q, par, cols, groups, mb):  # type: ignore[no-untyped-def]
    """Per edge (bin 0, bin 15): the block's weights inside the bin's cells at each of the
    window's cells (``[e, i]``, ``i < NSPEC``) and in all (``[e, NSPEC]``)."""
    counts = np.zeros((2, NSPEC + 1), dtype=np.int64)
    for t in range(keys.size):
        qq = q[t]
        if qq != 0 and qq != 15:
            continue
        p = par[((t // cols) * groups + (t % cols) // 128) * 16 + qq]
        if p[P_N] <= 0:
            continue
        m, _ = _cell(np.int64(keys[t]), p[P_ET], mb)
        v = m - p[P_MLO]
        if v < 0 or v >= p[P_N]:
            continue
        e = 0 if qq == 0 else 1
        counts[e, NSPEC] += 1
        i = v - p[P_W0]
        if 0 <= i < NSPEC:
            counts[e, i] += 1
    return counts


def special_freqs(counts: np.ndarray) -> np.ndarray:
    """The 6 stored frequencies: each window cell's share of its edge bins' weights, of 2^16
    (at least 1 where a weight is), at most ``MAXSPEC`` an edge."""
    out = np.zeros(2 * NSPEC, dtype=np.int64)
    for e in range(2):
        tot = int(counts[e, NSPEC])
        if tot == 0:
            continue
        f = [(0 if c == 0 else max(1, round(65536 * int(c) / tot))) for c in counts[e, :NSPEC]]
        while sum(f) > MAXSPEC:
            f = [x if x <= 1 else max(1, x * MAXSPEC // sum(f)) for x in f]
        out[e * NSPEC:(e + 1) * NSPEC] = f
    return out


@njit(cache=True, nogil=True)
def _symbols(keys, q, par, cols, groups, mb):  # type: ignore[no-untyped-def]
    """Per weight its cell step (start, frequency) and raw step (frequency 0: none), and the
    escaped keys (bit patterns) in order with their kind (-1: outside the bin's cells; else the
    bin's top exponent: a key of the cell at 0, ``_side_steps``)."""
    n = keys.size
    st1 = np.empty(n, dtype=np.int32)
    fr1 = np.empty(n, dtype=np.int32)
    st2 = np.zeros(n, dtype=np.int32)
    fr2 = np.zeros(n, dtype=np.int32)
    esc = np.empty(n, dtype=np.uint16)
    kind = np.empty(n, dtype=np.int32)  # per escape: -1 outside the cells, else the bin's Et (tiny)
    ne = 0
    for r in range(n // max(cols, 1)):
        for c in range(cols):
            t = r * cols + c
            k = np.int64(keys[t])
            ix = ((r * groups + (c >> 7)) << 4) + q[t]
            et = par[ix, P_ET]
            m, a = _cell(k, et, mb)
            v = m - par[ix, P_MLO]
            start = -1
            freq = 0
            if par[ix, P_N] > 0 and 0 <= v < par[ix, P_N]:
                vs = par[ix, P_VS]
                if vs <= v < vs + par[ix, P_NS]:
                    i = v - vs
                    lo = 0 if i == 0 else (par[ix, P_C1] if i == 1 else par[ix, P_C2])
                    hi = par[ix, P_C1] if i == 0 else (par[ix, P_C2] if i == 1 else par[ix, P_U0])
                    if hi > lo:
                        start = lo
                        freq = hi - lo
                elif par[ix, P_F] > 0:
                    u = v if v < vs else v - par[ix, P_NS]
                    start = par[ix, P_U0] + u * par[ix, P_F]
                    freq = par[ix, P_F]
            pat = np.uint16(k - 0x8000) if k >= 0x8000 else np.uint16(0x8000 | (0x7FFF - k))
            if freq == 0:  # outside the bin's cells, or a cell of no frequency: the escape
                st1[t] = par[ix, P_ESC]
                fr1[t] = 65536 - par[ix, P_ESC]
                esc[ne] = pat
                kind[ne] = -1
                ne += 1
                continue
            st1[t] = start
            fr1[t] = freq
            j = _raw_bits(a, et, mb)
            g = np.int64(pat & 0x7FFF)
            e = g >> mb
            if j < 0:  # the cell at 0 spanning exponents
                esc[ne] = pat
                kind[ne] = et
                ne += 1
                continue
            if j > 0:
                f = g if e <= 1 else (g & ((1 << mb) - 1)) | (1 << mb)
                st2[t] = (f & ((1 << j) - 1)) << (16 - j)
                fr2[t] = 1 << (16 - j)
    return st1, fr1, st2, fr2, esc[:ne].copy(), kind[:ne].copy()


@njit(cache=True, nogil=True)
def _encode(st1, fr1, st2, fr2):  # type: ignore[no-untyped-def]
    """The rANS stream (u16 words, the states' initial values first) of the steps, encoded in
    the reverse of the decoding order (per block of LANES weights: cell steps, then raw steps).
    ``x // freq`` as a double division: x < 2^32 and freq < 2^17, so a quotient that is not an
    integer lies >= 2^-17 from one, far beyond the division's rounding error (a 64-bit integer
    division per step was most of this function)."""
    n = st1.size
    buf = np.empty(4 * n + 2 * LANES + 8, dtype=np.uint16)
    wp = buf.size
    xs = np.full(LANES, 1 << 16, dtype=np.int64)
    b0 = (n - 1) // LANES * LANES if n else 0
    while b0 >= 0 and n:
        b1 = min(b0 + LANES, n)
        for t in range(b1 - 1, b0 - 1, -1):  # the raw steps (decoded last): 2^k slots each
            freq = np.int64(fr2[t])
            if freq == 0:
                continue
            sh = _floor_log2(freq)  # freq = 2^sh < 2^16
            ln = t & (LANES - 1)
            x = xs[ln]
            out = np.int64(x >= (freq << 16))  # renormalise without a branch (unpredictable)
            buf[wp - 1] = np.uint16(x & 0xFFFF)
            wp -= out
            x >>= out << 4
            xs[ln] = ((x >> sh) << 16) + (x & (freq - 1)) + st2[t]
        for t in range(b1 - 1, b0 - 1, -1):  # the cell steps
            freq = np.int64(fr1[t])
            ln = t & (LANES - 1)
            x = xs[ln]
            out = np.int64(x >= (freq << 16))
            buf[wp - 1] = np.uint16(x & 0xFFFF)
            wp -= out
            x >>= out << 4
            d = np.int64(x / freq)  # exact: x < 2^32, freq < 2^17
            xs[ln] = (d << 16) + (x - d * freq) + st1[t]
        b0 -= LANES
    for ln in range(LANES - 1, -1, -1):
        wp -= 2
        buf[wp] = np.uint16(xs[ln] & 0xFFFF)
        buf[wp + 1] = np.uint16(xs[ln] >> 16)
    return buf[wp:].copy()


DEPTHS = 32  # the side stream's depth symbols; the last: the magnitude stored raw
DPB = 15  # the depth table's precision


@njit(cache=True, nogil=True)
def _side_steps(esc, kind, mb, dfreq, dcum):  # type: ignore[no-untyped-def]
    """The side stream's steps (start, frequency, precision) in decoding order: per escape, one
    outside its bin's cells as 2 x 8 raw bits; a key of the cell at 0 (below the bin's top
    exponent ``Et`` by more than the mantissa) as its depth ``d = Et - mb - 1 - e`` (the table;
    the last symbol: 15 raw bits of the magnitude) then its mantissa raw (``mb`` bits, ``mb + 1``
    at exponent 1: the subnormals and the first binade)."""
    st = np.empty((3 * esc.size, 3), dtype=np.int64)
    k = 0
    for i in range(esc.size):
        pat = np.int64(esc[i])
        if kind[i] < 0:
            st[k] = ((pat >> 8) << 8, 256, 16)
            st[k + 1] = ((pat & 0xFF) << 8, 256, 16)
            k += 2
            continue
        g = pat & 0x7FFF
        ee = max(g >> mb, 1)
        d = kind[i] - mb - 1 - ee
        if d >= DEPTHS - 1:
            st[k] = (dcum[DEPTHS - 1], dfreq[DEPTHS - 1], DPB)
            st[k + 1] = ((g >> 8) << 9, 512, 16)
            st[k + 2] = ((g & 0xFF) << 8, 256, 16)
            k += 3
            continue
        st[k] = (dcum[d], dfreq[d], DPB)
        j = mb if ee >= 2 else mb + 1
        v = g & ((1 << mb) - 1) if ee >= 2 else g
        st[k + 1] = (v << (16 - j), 1 << (16 - j), 16)
        k += 2
    return st[:k]


@njit(cache=True, nogil=True)
def _side_depths(esc, kind, mb):  # type: ignore[no-untyped-def]
    counts = np.zeros(DEPTHS, dtype=np.int64)
    for i in range(esc.size):
        if kind[i] >= 0:
            ee = max((np.int64(esc[i]) & 0x7FFF) >> mb, 1)
            counts[min(kind[i] - mb - 1 - ee, DEPTHS - 1)] += 1
    return counts


def _depth_table(counts: np.ndarray) -> np.ndarray:
    """Counts -> frequencies of sum 2^DPB, each used symbol at least 1 (all 0: no tiny key)."""
    tot = int(counts.sum())
    f = np.zeros(DEPTHS, dtype=np.int64)
    if tot == 0:
        return f
    f = np.where(counts > 0, np.maximum(1, (counts * (1 << DPB)) // tot), 0)
    f[int(np.argmax(counts))] += (1 << DPB) - int(f.sum())
    while f.min(initial=1 << DPB) < 0 or (f[counts > 0] < 1).any():  # the largest paid too much
        i = int(np.argmax(f))
        j = int(np.argmin(np.where(counts > 0, f, 1 << DPB)))
        f[i] -= 1
        f[j] += 1
    return f


@njit(cache=True, nogil=True)
def _side_encode(st):  # type: ignore[no-untyped-def]
    """One rANS state over the steps, encoded backwards: u16 words, the initial state first."""
    buf = np.empty(2 * st.shape[0] + 2, dtype=np.uint16)
    wp = buf.size
    x = np.int64(1) << 16
    for i in range(st.shape[0] - 1, -1, -1):
        start, freq, prec = st[i, 0], st[i, 1], st[i, 2]
        if x >= (freq << (32 - prec)):
            wp -= 1
            buf[wp] = np.uint16(x & 0xFFFF)
            x >>= 16
        d = np.int64(x / freq)  # exact, as in _encode
        x = (d << prec) + (x - d * freq) + start
    wp -= 2
    buf[wp] = np.uint16(x & 0xFFFF)
    buf[wp + 1] = np.uint16(x >> 16)
    return buf[wp:].copy()


@njit(cache=True, nogil=True, inline="always")
def _renorm(x, words, wp):  # type: ignore[no-untyped-def]
    """(state, word position) after a step left ``x``: a word read when below 2^16; -1: the
    words ran out (a damaged stream)."""
    if x < (1 << 16):
        if wp >= words.size:
            return np.int64(-1), wp
        return (x << 16) | np.int64(words[wp]), wp + 1
    return x, wp


@njit(cache=True, nogil=True, inline="always")
def _side_set(side, sx, x):  # type: ignore[no-untyped-def]
    """The side state ``sx = [x, wp, bad]`` after a step left ``x``: renormalised (``_renorm``;
    past the stream's end sets ``bad``)."""
    x, wp = _renorm(x, side, sx[1])
    if x < 0:
        sx[2] = 1
        return
    sx[0] = x
    sx[1] = wp


@njit(cache=True, nogil=True, inline="always")
def _side_raw(side, sx, j):  # type: ignore[no-untyped-def]
    """``j`` raw bits (a uniform step at precision 16) from the side state."""
    x = sx[0]
    slot = x & 0xFFFF
    _side_set(side, sx, (x >> 16 << (16 - j)) + (slot & ((np.int64(1) << (16 - j)) - 1)))
    return slot >> (16 - j)


@njit(cache=True, nogil=True)
def side_next(side, sx, dfreq, et, neg, mb):  # type: ignore[no-untyped-def]
    """The next escaped pattern from the side stream (``et`` < 0: one outside its bin's cells;
    else a key of the cell at 0 of a bin of top exponent ``et``, negative if ``neg``); a
    damaged stream sets ``sx[2]``."""
    if et < 0:
        hi = _side_raw(side, sx, 8)
        return (hi << 8) | _side_raw(side, sx, 8)
    x = sx[0]
    slot = x & ((1 << DPB) - 1)
    d = -1
    c = np.int64(0)
    for s in range(DEPTHS):
        if dfreq[s] > 0 and c <= slot < c + dfreq[s]:
            d = s
            break
        c += dfreq[s]
    if d < 0:
        sx[2] = 1
        return 0
    _side_set(side, sx, dfreq[d] * (x >> DPB) + slot - c)
    if d == DEPTHS - 1:
        hi = _side_raw(side, sx, 7)
        g = (hi << 8) | _side_raw(side, sx, 8)
    else:
        ee = et - mb - 1 - d
        if ee < 1:
            sx[2] = 1
            return 0
        g = (ee << mb) | _side_raw(side, sx, mb) if ee >= 2 else _side_raw(side, sx, mb + 1)
    return (0x8000 if neg else 0) | g


@njit(cache=True, nogil=True)
def decode_patterns(words, side, dfreq, ne, q, par, cols, groups, mb, out):  # type: ignore[no-untyped-def]
    """The block's 16-bit patterns (F32: top halves) into ``out`` (uint16); 0, or 1 when the
    streams do not decode (corrupt). ``ne`` escapes are in the side stream (``side_next``)."""
    n = q.size
    nw = words.size
    if nw < 2 * LANES or side.size < 2:
        return 1
    sx = np.array([np.int64(side[0]) | (np.int64(side[1]) << 16), 2, 0], dtype=np.int64)
    xs = np.empty(LANES, dtype=np.int64)
    for ln in range(LANES):
        xs[ln] = np.int64(words[2 * ln]) | (np.int64(words[2 * ln + 1]) << 16)
    wp = 2 * LANES
    ep = 0
    ja = np.empty(LANES, dtype=np.int64)  # per weight of the block: raw bits (-1: escaped)
    aa = np.empty(LANES, dtype=np.int64)
    sg = np.empty(LANES, dtype=np.int64)
    ets = np.empty(LANES, dtype=np.int64)
    for b0 in range(0, n, LANES):
        b1 = min(b0 + LANES, n)
        for t in range(b0, b1):
            ln = t - b0
            p = par[((t // cols) * groups + (t % cols) // 128) * 16 + q[t]]
            x = xs[ln]
            slot = x & 0xFFFF
            esc_now = False
            v = 0
            if slot < p[P_U0]:
                i = (1 if slot >= p[P_C1] else 0) + (1 if slot >= p[P_C2] else 0)
                start = 0 if i == 0 else (p[P_C1] if i == 1 else p[P_C2])
                freq = (p[P_C1] if i == 0 else (p[P_C2] if i == 1 else p[P_U0])) - start
                v = p[P_VS] + i
            elif slot >= p[P_ESC]:
                start = p[P_ESC]
                freq = 65536 - start
                esc_now = True
            else:
                u = (slot - p[P_U0]) // p[P_F]
                start = p[P_U0] + u * p[P_F]
                freq = p[P_F]
                v = u if u < p[P_VS] else u + p[P_NS]
            x, wp = _renorm(freq * (x >> 16) + slot - start, words, wp)
            if x < 0:
                return 1
            xs[ln] = x
            et = p[P_ET]
            m = p[P_MLO] + v
            a = -1 - m if m < 0 else m
            if not esc_now and a >> (mb + 1):  # beyond any bin's cells: a damaged stream
                return 1
            j = -1 if esc_now else _raw_bits(a, et, mb)
            ja[ln] = j
            aa[ln] = a
            sg[ln] = 1 if m < 0 else 0
            ets[ln] = et
            if j < 0:
                if ep >= ne:
                    return 1
                out[t] = np.uint16(side_next(side, sx, dfreq, -1 if esc_now else et, m < 0, mb))
                if sx[2]:
                    return 1
                ep += 1
        for t in range(b0, b1):
            ln = t - b0
            j = ja[ln]
            if j < 0:
                continue
            r = np.int64(0)
            if j > 0:
                x = xs[ln]
                slot = x & 0xFFFF
                r = slot >> (16 - j)
                x, wp = _renorm((np.int64(1) << (16 - j)) * (x >> 16) + (slot & ((np.int64(1) << (16 - j)) - 1)),
                                words, wp)
                if x < 0:
                    return 1
                xs[ln] = x
            g = (aa[ln] << j) + r + ((ets[ln] - j - 1) << mb)
            if g > 0x7FFF:
                return 1
            out[t] = np.uint16((sg[ln] << 15) | g)
    for ln in range(LANES):
        if xs[ln] != (1 << 16):
            return 1
    if wp != nw or ep != ne or sx[0] != (1 << 16) or sx[1] != side.size:
        return 1
    return 0


def _setup(q: np.ndarray, s16: np.ndarray, lo16: np.ndarray, dtype: str,
           spec: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    sb, lb = lookup._side_bits(s16, lo16)
    par = _params(sb, lb, _DT[dtype], spec, sb.size)
    return np.ascontiguousarray(q, dtype=np.uint8).ravel(), par, q.shape[1], s16.shape[1]


def encode_exact(bits: np.ndarray, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray, dtype: str) -> bytes:
    """Raw bits of a block (uint16/uint32, (rows, cols)) coded given its fast code."""
    wide = dtype == "F32"
    mb = _MANT[dtype]
    keys, low = v2._keys16(np.ascontiguousarray(bits).ravel(), wide)
    qf, par, cols, groups = _setup(q, s16, lo16, dtype, np.zeros(2 * NSPEC, dtype=np.int64))
    spec = special_freqs(_special_counts(keys, qf, par, cols, groups, mb))
    _apply_spec(par, spec)
    st1, fr1, st2, fr2, esc, kind = _symbols(keys, qf, par, cols, groups, mb)
    words = _encode(st1, fr1, st2, fr2)
    dfreq = _depth_table(_side_depths(esc, kind, mb))
    side = _side_encode(_side_steps(esc, kind, mb, dfreq, np.concatenate([[0], np.cumsum(dfreq)[:-1]])))
    return b"".join([v1._U32.pack(esc.size), dfreq.astype("<u2").tobytes(), v1._U32.pack(side.size),
                     side.astype("<u2").tobytes(), spec.astype("<u2").tobytes(),
                     v2._low_bytes(low, cols) if wide else b"", v1._U32.pack(words.size),
                     words.astype("<u2").tobytes()])


def parse_chunk(data: bytes | memoryview, shape: tuple[int, int],
                wide: bool) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(escape count, depth frequencies, side words, special frequencies, F32's low halves,
    words) of a chunk; damage raises ``IntegrityError``."""
    rows, cols = shape
    buf = memoryview(data).cast("B")
    take = v1._take
    head, pos = take(buf, 0, 4, "escape count")
    ne = v1._U32.unpack(head)[0]
    db, pos = take(buf, pos, 2 * DEPTHS, "depth table")
    dfreq = np.frombuffer(db, "<u2").astype(np.int64)
    if int(dfreq.sum()) not in (0, 1 << DPB):
        raise IntegrityError("dual v5 chunk: depth table out of range")
    head, pos = take(buf, pos, 4, "side length")
    sw, pos = take(buf, pos, 2 * v1._U32.unpack(head)[0], "side stream")
    sp, pos = take(buf, pos, 2 * 2 * NSPEC, "special frequencies")
    spec = np.frombuffer(sp, "<u2").astype(np.int64)
    for e in range(2):
        if int(spec[e * NSPEC:(e + 1) * NSPEC].sum()) > MAXSPEC:
            raise IntegrityError("dual v5 chunk: special frequencies out of range")
    low = np.empty(0, dtype=np.uint16)
    if wide:
        low, pos = v2.parse_low(buf, pos, rows, cols)
    head, pos = take(buf, pos, 4, "word count")
    wb, pos = take(buf, pos, 2 * v1._U32.unpack(head)[0], "words")
    if pos != len(buf):
        raise IntegrityError("dual v5 chunk: trailing bytes")
    return (ne, dfreq, np.frombuffer(sw, "<u2").astype(np.uint16), spec, low,
            np.frombuffer(wb, "<u2").astype(np.uint16))


def kernel_args(data: bytes | memoryview, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray,
                dtype: str) -> tuple[tuple, np.ndarray]:
    """The decode kernel's arguments but the output (words, side words, depth frequencies, escape
    count, codes, scale and minimum bits, special frequencies, dtype code, cols, groups, mantissa
    bits), and F32's low halves.
    Exposed for the property tests, which drive both kernels."""
    ne, dfreq, side, spec, low, words = parse_chunk(data, q.shape, dtype == "F32")
    sb, lb = lookup._side_bits(s16, lo16)
    return (words, side, dfreq, ne, np.ascontiguousarray(q, dtype=np.uint8).ravel(), sb, lb, spec, _DT[dtype],
            q.shape[1], s16.shape[1], _MANT[dtype]), low


@njit(cache=True, nogil=True)
def decode_ref(words, side, dfreq, ne, q, sb, lb, spec, dt, cols, groups, mb, out):  # type: ignore[no-untyped-def]
    """``native._cells.decode``'s reference: the bins' parameters, then ``decode_patterns``."""
    par = _params(sb, lb, dt, spec, sb.size)
    return decode_patterns(words, side, dfreq, ne, q, par, cols, groups, mb, out)


def decode_exact(data: bytes | memoryview, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray,
                 dtype: str, out: np.ndarray | None = None) -> np.ndarray:
    """Inverse of ``encode_exact``: the block's raw bits (uint16/uint32 in native order, flat;
    into ``out`` if given, e.g. a view of the tensor's bytes)."""
    wide = dtype == "F32"
    n = q.size
    head, low = kernel_args(data, q, s16, lo16, dtype)
    if out is None:
        out = np.empty(n, dtype=np.uint32 if wide else np.uint16)
    pats = np.empty(n, dtype=np.uint16) if wide else out
    nat = native.cells()
    if n and (nat.decode(*head, pats) if nat is not None else decode_ref(*head, pats)):
        raise IntegrityError("dual stream corrupt: it does not decode")
    if wide:
        np.left_shift(pats, np.uint32(16), out=out)  # in place: no tensor-sized temporaries
        np.bitwise_or(out, low, out=out)
    return out
