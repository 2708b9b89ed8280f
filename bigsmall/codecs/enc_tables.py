"""The encoder's side-information tables, compiled: quantised weights, packed rows, frequencies.

Why: ``tables.quantize_counts``, ``tables.pack_rows`` and ``rans.normalize_weights`` are numpy
code on small arrays (one tensor's tables: a few hundred rows), so the encoder's worker threads
spent their time there holding the GIL, and on more cores waited for each other. These
kernels compute exactly what those functions compute (the numpy versions stay as the reference
and the spec's wording; ``property_tests/test_encoder_kernels.py`` compares them), without the
GIL. The frequencies come from the decoder's own normalisation (``decode_tables._normalize``),
which the decoder runs on the stored codes: encoder and decoder share one implementation.
"""

from __future__ import annotations

import numpy as np

from ..native.jit import njit  # numba imported on first use (native/jit.py)
from . import tables
from .decode_tables import TOO_MANY, _normalize
from .numpy_exact import _pairwise_sum
from .prefix import code_table, joint_weights

_LOGW = tables._LOGW
_TOP = tables.TOP


@njit(nogil=True, cache=True, native="quantize")  # C port: native/enc_count.h
def _quantize(counts, logw, top):
    """``tables.quantize_counts`` of a 2-d count table (same float operations, same order)."""
    nr, a = counts.shape
    n = logw.shape[0]
    out = np.zeros((nr, a), dtype=np.uint8)
    for r in range(nr):
        peak = 0.0
        for s in range(a):
            peak = max(peak, np.float64(counts[r, s]))
        if peak == 0.0:
            peak = 1.0
        for s in range(a):
            c = np.float64(counts[r, s])
            if c <= 0.0:
                continue
            v = np.log2(c / peak * top)
            lo = 0
            hi = n
            while lo < hi:  # np.searchsorted(logw, v): first entry >= v
                mid = (lo + hi) >> 1
                if logw[mid] < v:
                    lo = mid + 1
                else:
                    hi = mid
            idx = min(lo, n - 1)
            lower = max(idx - 1, 0)
            if abs(v - logw[lower]) < abs(logw[idx] - v):
                idx = lower
            out[r, s] = idx + 1
    return out


def quantize_counts(counts: np.ndarray) -> np.ndarray:
    """``tables.quantize_counts`` of a 2-d count table, compiled (uint8 codes)."""
    return _quantize(np.ascontiguousarray(counts), _LOGW, _TOP)


@njit(nogil=True, cache=True, native="pack")  # C port: native/enc_count.h
def _pack(q):
    """``tables.pack_rows`` into a byte array: (buffer, used length)."""
    nr, w = q.shape
    out = np.empty(nr * (4 + w), dtype=np.uint8)
    p = 0
    for r in range(nr):
        lo = 0
        while lo < w and q[r, lo] == 0:
            lo += 1
        hi = w
        while hi > lo and q[r, hi - 1] == 0:
            hi -= 1
        if lo == w:  # no present symbol: an empty row at 0
            lo = 0
            hi = 0
        span = hi - lo
        out[p] = lo & 255
        out[p + 1] = lo >> 8
        out[p + 2] = span & 255
        out[p + 3] = span >> 8
        p += 4
        for s in range(lo, hi):
            out[p] = q[r, s]
            p += 1
    return out, p


def pack_rows(q: np.ndarray) -> bytes:
    """``tables.pack_rows``, compiled."""
    q2 = np.ascontiguousarray(np.atleast_2d(q), dtype=np.uint8)
    if q2.shape[0] == 0:
        return b""
    buf, n = _pack(q2)
    return buf[:n].tobytes()


@njit(nogil=True, cache=True, native="normalize_rows")  # C port: native/enc_count.h
def _normalize_rows(q, bits):
    nr, a = q.shape
    out = np.zeros((nr, a), dtype=np.int64)
    f = np.zeros(a, np.int64)
    w = np.empty(a, np.int64)
    rem = np.empty(a, np.int64)
    for r in range(nr):
        err = _normalize(q[r], a, bits, f, w, rem)
        if err != 0:
            return out, err
        out[r, :] = f
    return out, 0


def normalize_codes(q: np.ndarray, bits: int) -> np.ndarray:
    """``rans.normalize_weights(tables.dequantize(q), bits)`` of uint8 codes ``q[rows, alpha]``:
    the frequencies the decoder rebuilds from them. ValueError as there when a row has more
    symbols than slots."""
    q2 = np.ascontiguousarray(q, dtype=np.uint8)
    if q2.shape[1] > 256:  # the format's alphabets (eb, mb <= 8); the kernel's tie keys are 8-bit
        raise ValueError(f"alphabet of {q2.shape[1]} symbols; at most 256")
    out, err = _normalize_rows(q2, bits)
    if err == TOO_MANY:
        raise ValueError("more distinct symbols than table slots")
    return out


@njit(nogil=True, cache=True, native="joint_code")  # C port: native/enc_count.h
def joint_code(freq, mfreq, mrow, eb, mb):
    """``fieldp.joint_code``'s (w, lens, codes) plus whether the code is complete, in one
    compiled call: the joint weights ``freq[ctx, e] * mfreq[mrow[e], m]`` of the symbols present
    in some context, as the decoder derives them (``prefix.joint_weights``), their prefix code
    (``prefix.code_table``), both scattered to every (context, symbol ``e << mb | m``)."""
    nctx, a = freq.shape
    ma = mfreq.shape[1]
    fm = np.empty((a, ma), dtype=np.int64)  # the mantissa weights of each exponent
    for e in range(a):
        for m in range(ma):
            fm[e, m] = mfreq[mrow[e], m]
    sym, sub = joint_weights(freq, fm, eb, mb)
    lc, cc, ok = code_table(sub)
    nsym = a << mb
    w = np.zeros((nctx, nsym), dtype=np.int64)
    lens = np.zeros((nctx, nsym), dtype=np.int64)
    codes = np.zeros((nctx, nsym), dtype=np.int64)
    for c in range(nctx):
        for t in range(sym.shape[0]):
            w[c, sym[t]] = sub[c, t]
            lens[c, sym[t]] = lc[c, t]
            codes[c, sym[t]] = cc[c, t]
    return w, lens, codes, ok


@njit(nogil=True, cache=True, native="estimate_bits")  # C port: native/enc_count.h
def estimate_bits(counts, w, lens, pbits):
    """(covered, rANS bits, prefix bits) of ``auto.estimate``: Σ count x (pbits - log2 w) over
    the symbols that occur, summed as numpy sums ``counts[used] * (pbits - np.log2(w[used]))``
    (the same float64: the choice between the coders must not move), and Σ count x length
    (integers). ``covered`` is False when a symbol that occurs has no weight."""
    nctx, a = counts.shape
    terms = np.empty(nctx * a, dtype=np.float64)
    m = 0
    plen = 0
    for c in range(nctx):
        for s in range(a):
            k = counts[c, s]
            plen += k * lens[c, s]
            if k > 0:
                if w[c, s] <= 0:
                    return False, 0.0, 0
                terms[m] = np.float64(k) * (np.float64(pbits) - np.log2(np.float64(w[c, s])))
                m += 1
    return True, 0.0 + _pairwise_sum(terms, 0, m), plen
