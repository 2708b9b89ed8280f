"""EXPERIMENTAL (issue 3, not wired into any codec): exponent by rANS, mantissa-top bits by a
prefix code, for the ``field`` codec.

Why: in ``experimental_entropy``'s ``two64`` the mantissa step is a second full rANS step per
element (lookup, lookup, multiply) on the same dependency chain as the exponent. The top mantissa
bits given the exponent are close to uniform (Benford-like), so a per-exponent prefix code gets
most of their gain (~0.1 pp of the file lost against rANS on the corpus), and it can be read
from the element's raw bit stream with one table lookup off the rANS chain.

Chunk layout (prototype)::

    u32 stream_bytes | N x u64 states | rANS words (u32, shared by the lanes, lane order)
    | N x u32 lane bytes | lane bit streams (code(m | e) then raw bits, per element) | 8 zeros

Element ``t`` is in lane ``t % N``. rANS: 63-bit states in [2^31, 2^63), exponent table of the
element's context (today's 12-bit tables), one 32-bit renormalisation per element.
"""

from __future__ import annotations

import experimental_entropy as xe
import experimental_huffman as xh
import numpy as np

from bigsmall.codecs import rans

MLIMIT = 8  # mantissa code length limit (2**mb <= 16 symbols: never reached for mb <= 3)


def mantissa_code(mfreq: np.ndarray, mb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per exponent: Huffman lengths and reversed codes of the mantissa part (from today's
    normalised mantissa tables), and the decode table uint16[2**eb << MLIMIT] (m | len << 12)."""
    alpha = mfreq.shape[0]
    if mb == 0:
        z = np.zeros((alpha, 1), np.int64)
        return z, z, np.zeros(alpha << MLIMIT, np.uint16)
    lens, codes, dec = xh.tables(mfreq, MLIMIT)
    return lens, codes, dec


def encode_chunk(N: int, values: np.ndarray, k0: int, ncols: int, rowctx, colctx, freq,
                 mlens, mcodes, lay, rshift) -> bytes:
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
    e = hi.astype(np.int64)
    m = lo.astype(np.int64) if mb else np.zeros(n, np.int64)
    cum = rans.cumulative(freq)
    fe = freq[ctx, e].astype(np.int64)
    ce = cum[ctx, e].astype(np.int64)
    st, words = xe._encode_states(n, N, 2, fe, ce, fe, ce, 12, 0, False)
    lowmask = np.uint64((1 << p) - 1)
    r = ((v & lowmask) | ((v >> np.uint64(p + eb + mb)) << np.uint64(p))) >> rs.astype(np.uint64)
    rl = lay.width - eb - mb - rs
    lanes = xh._write_lanes(N, mcodes[e, m], mlens[e, m], r.astype(np.int64),
                            rl.astype(np.int64))
    return len(words).to_bytes(4, "little") + st.tobytes() + words.tobytes() + lanes.tobytes()


def _gen(N: int) -> str:
    o: list[str] = []
    w = o.append
    M = (1 << MLIMIT) - 1
    SB = xh.SYM_BITS

    def group(ind: str, fast: bool) -> None:
        for lane in range(N):
            sub = ind
            if not fast:
                w(f"{ind}if t + {lane} < n:")
                sub = ind + "    "
                w(f"{sub}k_ = k0 + t + {lane}")
                w(f"{sub}i_ = k_ // ncols")
                w(f"{sub}cx = ld(rowctx, i_) + ld(colctx, k_ - i_ * ncols)")
            else:
                w(f"{sub}cx = rc + ld(colctx, j + {lane})")
            w(f"{sub}slot = x{lane} & 4095")
            w(f"{sub}s{lane} = ld(tsym, (cx << 12) + slot)")
            w(f"{sub}fc = ld(tfc, (cx << 8) + s{lane})")
            w(f"{sub}x{lane} = (fc & 0xFFFF) * (x{lane} >> 12) + slot - (fc >> 16)")
            w(f"{sub}nw_ = (x{lane} << 32) | ld32(buf, p)")
            w(f"{sub}c_ = x{lane} < RL64")
            w(f"{sub}p = p + 4 if c_ else p")
            w(f"{sub}x{lane} = nw_ if c_ else x{lane}")
        for lane in range(N):
            sub = ind
            if not fast:
                w(f"{ind}if t + {lane} < n:")
                sub = ind + "    "
                w(f"{sub}k_ = k0 + t + {lane}")
                w(f"{sub}i_ = k_ // ncols")
                w(f"{sub}rs_ = ld(rshift, i_)")
                w(f"{sub}bw_ = rbits - rs_")
                bw, rsh, bm = "bw_", "rs_", "((1 << bw_) - 1)"
            else:
                bw, rsh, bm = "bw", "rs", "bm"
            w(f"{sub}w_ = ld64(buf, q{lane} >> 3) >> (q{lane} & 7)")
            w(f"{sub}e_ = ld(mdec, (s{lane} << {MLIMIT}) + (w_ & {M}))")
            w(f"{sub}ln = e_ >> {SB}")
            w(f"{sub}r_ = ((w_ >> ln) & {bm}) << {rsh}")
            w(f"{sub}q{lane} += ln + {bw}")
            w(f"{sub}st(out, t + {lane}, ((((s{lane} << mb) | (e_ & {(1 << SB) - 1}))) << p_)"
              f" | (r_ & lowmask) | ((r_ >> p_) << hishift))")

    w("@njit(nogil=True, cache=False)")
    w("def kernel(out, k0, ncols, rowctx, colctx, tsym, tfc, mdec, p_, eb, mb, rshift, buf):")
    w("    n = out.shape[0]")
    w("    slen = ld32(buf, 0)")
    w("    p = 4")
    for lane in range(N):
        w(f"    x{lane} = ld64(buf, p)")
        w("    p += 8")
    w("    send = p + slen")
    w(f"    off = send + {4 * N}")
    for lane in range(N):
        w(f"    q{lane} = off * 8")
        w(f"    z{lane} = off + ld32(buf, send + {4 * lane})")
        w(f"    off = z{lane}")
    w("    rbits = out.itemsize * 8 - eb - mb")
    w("    lowmask = (1 << p_) - 1")
    w("    hishift = p_ + eb + mb")
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
    w("            for _g in range(G):")
    group("                ", True)
    w(f"                t += {N}")
    w(f"                j += {N}")
    w("        else:")
    group("            ", False)
    w(f"            t += {N}")
    w("    if " + " or ".join(f"x{lane} != RL64" for lane in range(N)) + ":")
    w("        return -2")
    w("    if p != send:")
    w("        return -3")
    for lane in range(N):
        w(f"    if (q{lane} + 7) >> 3 != z{lane}:")
        w("        return -4")
    w("    return 0")
    head = [
        "import numpy as np",
        "from numba import njit",
        "from bigsmall.codecs.loads import ld, ld64, st",
        "from experimental_entropy import ld32",
        "RL64 = 1 << 31",
        "",
    ]
    return "\n".join(head + o) + "\n"


_KERNELS: dict = {}


def kernel(N: int):
    if N not in _KERNELS:
        ns: dict = {}
        exec(compile(_gen(N), f"<experimental hybrid kernel x{N}>", "exec"), ns)
        _KERNELS[N] = ns["kernel"]
    return _KERNELS[N]
