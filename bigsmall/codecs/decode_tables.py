"""The ``field`` decoder's tables from the stored q-codes, in one compiled pass.

Why compiled: ``prepare`` runs once per tensor on the calling thread, before any chunk can start.
Done with numpy (row-by-row parsing, per-row sorts for the normalisation, table fills) it took
~1.4 ms per tensor, as long as decoding the tensor's chunks once the kernel got fast; this pass
takes microseconds. It computes exactly what ``tables.unpack_rows`` + ``tables.dequantize`` +
``rans.normalize_weights`` + ``rans.build_split_tables`` compute (spec §14.3-14.4, normative bit
for bit); ``tests/test_decode_tables.py`` checks it against them.
"""

from __future__ import annotations

import numpy as np

from ..native.jit import njit  # numba imported on first use (native/jit.py)

TRUNCATED = 1  # a row header or its codes run past the side information
OUT_OF_RANGE = 2  # lo + span > alphabet
TOO_MANY = 3  # more present symbols than table slots


@njit(nogil=True, cache=True)
def _row(raw, pos, alpha, q):
    """Parse one ``pack_rows`` row into ``q`` (zeroed, length alpha): (new pos, error)."""
    if pos + 4 > raw.shape[0]:
        return pos, TRUNCATED
    lo = np.int64(raw[pos]) | (np.int64(raw[pos + 1]) << 8)
    span = np.int64(raw[pos + 2]) | (np.int64(raw[pos + 3]) << 8)
    pos += 4
    if lo + span > alpha or pos + span > raw.shape[0]:
        return pos, OUT_OF_RANGE
    for s in range(alpha):
        q[s] = 0
    for s in range(span):
        q[lo + s] = raw[pos + s]
    return pos + span, 0


@njit(nogil=True, cache=True)
def present_symbols(w, alpha, n):
    """The ``n`` symbols ``s < alpha`` with ``w[s] > 0``, ascending (a loop, not
    ``np.flatnonzero``: see ``stable_order`` on why compiled code avoids it)."""
    out = np.empty(n, np.int64)
    k = 0
    for s in range(alpha):
        if w[s] > 0:
            out[k] = s
            k += 1
    return out


@njit(nogil=True, cache=True)
def stable_order(w, idx):
    """``idx`` sorted by ``w[idx]``, equal weights in their order in ``idx``: what
    ``idx[np.argsort(w[idx], kind="mergesort")]`` gives (a stable sort's order is unique),
    by a bottom-up merge sort written out (any comparable ``w``: int weights for the prefix
    code's leaves, float means for the encoder's start maps). Why not numpy's: compiled code
    that calls
    ``np.argsort``, ``np.flatnonzero`` or array comparisons makes numba import its numpy
    implementation modules when the cached kernel is loaded (tens of ms of every cold
    ``decompress`` of a prefix-coded file)."""
    n = idx.shape[0]
    a = idx.copy()
    b = np.empty(n, np.int64)
    width = 1
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            x = lo
            y = mid
            for k in range(lo, hi):
                if x < mid and (y >= hi or w[a[x]] <= w[a[y]]):
                    b[k] = a[x]
                    x += 1
                else:
                    b[k] = a[y]
                    y += 1
            lo = hi
        a, b = b, a
        width *= 2
    return a


@njit(nogil=True, cache=True)
def _normalize(q, alpha, bits, f, w, rem):
    """Spec §14.4 ``normalize`` of the weights of codes ``q`` into ``f``; error code or 0.
    ``w``/``rem``: the caller's scratch (length >= alpha), so a tensor's ~300 rows allocate
    nothing."""
    total = 1 << bits
    for s in range(alpha):
        w[s] = 0
        rem[s] = 0
    wsum = 0
    npres = 0
    for s in range(alpha):
        f[s] = 0
        if q[s] > 0:
            c = np.int64(q[s]) - 1
            w[s] = (16 + (c & 15)) << (c >> 4)
            wsum += w[s]
            npres += 1
    if npres == 0:
        return 0
    if npres > total:
        return TOO_MANY
    fsum = 0
    for s in range(alpha):
        if w[s] > 0:  # wsum < 2**28 and total <= 2**12: the product fits int64
            f[s] = max((w[s] * total) // wsum, 1)
            rem[s] = (w[s] * total) % wsum
            fsum += f[s]
    diff = total - fsum
    present = present_symbols(w, alpha, npres)
    key = np.empty(npres, np.int64)
    if diff > 0:
        for k in range(npres):  # largest remainder first, ties: lower symbol (keys are unique)
            key[k] = (wsum - rem[present[k]]) * 256 + present[k]
        order = present[np.argsort(key)]
        for k in range(diff):
            f[order[k % npres]] += 1
    while diff < 0:
        for k in range(npres):  # largest frequency first, ties: lower symbol
            key[k] = (total + 1 - f[present[k]]) * 256 + present[k]
        order = present[np.argsort(key)]
        for s in order:
            if diff == 0:
                break
            if f[s] > 1:
                f[s] -= 1
                diff += 1
    return 0


@njit(nogil=True, cache=True)
def _fill(f, alpha, row, bits, rowbits, tsym, tfc):
    """Slot -> symbol and symbol -> freq | cum << 16 of one normalised row (``tfc`` rows of
    ``2**rowbits`` entries). Each symbol's slots are one slice fill: a byte-by-byte loop made
    the slot tables 2.2x slower (MiniLM bf16's 33 ``field8`` tensors: 3.7 -> 1.7 ms)."""
    cum = 0
    base = row << bits
    for s in range(alpha):
        tfc[(row << rowbits) + s] = f[s] | (cum << 16)
        if f[s] > 0:
            tsym[base + cum : base + cum + f[s]] = np.uint8(s)
        cum += f[s]


@njit(nogil=True, cache=True)
def build_tables(raw, pos, nctx, eb, mb, pbits, mpbits, compact):
    """Decode tables of a ``field`` tensor from its side information at ``pos``.

    Returns (tsym, tfc, msym, mfc, pos after the tables, error): ``tsym[(ctx << pbits) + slot]``
    is the exponent symbol of a slot, ``tfc[(ctx << R) + e]`` its freq | cum << 16; ``msym`` and
    ``mfc`` (``mfc[(e << R') + m]``) the same for the mantissa symbol, one row per exponent
    value (all zero for absent rows and when ``mb`` is 0). Rows of 256 entries (R = R' = 8),
    or with ``compact`` of ``2**eb`` / ``2**mb`` (R = eb, R' = mb: what the ``field8`` kernel
    indexes; a bf16 tensor's mantissa rows then take 8 KiB instead of 256). The frequencies
    are ``read_freqs``'; on an error the tables are left empty.
    """
    alpha = 1 << eb
    er = eb if compact else 8
    mr = mb if compact else 8
    tsym = np.zeros(nctx << pbits, np.uint8)
    tfc = np.zeros(nctx << er, np.uint32)
    mrows = alpha if mb > 0 else 1
    msym = np.zeros(mrows << mpbits, np.uint8)
    mfc = np.zeros(mrows << mr, np.uint32)
    fe, fm, pos, err = read_freqs(raw, pos, nctx, eb, mb, pbits, mpbits)
    if err != 0:
        return tsym, tfc, msym, mfc, pos, err
    for ctx in range(nctx):
        _fill(fe[ctx], alpha, ctx, pbits, er, tsym, tfc)
    for e in range(fm.shape[0]):
        _fill(fm[e], fm.shape[1], e, mpbits, mr, msym, mfc)
    return tsym, tfc, msym, mfc, pos, 0


@njit(nogil=True, cache=True)
def _read_rows(raw, pos, dst, alpha, bits, q, f, w, rem):
    """Parse and normalise ``dst.shape[0]`` rows of ``alpha`` codes into ``dst``: (pos, error)."""
    for r in range(dst.shape[0]):
        pos, err = _row(raw, pos, alpha, q)
        if err == 0:
            err = _normalize(q, alpha, bits, f, w, rem)
        if err != 0:
            return pos, err
        dst[r, :] = f[:alpha]
    return pos, 0


@njit(nogil=True, cache=True)
def read_freqs(raw, pos, nctx, eb, mb, pbits, mpbits):
    """The normalised frequencies of a ``field`` tensor, compact: what ``build_tables`` stores
    in ``tfc``/``mfc``, without its slot tables (the ``fieldp`` decoder derives prefix codes
    from them and never looks a slot up: the slot tables were a third of its table time and
    0.3 MB of zeroed memory for a bf16 tensor).

    Returns (fe int64[nctx, 2**eb], fm int64[2**eb, 2**mb] (shape (0, 1) when mb is 0),
    pos after the tables, error)."""
    alpha = 1 << eb
    fe = np.zeros((nctx, alpha), np.int64)
    fm = np.zeros((alpha if mb > 0 else 0, 1 << mb), np.int64)
    q = np.zeros(256, np.uint8)  # either alphabet (exponent 2**eb, mantissa 2**mb) fits
    f = np.zeros(256, np.int64)
    w = np.empty(256, np.int64)
    rem = np.empty(256, np.int64)
    pos, err = _read_rows(raw, pos, fe, alpha, pbits, q, f, w, rem)
    if err == 0:
        pos, err = _read_rows(raw, pos, fm, 1 << mb, mpbits, q, f, w, rem)
    return fe, fm, pos, err
