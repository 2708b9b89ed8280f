"""Prefix (Huffman) codes for the ``fieldp`` codec, derived from ``field``'s stored tables.

Why derived, not stored: the joint weight of a symbol ``s = e << mb | m`` in a context is the
product of the context's exponent frequency and the exponent's mantissa frequency, both already
in the head (spec §14.4). Optimal length-limited code lengths of those weights (package-merge,
``LMAX`` bits) are a deterministic function of them, so encoder and decoder build the same code
and the side information does not grow by a byte.

Decode tables (per context, ``L1`` index bits, uint16 entries ``sym | len << 12``):

- ``t1[ctx << L1 | next L1 bits]``: the symbol and its length for codes of at most ``L1`` bits;
  ``len`` field ``LONG`` for a longer code (then ``dirs`` at the same index gives
  ``offset << 4 | sub_bits`` of its second-level table in ``t2``, indexed by the next
  ``sub_bits`` bits); ``len`` field ``EMPTY`` in a context that holds no symbol (a unit there
  is corrupt data). A context with one symbol has a zero-length code.
- ``t2``: uint16 ``sym | len << 12`` (``L1 < len <= LMAX``).

Why ``L1`` = 10 (a decoder-only choice; the format fixes the codes, not the tables): the
tables of a tensor's contexts (up to 64) must stay in the core's caches, and measured with the
kernel alone (CPU time, interleaved in one process, all fieldp tensors): 10 bits decode
10-16 % faster than 11 on MiniLM bf16 / fp32 and whisper-tiny fp16; 9 bits gains nothing more
while more codes go through the second level.

Bits are read LSB first; a code's most significant bit is read first (canonical codes, as in
DEFLATE), so the table index is the code bit-reversed.
"""

from __future__ import annotations

import numpy as np

from ..native.jit import njit  # numba imported on first use (native/jit.py)
from .decode_tables import present_symbols, read_freqs, stable_order

LMAX = 15  # longest code (a 4-bit length field)
L1 = 10  # first-level table index bits: 2 KiB of table per context (see below)
SYM_BITS = 12  # entry = symbol | length << 12: joint symbols have at most 12 bits
EMPTY = 14  # length field of a t1 entry in an empty context
LONG = 15  # length field of a t1 entry whose code is longer than L1


@njit(nogil=True, cache=True)
def code_lengths(w: np.ndarray, lmax: int) -> np.ndarray:
    """Optimal code lengths (<= ``lmax``) for the weights ``w`` (int64; 0 = absent symbol).

    Package-merge (spec §19.2), with the selected items counted level by level instead of
    materialising their leaf sets: the selected items of every list are a prefix of it, and the
    leaves in a prefix of a merged list are a prefix of the sorted leaves, so the length of
    the leaf of rank r is the number of lists whose selected prefix holds more than r leaves.
    Ties: leaves sorted by (weight, symbol); in a merge, a leaf goes before a package of equal
    weight. One present symbol: length 0. Requires n <= 2**lmax present symbols."""
    a = w.shape[0]
    out = np.zeros(a, np.int64)
    n = 0
    for s in range(a):
        if w[s] > 0:
            n += 1
    if n <= 1:
        return out  # 0 symbols: no code; 1 symbol: a zero-length code
    leaf = stable_order(w, present_symbols(w, a, n))  # equal weights by symbol
    big = np.int64(1) << 61  # sentinel: above any real weight or package (< 2**35)
    lw = np.empty(n + 1, np.int64)
    for r in range(n):
        lw[r] = w[leaf[r]]
    lw[n] = big
    cap = 2 * n
    # weights of the previous and current merged list, each followed by two sentinels, and
    # per level whether each item of its merged list is a leaf
    prev = np.empty(cap + 2, np.int64)
    cur = np.empty(cap + 2, np.int64)
    isleaf = np.empty(lmax * cap, np.uint8)
    for r in range(n):
        prev[r] = lw[r]
    prev[n] = big
    prev[n + 1] = big
    size = n
    for j in range(1, lmax):
        npk = size // 2
        x = 0  # next leaf
        y = 0  # next package
        base = j * cap
        for k in range(n + npk):
            # a leaf goes first on a tie; past either end the sentinels make the other win
            pw = prev[2 * y] + prev[2 * y + 1]
            lv = lw[x]
            if lv <= pw:
                cur[k] = lv
                isleaf[base + k] = 1
                x += 1
            else:
                cur[k] = pw
                isleaf[base + k] = 0
                y += 1
        size = n + npk
        cur[size] = big
        cur[size + 1] = big
        prev, cur = cur, prev
    sel = np.zeros(lmax, np.int64)  # leaves selected at each level
    k = 2 * n - 2
    for j in range(lmax - 1, 0, -1):
        base = j * cap
        leaves = 0
        for z in range(k):
            leaves += isleaf[base + z]
        sel[j] = leaves
        k = 2 * (k - leaves)
    sel[0] = k
    for r in range(n):
        c = 0
        for j in range(lmax):
            if r < sel[j]:
                c += 1
        out[leaf[r]] = c
    return out


@njit(nogil=True, cache=True)
def canonical_codes(lens: np.ndarray) -> np.ndarray:
    """Canonical codes of ``lens`` (in order of length, then symbol: the first code of each
    length follows the last of the shorter ones, as in DEFLATE), bit-reversed: ready to be
    written LSB first so that the code's most significant bit comes first."""
    a = lens.shape[0]
    count = np.zeros(LMAX + 2, np.int64)
    for s in range(a):
        count[lens[s]] += 1
    count[0] = 0
    nxt = np.zeros(LMAX + 2, np.int64)
    code = 0
    for ln in range(1, LMAX + 1):
        code = (code + count[ln - 1]) << 1
        nxt[ln] = code
    codes = np.zeros(a, np.int64)
    for s in range(a):
        ln = lens[s]
        if ln == 0:
            continue
        c = nxt[ln]
        nxt[ln] += 1
        rev = 0
        for z in range(ln):
            rev |= ((c >> z) & 1) << (ln - 1 - z)
        codes[s] = rev
    return codes


@njit(nogil=True, cache=True)
def joint_weights(fe: np.ndarray, fm: np.ndarray, eb: int, mb: int):  # type: ignore[no-untyped-def]
    """(sym, w): the joint symbols present in some context (ascending) and their weights
    int64[nctx, len(sym)] = fe[ctx, e] * fm[e, m] (fe[ctx, e] if mb == 0), from the normalised
    frequencies of ``decode_tables.read_freqs``. Compact: a bf16 tensor has ~100-200 of its
    2048 joint symbols, so nothing is sized or scanned by the full alphabet."""
    nctx = fe.shape[0]
    ae = 1 << eb
    am = 1 << mb
    used = np.zeros(ae, np.bool_)
    for c in range(nctx):
        for e in range(ae):
            if fe[c, e]:
                used[e] = True
    na = 0
    for e in range(ae):
        if used[e]:
            if mb == 0:
                na += 1
            else:
                for m in range(am):
                    if fm[e, m]:
                        na += 1
    sym = np.empty(na, np.int64)
    se = np.empty(na, np.int64)  # the symbol's exponent
    sm = np.empty(na, np.int64)  # its mantissa weight (1 if mb == 0)
    x = 0
    for e in range(ae):
        if not used[e]:
            continue
        if mb == 0:
            sym[x] = e
            se[x] = e
            sm[x] = 1
            x += 1
            continue
        for m in range(am):
            g = fm[e, m]
            if g:
                sym[x] = (e << mb) | m
                se[x] = e
                sm[x] = g
                x += 1
    w = np.empty((nctx, na), np.int64)
    for c in range(nctx):
        for x in range(na):
            w[c, x] = fe[c, se[x]] * sm[x]
    return sym, w


NO_CODE = 16  # decode_model's error: the weights give no complete prefix code


@njit(nogil=True, cache=True)
def decode_model(raw: np.ndarray, pos: int, nctx: int, eb: int, mb: int, pbits: int,
                 mpbits: int):  # type: ignore[no-untyped-def]
    """(t1, dirs, t2, pos after the tables, error) of a ``fieldp`` tensor from its side
    information at ``pos``: frequencies, joint weights and decode tables in one compiled call
    (three calls and their arrays cost as much Python dispatch as table building on the many
    small tensors of a model). ``error``: a ``decode_tables`` code, or NO_CODE."""
    fe, fm, pos, err = read_freqs(raw, pos, nctx, eb, mb, pbits, mpbits)
    if err != 0:
        e16 = np.zeros(1, np.uint16)
        return e16, np.zeros(1, np.int64), e16, pos, err
    sym, w = joint_weights(fe, fm, eb, mb)
    _lens, _codes, t1, dirs, t2, ok = build(sym, w)
    return t1, dirs, t2, pos, 0 if ok else NO_CODE


@njit(nogil=True, cache=True)
def code_table(w: np.ndarray):  # type: ignore[no-untyped-def]
    """(lens, codes, ok): per context (row of ``w``, int64[nctx, na]) the code lengths and
    bit-reversed canonical codes of its present symbols (int64[nctx, na]; 0 for absent ones
    and for a context's only symbol: a zero-length code). ``ok`` is False only if a code is
    not complete (cannot happen for package-merge output). What the encoder needs; ``build``
    adds the decode tables."""
    nctx, na = w.shape
    lens = np.zeros((nctx, na), np.int64)
    codes = np.zeros((nctx, na), np.int64)
    wc = np.empty(na, np.int64)
    for c in range(nctx):
        npres = 0
        for x in range(na):
            wc[x] = w[c, x]
            if wc[x] > 0:
                npres += 1
        if npres <= 1:
            continue
        lc = code_lengths(wc, LMAX)
        cc = canonical_codes(lc)
        kraft = 0
        for x in range(na):
            if lc[x] > 0:
                kraft += 1 << (LMAX - lc[x])
        if kraft != 1 << LMAX:
            return lens, codes, False
        for x in range(na):
            lens[c, x] = lc[x]
            codes[c, x] = cc[x]
    return lens, codes, True


@njit(nogil=True, cache=True)
def build(sym: np.ndarray, w: np.ndarray):  # type: ignore[no-untyped-def]
    """(lens, codes, t1, dirs, t2, ok) for the joint symbols ``sym`` (ascending, < 2**SYM_BITS)
    with weights ``w`` (int64[nctx, len(sym)], ``joint_weights``): ``code_table``, then the
    decode tables (``dirs`` is only defined where ``t1`` says LONG). ``ok`` is False only if
    a code is not complete (then the tables are not filled)."""
    nctx, na = w.shape
    t1 = np.empty(nctx << L1, np.uint16)
    dirs = np.empty(nctx << L1, np.int64)
    t2 = np.zeros(64, np.uint16)  # second level: grown as needed (long codes are rare)
    lens, codes, ok = code_table(w)
    if not ok:
        return lens, codes, t1, dirs, t2[:1], False
    sub = np.zeros(1 << L1, np.int64)  # per L1-bit prefix: longest code length - L1
    used = 0
    for c in range(nctx):
        base = c << L1
        npres = 0
        single = 0
        for x in range(na):
            if w[c, x] > 0:
                npres += 1
                single = sym[x]
        if npres <= 1:  # no symbol; or the zero-length code: every slot is the symbol
            fill = EMPTY << SYM_BITS if npres == 0 else single
            for idx in range(base, base + (1 << L1)):
                t1[idx] = fill
            continue
        # short codes fill their slots of t1; long codes: group by their first L1 bits
        for x in range(na):
            ln = lens[c, x]
            if ln == 0:
                continue
            if ln <= L1:
                e = sym[x] | (ln << SYM_BITS)
                for idx in range(codes[c, x], 1 << L1, 1 << ln):
                    t1[base + idx] = e
            else:
                pre = codes[c, x] & ((1 << L1) - 1)
                sub[pre] = max(sub[pre], ln - L1)
        for x in range(na):
            if lens[c, x] <= L1:
                continue
            pre = codes[c, x] & ((1 << L1) - 1)
            if sub[pre] == 0:  # this prefix's table is placed already
                continue
            size = 1 << sub[pre]
            while used + size > t2.shape[0]:
                grown = np.zeros(2 * t2.shape[0], np.uint16)
                for z in range(used):
                    grown[z] = t2[z]
                t2 = grown
            t1[base + pre] = LONG << SYM_BITS
            dirs[base + pre] = (used << 4) | sub[pre]
            used += size
            sub[pre] = 0
        for x in range(na):
            ln = lens[c, x]
            if ln <= L1:
                continue
            d = dirs[base + (codes[c, x] & ((1 << L1) - 1))]
            off = d >> 4
            e = sym[x] | (ln << SYM_BITS)
            for idx in range(codes[c, x] >> L1, 1 << (d & 15), 1 << (ln - L1)):
                t2[off + idx] = e
    t2out = np.empty(max(used, 1), np.uint16)
    for z in range(t2out.shape[0]):
        t2out[z] = t2[z]
    return lens, codes, t1, dirs, t2out, True
