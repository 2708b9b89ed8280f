"""EXPERIMENTAL (issue 3, not wired into any codec): a prefix-code entropy stage for ``field``.

Idea: one table lookup per element. The coded field (exponent + top ``mb`` mantissa bits) is one
*joint* symbol per element, coded with a length-limited canonical prefix (Huffman) code of its
context; the code is derived from today's stored tables (exponent weights per context x mantissa
weights per exponent), so the side information does not change. Each element's raw bits follow
its code word in the same bit stream, so one unaligned 64-bit load serves both.

Chunk layout (prototype, little-endian)::

    N x u32 lane stream bytes | lane 0 bits | ... | lane N-1 bits | 8 zero bytes

Element ``t`` belongs to lane ``t % N``; each lane is an LSB-first bit stream of
``code(symbol) | raw bits`` per element. The decoder keeps one bit position per lane:

    w = ld64(buf, pos >> 3) >> (pos & 7)             # >= 57 valid bits
    e = table[(ctx << L) | (w & (2**L - 1))]         # symbol | length << 12  (uint16)
    r = (w >> len) & rawmask ; pos += len + rawbits

The per-lane dependency chain is load -> lookup -> add (~12-15 cycles), so a few lanes keep
the core busy; there is no multiply, no renormalisation and no state.

Why not always: a prefix code spends a whole number of bits per symbol; its loss against rANS is
what ``benchmarks/proto_entropy.py`` measures (the joint symbol has ~8-11 bits of alphabet and is
far from skewed, so the loss is small).
"""

from __future__ import annotations

import heapq

import numpy as np
from numba import njit

SYM_BITS = 12  # entry = symbol | length << SYM_BITS (symbol < 4096, length <= 15)


def code_lengths(weights: np.ndarray, limit: int) -> np.ndarray:
    """Length-limited prefix code lengths for positive ``weights`` (0 = absent, length 0).

    Huffman lengths, then (if any exceeds ``limit``) the longest are cut to ``limit`` and the
    Kraft excess is repaid by lengthening the codes where one more bit costs the least weight
    per unit of Kraft sum; finally codes are shortened where the Kraft sum has room. Integer
    arithmetic only, ties broken by symbol: deterministic."""
    w = np.asarray(weights, dtype=np.int64)
    present = np.flatnonzero(w > 0)
    lens = np.zeros(w.size, np.int64)
    if present.size == 0:
        return lens
    if present.size == 1:
        lens[present[0]] = 1
        return lens
    heap: list[tuple[int, int, tuple[int, ...]]] = [(int(w[s]), int(s), (int(s),))
                                                     for s in present]
    heapq.heapify(heap)
    depth = {int(s): 0 for s in present}
    # Huffman by merging (leaf lists are small: alphabets of a few hundred symbols)
    while len(heap) > 1:
        a = heapq.heappop(heap)
        b = heapq.heappop(heap)
        for leaf in a[2] + b[2]:
            depth[leaf] += 1
        heapq.heappush(heap, (a[0] + b[0], min(a[1], b[1]), a[2] + b[2]))
    for leaf, d in depth.items():
        lens[leaf] = d
    if lens.max() > limit:
        lens[present] = np.minimum(lens[present], limit)
        unit = 1 << limit
        kraft = int(sum(unit >> int(lens[s]) for s in present))
        while kraft > unit:
            # lengthen the symbol with the least weight per Kraft unit saved
            best, bkey = -1, None
            for s in present:
                ls = int(lens[s])
                if ls >= limit:
                    continue
                key = (int(w[s]) * (1 << ls), int(s))  # w / 2^-(l+1) ~ w * 2^l
                if bkey is None or key < bkey:
                    best, bkey = int(s), key
            kraft -= unit >> (int(lens[best]) + 1)
            lens[best] += 1
        # use the room left: shorten the heaviest symbols that fit
        order = sorted(present, key=lambda s: (-int(w[s]), int(s)))
        changed = True
        while changed:
            changed = False
            for s in order:
                ls = int(lens[s])
                if ls > 1 and kraft + (unit >> ls) <= unit:
                    kraft += unit >> ls
                    lens[s] -= 1
                    changed = True
    return lens


def canonical_codes(lens: np.ndarray) -> np.ndarray:
    """Canonical codes (by length, then symbol), bit-reversed for LSB-first reading."""
    codes = np.zeros(lens.size, np.int64)
    order = sorted((int(lane), s) for s, lane in enumerate(lens) if lane > 0)
    code = 0
    prev = 0
    for lane, s in order:
        code <<= lane - prev
        prev = lane
        rev = 0
        for z in range(lane):
            rev |= ((code >> z) & 1) << (lane - 1 - z)
        codes[s] = rev
        code += 1
    return codes


def tables(jweights: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per context: code lengths, reversed codes (int64[nctx, A]) and the decode table
    (uint16[nctx << limit], entry = symbol | length << 12)."""
    nctx, a = jweights.shape
    lens = np.zeros((nctx, a), np.int64)
    codes = np.zeros((nctx, a), np.int64)
    dec = np.zeros(nctx << limit, np.uint16)
    for c in range(nctx):
        lens[c] = code_lengths(jweights[c], limit)
        codes[c] = canonical_codes(lens[c])
        for s in np.flatnonzero(lens[c]):
            lane = int(lens[c, s])
            idx = codes[c, s] + (np.arange(1 << (limit - lane), dtype=np.int64) << lane)
            dec[(c << limit) + idx] = s | (lane << SYM_BITS)
    return lens, codes, dec


def optimal_lengths(w: np.ndarray, limit: int) -> np.ndarray:
    """Optimal length-limited code lengths (package-merge) for the positive weights ``w``
    (0 = absent, length 0). Ties by symbol: deterministic."""
    w = np.asarray(w, dtype=np.int64)
    present = [int(s) for s in np.flatnonzero(w > 0)]
    lens = np.zeros(w.size, np.int64)
    if not present:
        return lens
    if len(present) == 1:
        lens[present[0]] = 1
        return lens
    nodes: list = []  # ("leaf", sym) or ("pkg", a, b)
    leaves = []
    for s in sorted(present, key=lambda s: (int(w[s]), s)):
        nodes.append(("leaf", s))
        leaves.append((int(w[s]), len(nodes) - 1))
    cur = list(leaves)
    for _ in range(limit - 1):
        pk = []
        for a in range(0, len(cur) - 1, 2):
            nodes.append(("pkg", cur[a][1], cur[a + 1][1]))
            pk.append((cur[a][0] + cur[a + 1][0], len(nodes) - 1))
        cur = sorted(leaves + pk, key=lambda it: it[0])
    for _, nid in cur[: 2 * len(present) - 2]:
        stack = [nid]
        while stack:
            nd = nodes[stack.pop()]
            if nd[0] == "leaf":
                lens[nd[1]] += 1
            else:
                stack.append(nd[1])
                stack.append(nd[2])
    return lens


L1 = 11  # first-level index bits of the two-level tables
LMAX = 15  # code length limit of the two-level variant (4-bit length field)


def tables2(jweights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                            np.ndarray]:
    """Two-level decode tables for codes up to ``LMAX`` bits (optimal lengths).

    ``t1``: uint16[nctx << L1]: ``sym | len << 12`` for codes of <= L1 bits; ``len == 0`` marks
    a longer code whose sub-table is ``dirs[sym]`` = ``offset << 4 | sub_bits`` in ``t2``
    (uint16, entries ``sym | len << 12``, indexed by the next ``sub_bits`` bits).
    Returns (lens, codes, t1, t2, dirs)."""
    nctx, a = jweights.shape
    lens = np.zeros((nctx, a), np.int64)
    codes = np.zeros((nctx, a), np.int64)
    t1 = np.zeros(nctx << L1, np.uint16)
    t2: list[int] = []
    dirs: list[int] = []
    for c in range(nctx):
        lens[c] = optimal_lengths(jweights[c], LMAX)
        codes[c] = canonical_codes(lens[c])
        groups: dict[int, list[int]] = {}
        for s in np.flatnonzero(lens[c]):
            ln = int(lens[c, s])
            if ln <= L1:
                idx = codes[c, s] + (np.arange(1 << (L1 - ln), dtype=np.int64) << ln)
                t1[(c << L1) + idx] = s | (ln << SYM_BITS)
            else:
                groups.setdefault(int(codes[c, s]) & ((1 << L1) - 1), []).append(int(s))
        for prefix, syms in sorted(groups.items()):
            sub = max(int(lens[c, s]) for s in syms) - L1
            off = len(t2)
            t2.extend([0] * (1 << sub))
            for sy in syms:
                ln = int(lens[c, sy])
                rest = int(codes[c, sy]) >> L1
                for k in range(1 << (sub - (ln - L1))):
                    t2[off + rest + (k << (ln - L1))] = sy | (ln << SYM_BITS)
            if len(dirs) >= 1 << SYM_BITS:
                raise ValueError("too many long-code prefixes for the prototype's directory")
            t1[(c << L1) + prefix] = len(dirs)
            dirs.append(off << 4 | sub)
    dirs += [0] * ((1 << SYM_BITS) - len(dirs))  # any 12-bit index is valid (branchless form)
    return lens, codes, t1, np.array(t2 or [0], np.uint16), np.array(dirs, np.int64)


@njit(cache=True)
def _write_lanes(N, code, clen, raw, rlen):
    """Per lane, the LSB-first bit stream of code|raw of its elements; returns the chunk."""
    n = code.shape[0]
    total = 0
    for t in range(n):
        total += clen[t] + rlen[t]
    out = np.zeros(4 * N + (total + 7) // 8 + 8 * N + 8, np.uint8)
    pos = 4 * N
    for lane in range(N):
        start = pos
        acc = np.uint64(0)
        nb = 0
        for t in range(lane, n, N):
            acc |= np.uint64(code[t]) << np.uint64(nb)
            nb += clen[t]
            while nb >= 8:
                out[pos] = np.uint8(acc & np.uint64(0xFF))
                pos += 1
                acc >>= np.uint64(8)
                nb -= 8
            acc |= np.uint64(raw[t]) << np.uint64(nb)
            nb += rlen[t]
            while nb >= 8:
                out[pos] = np.uint8(acc & np.uint64(0xFF))
                pos += 1
                acc >>= np.uint64(8)
                nb -= 8
        if nb > 0:
            out[pos] = np.uint8(acc & np.uint64(0xFF))
            pos += 1
        size = pos - start
        for z in range(4):
            out[4 * lane + z] = np.uint8((size >> (8 * z)) & 0xFF)
    return out[: pos + 8]


def encode_chunk(N: int, values: np.ndarray, k0: int, ncols: int, rowctx, colctx, lens, codes,
                 lay, rshift) -> bytes:
    from bigsmall.codecs.field import _fields

    n = values.shape[0]
    v = values.astype(np.uint64)
    k = np.arange(k0, k0 + n, dtype=np.int64)
    i = k // ncols
    j = k - i * ncols
    ctx = rowctx[i] + colctx[j]
    rs = rshift[i]
    p, eb, mb = lay.p, lay.eb, lay.mb
    hi, lo = _fields(values, lay)
    s = (hi.astype(np.int64) << mb) | (lo.astype(np.int64) if mb else 0)
    cl = lens[ctx, s]
    assert (cl > 0).all()
    lowmask = np.uint64((1 << p) - 1)
    r = ((v & lowmask) | ((v >> np.uint64(p + eb + mb)) << np.uint64(p))) >> rs.astype(np.uint64)
    rl = lay.width - eb - mb - rs
    return _write_lanes(N, codes[ctx, s], cl, r.astype(np.int64), rl.astype(np.int64)).tobytes()


def _gen(N: int, L: int, two_level: bool | str = False, opts: frozenset = frozenset()) -> str:
    """Decode kernel source; ``two_level``: tables of ``tables2`` (``L`` must be ``L1``),
    ``"branchless"``: the second-level lookup always done and selected. Options (same format):
    ``pd``: raw bits placed with one BMI2 ``pdep``; ``nr``: a loop without the row shift for
    rows that have none."""
    o: list[str] = []
    w = o.append

    def elem(lane: int, ind: str, fast: bool, norow: bool = False) -> None:
        if fast:
            w(f"{ind}cx = rc + ld(colctx, j + {lane})")
            bw, rsh, bm = "bw", "rs", "bm"
        else:
            w(f"{ind}k_ = k0 + t + {lane}")
            w(f"{ind}i_ = k_ // ncols")
            w(f"{ind}cx = ld(rowctx, i_) + ld(colctx, k_ - i_ * ncols)")
            w(f"{ind}rs_ = ld(rshift, i_)")
            w(f"{ind}bw_ = rbits - rs_")
            bw, rsh, bm = "bw_", "rs_", "((1 << bw_) - 1)"
        w(f"{ind}w_ = ld64(buf, q{lane} >> 3) >> (q{lane} & 7)")
        w(f"{ind}e_ = ld(dec, (cx << {L}) + (w_ & {(1 << L) - 1}))")
        if two_level == "branchless":  # always look up the second level, then select
            w(f"{ind}d_ = ld(dirs, e_ & {(1 << SYM_BITS) - 1})")
            w(f"{ind}e2_ = ld(t2, (d_ >> 4) + ((w_ >> {L}) & ((1 << (d_ & 15)) - 1)))")
            w(f"{ind}e_ = e2_ if e_ < {1 << SYM_BITS} else e_")
        elif two_level:
            w(f"{ind}if e_ < {1 << SYM_BITS}:")
            w(f"{ind}    d_ = ld(dirs, e_)")
            w(f"{ind}    e_ = ld(t2, (d_ >> 4) + ((w_ >> {L}) & ((1 << (d_ & 15)) - 1)))")
        w(f"{ind}ln = e_ >> {SYM_BITS}")
        if norow:
            w(f"{ind}r_ = (w_ >> ln) & {bm}")
        else:
            w(f"{ind}r_ = ((w_ >> ln) & {bm}) << {rsh}")
        w(f"{ind}q{lane} += ln + {bw}")
        if "pd" in opts:
            w(f"{ind}st(out, t + {lane}, ((e_ & {(1 << SYM_BITS) - 1}) << p_)"
              " | pdep(r_, rawmask))")
        else:
            w(f"{ind}st(out, t + {lane}, ((e_ & {(1 << SYM_BITS) - 1}) << p_) | (r_ & lowmask)"
              f" | ((r_ >> p_) << hishift))")

    w("@njit(nogil=True, cache=False)")
    w("def kernel(out, k0, ncols, rowctx, colctx, dec, t2, dirs, p_, eb, mb, rshift, buf):")
    w("    n = out.shape[0]")
    w(f"    off = {4 * N}")
    for lane in range(N):
        w(f"    q{lane} = off * 8")
        w(f"    z{lane} = off + ld32(buf, {4 * lane})")
        w(f"    off = z{lane}")
    w("    rbits = out.itemsize * 8 - eb - mb")
    w("    lowmask = (1 << p_) - 1")
    w("    hishift = p_ + eb + mb")
    w("    rawmask = ((1 << (out.itemsize * 8)) - 1) & ~(((1 << (eb + mb)) - 1) << p_)")
    w("    t = 0")
    w("    while t < n:")
    w("        k = k0 + t")
    w("        i = k // ncols")
    w("        j = k - i * ncols")
    w(f"        G = min((ncols - j) // {N}, (n - t) // {N})")
    w("        if G >= 1:")
    w("            rc = ld(rowctx, i)")
    w("            rs = ld(rshift, i)")
    w("            bw = rbits - rs")
    w("            bm = (1 << bw) - 1")
    if "nr" in opts:
        w("            if rs == 0:")
        w("                for _g in range(G):")
        for lane in range(N):
            elem(lane, "                    ", True, True)
        w(f"                    t += {N}")
        w(f"                    j += {N}")
        w("            else:")
        w("                for _g in range(G):")
        for lane in range(N):
            elem(lane, "                    ", True)
        w(f"                    t += {N}")
        w(f"                    j += {N}")
    else:
        w("            for _g in range(G):")
        for lane in range(N):
            elem(lane, "                ", True)
        w(f"                t += {N}")
        w(f"                j += {N}")
    w("        else:")
    for lane in range(N):
        w(f"            if t + {lane} < n:")
        elem(lane, "                ", False)
    w(f"            t += {N}")
    prev = f"{4 * N}"
    for lane in range(N):
        w(f"    if (q{lane} + 7) >> 3 != z{lane}:")
        w("        return -3")
    w("    return 0")
    head = [
        "import numpy as np",
        "from numba import njit",
        "from bigsmall.codecs.loads import ld, ld64, st",
        "from experimental_entropy import ld32, pdep",
        "",
    ]
    del prev
    return "\n".join(head + o) + "\n"


_KERNELS: dict = {}


def kernel(N: int, L: int, two_level: bool | str = False, opts: frozenset = frozenset()):
    """The compiled decode kernel for N lanes and code length limit L (generated, exec'd)."""
    key = (N, L, two_level, opts)
    if key not in _KERNELS:
        ns: dict = {}
        exec(compile(_gen(N, L, two_level, opts), f"<experimental huffman kernel x{N} L{L}>",
                     "exec"), ns)
        _KERNELS[key] = ns["kernel"]
    return _KERNELS[key]
