"""The ``.bsd`` v3 exact code: v2's truncated value model, decoded by table look-ups.

Pure (bytes and arrays in and out). v2 (``codecs/dual_trunc.py``) codes a weight's ordered key
with a value model truncated to its INT4 bin, one symbol of a bin-dependent total: its decoder
pays a class search and scaled divisions per weight (0.13-0.19x the ``.bs`` restore). v3 keeps
the model and splits the symbol in two fixed-precision rANS steps whose tables are built once
per *bin* (16 per group of 128 weights), not per weight:

1. the key's *class* (sign, exponent, top 2 mantissa bits; v2's classes) among the classes of
   its bin that the block uses, with frequencies ``W[c] * n_in(c)`` (``W``: v2's per-block class
   weights, stored the same way; ``n_in``: the class's keys inside the bin) normalised to
   ``2^16 - 1``, plus an escape of frequency 1 (a weight outside its bin: its key stored raw);
2. the key's place among the class's ``n`` in-bin keys, uniform: slot ``u`` -> ``i = u n >> 16``,
   ``[ceil(i 2^16 / n), ceil((i + 1) 2^16 / n))``, exact with a multiply by ``ceil(2^33 / n)``
   (``n <= 256``); no step when ``n = 1``.

The bins are computed in integer arithmetic (fp16 scales and minimums in units of 2^-30, edges
rounded onto the dtype's grid by bit length), so every machine computes the same tables; the
frequencies need one division per bin. The decoder does per weight a bin look-up, a search over
the bin's few classes (the zero bin's many: a binary search) and two multiplies. Both kernels have
a C port (``bigsmall.native._dual``: ``decode_lookup``); these numba kernels are the reference.

Chunk layout (little-endian), as v2's::

    u32 T | T bytes zstd(tables) | u32 E | E x u16 escaped keys | F32: the low halves (v2's)
    | u64 x_0 .. x_3 | u32 S_0 .. S_3 | S_0 words of lane 0, then lane 1's, 2's, 3's (u32 each)

States are 64-bit in ``[2^32, 2^64)``, 32-bit words, 4 lanes interleaved by element (both steps of
a weight on its lane), each lane with its own word stream: a lane's renormalisation never waits
for another's, so the decoder works on 4 weights at once. Every final state must return to 2^32
and every stream be read to its end.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import native
from ..errors import IntegrityError
from . import dual as v1
from . import dual_trunc as v2

LANES = 4
PB = 16
TOT = (1 << PB) - 1  # the classes' share of a bin's 2^16; the escape has the last slot
LOW = np.uint64(1) << np.uint64(32)
DT_CODE = {"BF16": 0, "F16": 1, "F32": 2}
# per dtype code: width, mantissa bits, exponent bias, largest unbiased exponent, smallest normal one
_WIDTH = np.array([16, 16, 32], dtype=np.int64)
_MB = np.array([7, 10, 23], dtype=np.int64)
_BIAS = np.array([127, 15, 127], dtype=np.int64)
_EMAX = np.array([127, 15, 127], dtype=np.int64)
_EMIN = np.array([-126, -14, -126], dtype=np.int64)
U = 30  # bin edges in units of 2^-U: fp16 scales and minimums, and s/32, are exact there
REC = np.array([0] + [-(-(1 << 33) // n) for n in range(1, 257)], dtype=np.int64)  # ceil(2^33 / n)


@njit(cache=True, nogil=True, inline="always")
def _fp16_units(b):  # type: ignore[no-untyped-def]
    """fp16 bits -> value in units of 2^-24 (int64; inf/NaN, never written, map to a large value)."""
    e = (b >> 10) & 31
    m = np.int64(b & 1023)
    v = m if e == 0 else (m + 1024) << (e - 1)
    return -v if b & 0x8000 else v


@njit(cache=True, nogil=True, inline="always")
def _mag(x, dt, up):  # type: ignore[no-untyped-def]
    """Magnitude bits (exponent | mantissa) of the dtype value nearest ``x * 2^-U`` (x >= 0) from
    below (``up``: from above), clipped to the largest finite value."""
    mb = _MB[dt]
    top = ((_EMAX[dt] + _BIAS[dt]) << mb) | ((np.int64(1) << mb) - 1)
    if x <= 0:
        return np.int64(0)
    ln = np.int64(0)  # bit length - 1
    y = x
    for s in (32, 16, 8, 4, 2, 1):
        if y >> s:
            y >>= s
            ln += s
    e = ln - U
    if e < _EMIN[dt]:  # below the normal range: the subnormals' grid (fp16 only reaches it)
        sh = U + _EMIN[dt] - mb
        e = _EMIN[dt] - 1
        m = x >> sh
        rem = x & ((np.int64(1) << sh) - 1)
        mag = m
    else:
        sh = ln - mb
        if sh >= 0:
            m = x >> sh
            rem = x & ((np.int64(1) << sh) - 1)
        else:
            m = x << (-sh)
            rem = np.int64(0)
        mag = ((e + _BIAS[dt]) << mb) + (m - (np.int64(1) << mb))
    if up and rem != 0:
        mag += 1
    return min(mag, top)


@njit(cache=True, nogil=True, inline="always")
def _edge(a, dt, up):  # type: ignore[no-untyped-def]
    """Ordered key of the first dtype value >= ``a 2^-U`` (``up``) or the last <= it."""
    sign = np.int64(1) << (_WIDTH[dt] - 1)
    if a >= 0:
        return sign + _mag(a, dt, up)
    return sign - 1 - _mag(-a, dt, not up)


@njit(cache=True, nogil=True)
def group_bins(sb, lb, dt, ka, kb):  # type: ignore[no-untyped-def]
    """The 16 bins of a group (fp16 bits of its scale and minimum) as 16-bit key ranges
    ``[ka, kb]`` (F32: of the keys' top halves): ``lo + (q -+ 1/2) s``, the end bins only
    ``s/32`` beyond the group's minimum and maximum (as v2's)."""
    s = _fp16_units(sb) << (U - 24)
    lo = _fp16_units(lb) << (U - 24)
    wide = _WIDTH[dt] == 32
    for q in range(16):
        a = lo - (s >> 5) if q == 0 else lo + (2 * q - 1) * (s >> 1)
        b = lo + 15 * s + (s >> 5) if q == 15 else lo + (2 * q + 1) * (s >> 1)
        x = _edge(a, dt, True)
        y = _edge(b, dt, False)
        if wide:
            x >>= 16
            y >>= 16
        ka[q] = x
        kb[q] = y


@njit(cache=True, nogil=True)
def present(W):  # type: ignore[no-untyped-def]
    """The classes of weight > 0 (sorted) and, per class c, the index of the first of them >= c."""
    ncls = W.size
    pc = np.empty(ncls, dtype=np.int64)
    nxt = np.empty(ncls + 1, dtype=np.int64)
    n = 0
    for c in range(ncls):
        nxt[c] = n
        if W[c] > 0:
            pc[n] = c
            n += 1
    nxt[ncls] = n
    return pc[:n].copy(), nxt


@njit(cache=True, nogil=True)
def bin_tables(ka, kb, W, pc, nxt, sh, start, cls, cum):  # type: ignore[no-untyped-def]
    """The class tables of a group's 16 bins: bin q's entries are ``start[q]..start[q+1]``, each
    a class and its cumulative frequency (the next entry's, or ``TOT``, ends it). Returns the
    entries used. ``cls``/``cum`` need room for 16 x the block's present classes."""
    ncls = W.size
    pos = 0
    for q in range(16):
        start[q] = pos
        a = ka[q]
        b = kb[q]
        if b < a:
            continue
        ca = a >> sh
        cb = b >> sh
        if ca >= ncls:
            continue
        i0 = nxt[ca]
        mt = np.int64(0)
        ne = 0
        best = -1
        bestm = np.int64(-1)
        i = i0
        while i < pc.size and pc[i] <= cb:
            c = pc[i]
            lo = max(a, c << sh)
            hi = min(b, ((c + 1) << sh) - 1)
            m = np.int64(W[c]) * (hi - lo + 1)
            cum[pos + ne] = m  # the mass for now; the frequency below
            cls[pos + ne] = c
            if m > bestm:
                bestm = m
                best = ne
            mt += m
            ne += 1
            i += 1
        if ne == 0:
            continue
        r = ((TOT - ne) << 31) // mt
        tot = 0
        for j in range(ne):
            f = 1 + ((cum[pos + j] * r) >> 31)
            cum[pos + j] = f
            tot += f
        cum[pos + best] += TOT - tot
        acc = np.int64(0)
        for j in range(ne):
            f = cum[pos + j]
            cum[pos + j] = acc
            acc += f
        pos += ne
    start[16] = pos
    return pos


@njit(cache=True, nogil=True, inline="always")
def _find(cum, lo, n, slot):  # type: ignore[no-untyped-def]
    """The last entry of ``cum[lo:lo+n]`` (ascending, ``cum[lo] = 0``) that is <= slot."""
    span = n
    while span > 1:
        half = span >> 1
        mid = lo + half
        lo = mid if cum[mid] <= slot else lo
        span -= half
    return lo


@njit(cache=True, nogil=True, inline="always")
def _uniform(u, n):  # type: ignore[no-untyped-def]
    """Slot ``u`` of the uniform code over ``n`` (2..256) values: (value, start, frequency)."""
    i = (u * n) >> PB
    r = REC[n]
    a = ((i << PB) + n - 1) * r >> 33
    b = (((i + 1) << PB) + n - 1) * r >> 33
    return i, a, b - a


@njit(cache=True, nogil=True)
def _count(keys, q, sbits, lbits, dt, cols, groups, sh, counts):  # type: ignore[no-untyped-def]
    """Per class the block's in-bin weights (v2's table statistics, with v3's bins)."""
    ka = np.empty(16, dtype=np.int64)
    kb = np.empty(16, dtype=np.int64)
    rows = keys.size // cols
    for r in range(rows):
        for g in range(groups):
            group_bins(sbits[r * groups + g], lbits[r * groups + g], dt, ka, kb)
            for c in range(g * 128, min(cols, g * 128 + 128)):
                t = r * cols + c
                k = np.int64(keys[t])
                if ka[q[t]] <= k <= kb[q[t]]:
                    counts[k >> sh] += 1


@njit(cache=True, nogil=True)
def _encode(keys, q, sbits, lbits, dt, W, cols, groups, sh):  # type: ignore[no-untyped-def]
    n = keys.size
    pc, nxt = present(W)
    ka = np.empty(16, dtype=np.int64)
    kb = np.empty(16, dtype=np.int64)
    start = np.empty(17, dtype=np.int64)
    cls = np.empty(16 * pc.size + 1, dtype=np.int64)
    cum = np.empty(16 * pc.size + 1, dtype=np.int64)
    esc = np.empty(n, dtype=np.uint16)
    ne = 0
    # int32 (every start and frequency is below 2^16): 4 of these are most of a block's memory
    st1 = np.full(n, -1, dtype=np.int32)  # class step (start, freq); -1: none
    fr1 = np.zeros(n, dtype=np.int32)
    st2 = np.full(n, -1, dtype=np.int32)  # uniform step
    fr2 = np.zeros(n, dtype=np.int32)
    rows = n // cols
    for r in range(rows):
        for g in range(groups):
            group_bins(sbits[r * groups + g], lbits[r * groups + g], dt, ka, kb)
            bin_tables(ka, kb, W, pc, nxt, sh, start, cls, cum)
            for c in range(g * 128, min(cols, g * 128 + 128)):
                t = r * cols + c
                qq = q[t]
                k = np.int64(keys[t])
                b0 = start[qq]
                b1 = start[qq + 1]
                j = -1
                if b1 > b0 and ka[qq] <= k <= kb[qq]:
                    kc = k >> sh
                    for e in range(b0, b1):
                        if cls[e] == kc:
                            j = e
                            break
                if j < 0:
                    esc[ne] = np.uint16(k)
                    ne += 1
                    if b1 > b0:
                        st1[t] = TOT
                        fr1[t] = 1
                    continue
                st1[t] = cum[j]
                fr1[t] = (cum[j + 1] if j + 1 < b1 else TOT) - cum[j]
                kc = cls[j]
                lo = max(ka[qq], kc << sh)
                m = min(kb[qq], ((kc + 1) << sh) - 1) - lo + 1
                if m > 1:
                    i = k - lo
                    r2 = REC[m]
                    a = ((i << PB) + m - 1) * r2 >> 33
                    st2[t] = a
                    fr2[t] = ((((i + 1) << PB) + m - 1) * r2 >> 33) - a
    per = (n + LANES - 1) // LANES
    words = np.empty((LANES, 2 * per + 2), dtype=np.uint32)  # each lane's words, filled from the end
    wps = np.full(LANES, 2 * per + 2, dtype=np.int64)
    xs = np.full(LANES, LOW, dtype=np.uint64)
    for t in range(n - 1, -1, -1):
        ln = t & (LANES - 1)
        x = xs[ln]
        wp = wps[ln]
        for step in range(2):  # the uniform step was decoded last: it is encoded first
            if step == 0:
                s0 = st2[t]
                f0 = fr2[t]
            else:
                s0 = st1[t]
                f0 = fr1[t]
            if s0 < 0:
                continue
            f = np.uint64(f0)
            if x >= (f << np.uint64(64 - PB)):
                wp -= 1
                words[ln, wp] = np.uint32(x & np.uint64(0xFFFFFFFF))
                x >>= np.uint64(32)
            x = ((x // f) << np.uint64(PB)) + (x % f) + np.uint64(s0)
        xs[ln] = x
        wps[ln] = wp
    counts = (2 * per + 2) - wps
    out = np.empty(counts.sum(), dtype=np.uint32)
    pos = 0
    for ln in range(LANES):
        out[pos:pos + counts[ln]] = words[ln, wps[ln]:]
        pos += counts[ln]
    return xs, out, counts, esc[:ne].copy()


@njit(cache=True, nogil=True)
def decode_keys(xs0, words, wcount, esc, q, sbits, lbits, dt, W, cols, groups, sh, out):  # type: ignore[no-untyped-def]
    """Keys of the block into ``out``; 0, or 1 when the streams do not decode (corrupt). The
    reference of ``_dual.decode_lookup``. ``words``: the lanes' word streams one after the other,
    ``wcount[l]`` words for lane ``l``."""
    pc, nxt = present(W)
    ka = np.empty(16, dtype=np.int64)
    kb = np.empty(16, dtype=np.int64)
    start = np.empty(17, dtype=np.int64)
    cls = np.empty(16 * pc.size + 1, dtype=np.int64)
    cum = np.empty(16 * pc.size + 1, dtype=np.int64)
    xs = xs0.copy()
    n = out.size
    wps = np.zeros(LANES, dtype=np.int64)  # each lane's next word, and its stream's end
    wend = np.zeros(LANES, dtype=np.int64)
    acc = 0
    for ln in range(LANES):
        if wcount[ln] < 0:
            return 1
        wps[ln] = acc
        acc += wcount[ln]
        wend[ln] = acc
    if acc != words.size:
        return 1
    ep = 0
    mask = np.uint64((1 << PB) - 1)
    rows = n // cols
    for r in range(rows):
        for g in range(groups):
            group_bins(sbits[r * groups + g], lbits[r * groups + g], dt, ka, kb)
            bin_tables(ka, kb, W, pc, nxt, sh, start, cls, cum)
            for c in range(g * 128, min(cols, g * 128 + 128)):
                t = r * cols + c
                qq = q[t]
                if qq > 15:
                    return 1
                ln = t & (LANES - 1)
                x = xs[ln]
                b0 = start[qq]
                b1 = start[qq + 1]
                if b1 == b0:  # no class of the block in this bin: the key is escaped
                    if ep >= esc.size:
                        return 1
                    out[t] = esc[ep]
                    ep += 1
                    continue
                slot = np.int64(x & mask)
                if slot >= TOT:
                    if ep >= esc.size:
                        return 1
                    k = np.int64(esc[ep])
                    ep += 1
                    a0 = np.int64(TOT)
                    f0 = np.int64(1)
                    m = np.int64(1)
                else:
                    j = _find(cum, b0, b1 - b0, slot)
                    a0 = cum[j]
                    f0 = (cum[j + 1] if j + 1 < b1 else TOT) - a0
                    kc = cls[j]
                    lo = max(ka[qq], kc << sh)
                    m = min(kb[qq], ((kc + 1) << sh) - 1) - lo + 1
                    k = lo
                x = np.uint64(f0) * (x >> np.uint64(PB)) + np.uint64(slot - a0)
                if x < LOW:
                    if wps[ln] >= wend[ln]:
                        return 1
                    x = (x << np.uint64(32)) | np.uint64(words[wps[ln]])
                    wps[ln] += 1
                if m > 1:
                    u = np.int64(x & mask)
                    i, a1, f1 = _uniform(u, m)
                    k += i
                    x = np.uint64(f1) * (x >> np.uint64(PB)) + np.uint64(u - a1)
                    if x < LOW:
                        if wps[ln] >= wend[ln]:
                            return 1
                        x = (x << np.uint64(32)) | np.uint64(words[wps[ln]])
                        wps[ln] += 1
                xs[ln] = x
                out[t] = k
    for ln in range(LANES):
        if xs[ln] != LOW or wps[ln] != wend[ln]:
            return 1
    if ep != esc.size:
        return 1
    return 0


def _side_bits(s16: np.ndarray, lo16: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(s16, dtype=np.float16).view(np.uint16).ravel(),
            np.ascontiguousarray(lo16, dtype=np.float16).view(np.uint16).ravel())


def encode_exact(bits: np.ndarray, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray, dtype: str) -> bytes:
    """Raw bits of a block (uint16/uint32, (rows, cols)) coded given its fast code."""
    wide = dtype == "F32"
    sh = v2._shift(dtype)
    dt = DT_CODE[dtype]
    cols = q.shape[1]
    groups = s16.shape[1]
    sb, lb = _side_bits(s16, lo16)
    keys, low = v2._keys16(np.ascontiguousarray(bits).ravel(), wide)
    qf = np.ascontiguousarray(q, dtype=np.uint8).ravel()
    counts = np.zeros((v2.NCTX, 1 << (16 - sh)), dtype=np.int64)
    _count(keys, qf, sb, lb, dt, cols, groups, sh, counts[0])
    lv = v2._levels(counts, sh)
    W = v2._LEVEL_W[lv[0]]
    xs, words, counts, esc = _encode(keys, qf, sb, lb, dt, W, cols, groups, sh)
    tab = v2._pack_tables(lv)
    return b"".join([v1._U32.pack(len(tab)), tab, v1._U32.pack(esc.size), esc.astype("<u2").tobytes(),
                     v2._low_bytes(low, cols) if wide else b"", xs.astype("<u8").tobytes(),
                     counts.astype("<u4").tobytes(), words.astype("<u4").tobytes()])


def kernel_args(data: bytes | memoryview, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray,
                dtype: str) -> tuple[tuple, np.ndarray]:
    """The decode kernel's arguments but the output, from a chunk (parsed and checked) and its
    fast code, and F32's low halves. Exposed for the property tests, which drive both kernels."""
    W, eb, low, xb, wb = v2.parse_chunk(data, q.shape, v2._shift(dtype), dtype == "F32", LANES)
    sb, lb = _side_bits(s16, lo16)
    counts = np.frombuffer(wb[:4 * LANES], "<u4").astype(np.int64)
    return (np.frombuffer(xb, "<u8").astype(np.uint64), np.frombuffer(wb[4 * LANES:], "<u4").astype(np.uint32),
            counts, np.frombuffer(eb, "<u2").astype(np.uint16), np.ascontiguousarray(q, dtype=np.uint8).ravel(),
            sb, lb, DT_CODE[dtype], W, q.shape[1], s16.shape[1], v2._shift(dtype)), low


def decode_exact(data: bytes | memoryview, q: np.ndarray, s16: np.ndarray, lo16: np.ndarray,
                 dtype: str, out: np.ndarray | None = None) -> np.ndarray:
    """Inverse of ``encode_exact``: the block's raw bits (uint16/uint32 in native order, flat;
    into ``out`` if given, e.g. a view of the tensor's bytes)."""
    wide = dtype == "F32"
    n = q.size
    keys = np.empty(n, dtype=np.int32)
    head, low = kernel_args(data, q, s16, lo16, dtype)
    args = (*head, keys)
    nat = native.dual()
    kernel = getattr(nat, "decode_lookup", None) if nat is not None else None
    if n and (kernel(*args) if kernel is not None else decode_keys(*args)):
        raise IntegrityError("dual stream corrupt: it does not decode")
    if out is None:
        out = np.empty(n, dtype=np.uint32 if wide else np.uint16)
    v2._unkey(keys, low, wide, out)
    return out
