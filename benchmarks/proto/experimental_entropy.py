"""EXPERIMENTAL (issue 3, not wired into any codec): alternative entropy stages for the ``field``
codec, to measure decode speed against coded size. Same model as ``field`` (layout, contexts,
exponent and mantissa tables); what changes is how the symbols are laid out in rANS streams.

Common chunk layout of every variant (prototype, little-endian)::

    u32 stream_bytes | lane states | word stream (stream_bytes) | raw bits | 8 zero bytes

- *Lanes interleaved by element*: element ``t`` of the chunk belongs to lane ``t % N``; all lanes
  share ONE word stream, read in the decoder's program order (so the decoder keeps one stream
  pointer, not N). Groups of N consecutive elements are decoded in *phases* (every lane's
  exponent step, then every lane's mantissa step), so the N dependency chains are independent.
- Raw bits: one LSB-first bit stream in element order, ``rbits - rshift[row]`` bits per element,
  so an element's raw position inside a row is ``base + lane * b`` (no serial chain).
- The trailing 8 zero bytes make every unaligned 64-bit load of valid data in bounds (the
  prototype does not defend against corrupt data; a real format would bound it as today's
  kernel does).

Modes (``MODES``):

- ``two``: exponent step then mantissa step from the same 32-bit state (today's arithmetic:
  state in [2^16, 2^32), 16-bit words, renormalise after each step). Same size as today.
- ``split``: exponent steps on states x_l, mantissa steps on separate states y_l (2N chains).
- ``two64``: 63-bit state in [2^31, 2^63) (fits int64), exponent and mantissa steps, ONE 32-bit
  renormalisation per element (the pair consumes <= 22 bits). Coding cost identical to
  ``two`` (the pair is the product distribution); only the states are bigger.
- ``joint``: one rANS step per element on the joint symbol ``e << mb | m`` with a per-context
  table of 2^JP slots (freq = normalised product of today's exponent and mantissa tables), one
  packed uint64 lookup (symbol | bias | freq); 32-bit state, 16-bit words (JP <= 16).
- ``joint64``: the same with a 64-bit state, 32-bit words.
- ``raw``: no entropy stage at all (the coded field is stored raw too): the ceiling of
  everything else in the kernel (raw-bit unpacking, stores, loop).

Pure functions of arrays; the decode kernels are generated per (mode, lanes) and compiled on
first use (``kernel(mode, lanes)``).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from bigsmall.codecs import rans
from bigsmall.codecs.loads import _load_le

MODES = ("two", "split", "two64", "joint", "joint64", "raw")
_MODE_ID = {m: k for k, m in enumerate(MODES)}
_MODE_ID["two64l"] = _MODE_ID["two64"]  # same format, decoder steps ordered lane by lane


@intrinsic
def pdep(typingctx, src, mask):  # type: ignore[no-untyped-def]
    """BMI2 ``pdep``: the low bits of ``src`` deposited, in order, at the set bits of ``mask``
    (one instruction; the raw bits of an element go around its coded field in one step)."""

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        i64 = ir.IntType(64)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64, i64]),
                                            "llvm.x86.bmi.pdep.64")
        return builder.call(fn, args)

    return types.int64(types.int64, types.int64), codegen


@intrinsic
def ld32(typingctx, buf, idx):  # type: ignore[no-untyped-def]
    """u32 little-endian at byte ``idx`` of a uint8 array (unaligned), as int64."""
    return types.int64(buf, types.intp), lambda c, b, s, a: _load_le(c, b, s, a, 32)


# --------------------------------------------------------------------------------- tables

def joint_freq(freq: np.ndarray, mfreq: np.ndarray, eb: int, mb: int, jp: int) -> np.ndarray:
    """Joint (exponent, mantissa-top) frequencies per context, normalised to 2**jp: the
    product of today's normalised tables, re-quantised (int64[nctx, 2**(eb+mb)])."""
    nctx = freq.shape[0]
    if mb == 0:
        w = freq.astype(np.int64)
    else:
        w = (freq[:, :, None].astype(np.int64) * mfreq[None, :, :].astype(np.int64))
        w = w.reshape(nctx, -1)
    return rans.normalize_weights(w, jp)


def joint_table(jfreq: np.ndarray, jp: int) -> np.ndarray:
    """uint64[nctx << jp]: slot -> symbol | (slot - cum) << 16 | freq << 32."""
    nctx, a = jfreq.shape
    cum = rans.cumulative(jfreq)
    out = np.zeros(nctx << jp, np.uint64)
    for c in range(nctx):
        f = jfreq[c]
        present = np.flatnonzero(f)
        if present.size == 0:
            continue
        sym = np.repeat(present, f[present])
        slots = np.arange(1 << jp)
        bias = slots - cum[c][sym]
        out[c << jp: (c + 1) << jp] = (sym.astype(np.uint64) | (bias.astype(np.uint64) << 16)
                                        | (f[sym].astype(np.uint64) << 32))
    return out


# --------------------------------------------------------------------------------- encoder

@njit(cache=True)
def _enc_step(x, f, c, pb):
    return ((x // f) << np.uint64(pb)) + (x % f) + c


@njit(cache=True)
def _encode_states(n, N, mode, fe, ce, fm, cm, pe, pm, hasm):
    """rANS-code the symbols of one chunk (per element: freq/cum of the exponent step and of the
    mantissa step, or of the joint step in fe/ce) in the decoder's order, reversed.
    Returns (state bytes, word stream bytes)."""
    wide = mode == 2 or mode == 4
    L = np.uint64(1 << 31) if wide else np.uint64(1 << 16)
    xs = np.full(N, L, np.uint64)
    ys = np.full(N, L, np.uint64)
    words = np.empty(4 * n + 16, np.uint64)
    nw = 0
    G = (n + N - 1) // N
    m16 = np.uint64(0xFFFF)
    m32 = np.uint64(0xFFFFFFFF)
    s16 = np.uint64(16)
    s32 = np.uint64(32)
    for g in range(G - 1, -1, -1):
        base = g * N
        hi = min(N, n - base)
        if mode == 2:  # two64: renorm phase, then mantissa phase, then exponent phase
            for lane in range(hi - 1, -1, -1):
                t = base + lane
                if hasm:
                    K = np.uint64(fe[t] * fm[t]) << np.uint64(31 - pe - pm)
                else:
                    K = np.uint64(fe[t]) << np.uint64(31 - pe)
                if (xs[lane] >> s32) >= K:
                    words[nw] = xs[lane] & m32
                    nw += 1
                    xs[lane] >>= s32
            if hasm:
                for lane in range(hi - 1, -1, -1):
                    t = base + lane
                    xs[lane] = _enc_step(xs[lane], np.uint64(fm[t]), np.uint64(cm[t]), pm)
            for lane in range(hi - 1, -1, -1):
                t = base + lane
                xs[lane] = _enc_step(xs[lane], np.uint64(fe[t]), np.uint64(ce[t]), pe)
        elif mode == 4:  # joint64
            for lane in range(hi - 1, -1, -1):
                t = base + lane
                if (xs[lane] >> s32) >= (np.uint64(fe[t]) << np.uint64(31 - pe)):
                    words[nw] = xs[lane] & m32
                    nw += 1
                    xs[lane] >>= s32
                xs[lane] = _enc_step(xs[lane], np.uint64(fe[t]), np.uint64(ce[t]), pe)
        else:  # 32-bit states, 16-bit words, renormalise before every step
            if hasm and mode != 3:
                for lane in range(hi - 1, -1, -1):
                    t = base + lane
                    f = np.uint64(fm[t])
                    if mode == 1:
                        y = ys[lane]
                    else:
                        y = xs[lane]
                    if y >= ((L >> np.uint64(pm)) << s16) * f:
                        words[nw] = y & m16
                        nw += 1
                        y >>= s16
                    y = _enc_step(y, f, np.uint64(cm[t]), pm)
                    if mode == 1:
                        ys[lane] = y
                    else:
                        xs[lane] = y
            for lane in range(hi - 1, -1, -1):
                t = base + lane
                f = np.uint64(fe[t])
                y = xs[lane]
                if y >= ((L >> np.uint64(pe)) << s16) * f:
                    words[nw] = y & m16
                    nw += 1
                    y >>= s16
                xs[lane] = _enc_step(y, f, np.uint64(ce[t]), pe)
    wb = 4 if wide else 2
    sb = 8 if wide else 4
    nst = 2 * N if mode == 1 else N
    st = np.empty(nst * sb, np.uint8)
    for lane in range(nst):
        x = xs[lane] if lane < N else ys[lane - N]
        for z in range(sb):
            st[lane * sb + z] = np.uint8((x >> np.uint64(8 * z)) & np.uint64(0xFF))
    out = np.empty(nw * wb, np.uint8)
    for w in range(nw):
        word = words[nw - 1 - w]
        for z in range(wb):
            out[w * wb + z] = np.uint8((word >> np.uint64(8 * z)) & np.uint64(0xFF))
    return st, out


@njit(cache=True)
def _pack_raw(r, b):
    """LSB-first bit packing of r[t] (b[t] bits each)."""
    total = 0
    for t in range(r.shape[0]):
        total += b[t]
    out = np.zeros((total + 7) // 8 + 8, np.uint8)
    pos = 0
    for t in range(r.shape[0]):
        v = np.uint64(r[t])
        w = b[t]
        for z in range(w):
            if (v >> np.uint64(z)) & np.uint64(1):
                out[(pos + z) >> 3] |= np.uint8(1 << ((pos + z) & 7))
        pos += w
    return out[: (total + 7) // 8]


def encode_chunk(mode: str, N: int, values: np.ndarray, k0: int, ncols: int, rowctx, colctx,
                 freq, mfreq, jfreq, lay, rshift, jp: int = 12) -> bytes:
    """One chunk (elements ``k0 ..`` of the tensor) in the prototype layout of ``mode``."""
    from bigsmall.codecs.field import _fields

    n = values.shape[0]
    v = values.astype(np.uint64)
    k = np.arange(k0, k0 + n, dtype=np.int64)
    i = k // ncols
    j = k - i * ncols
    ctx = rowctx[i] + colctx[j]
    rs = rshift[i]
    p, eb, mb = lay.p, lay.eb, lay.mb
    rbits = lay.width - eb - mb
    if mode == "raw":
        r = v  # whole element raw
        b = np.full(n, lay.width, np.int64)
        return (np.zeros(4, np.uint8).tobytes() + _pack_raw(r, b).tobytes() + bytes(8))
    hi, lo = _fields(values, lay)
    hi = hi.astype(np.int64)
    lo = lo.astype(np.int64) if mb else np.zeros(n, np.int64)
    cum = rans.cumulative(freq)
    mcum = rans.cumulative(mfreq)
    if mode in ("joint", "joint64"):
        jcum = rans.cumulative(jfreq)
        s = (hi << mb) | lo
        fe = jfreq[ctx, s]
        ce = jcum[ctx, s]
        fm = cm = fe
        pe, pm, hasm = jp, 0, False
    else:
        fe = freq[ctx, hi]
        ce = cum[ctx, hi]
        fm = mfreq[hi, lo] if mb else fe
        cm = mcum[hi, lo] if mb else ce
        pe, pm, hasm = 12, 10, mb > 0
    assert (fe > 0).all() and (fm > 0).all()
    st, words = _encode_states(n, N, _MODE_ID[mode], fe.astype(np.int64), ce.astype(np.int64),
                               fm.astype(np.int64), cm.astype(np.int64), pe, pm, hasm)
    lowmask = np.uint64((1 << p) - 1)
    r = ((v & lowmask) | ((v >> np.uint64(p + eb + mb)) << np.uint64(p))) >> rs.astype(np.uint64)
    b = rbits - rs
    raw = _pack_raw(r, b)
    return (len(words).to_bytes(4, "little") + st.tobytes() + words.tobytes() + raw.tobytes()
            + bytes(8))


# --------------------------------------------------------------------------------- decoder

def _gen(mode: str, N: int, const: tuple | None = None, opts: frozenset = frozenset()) -> str:
    """Source of the decode kernel of (mode, N lanes); ``const`` = (p, eb, mb) makes the
    layout compile-time constants (one kernel per layout). Decoder-only options (same chunk
    format): ``pe`` / ``pm``: packed exponent / mantissa tables (``packed_exp`` /
    ``packed_mant``, passed in place of ``tsym`` / ``msym``: one lookup per step instead of
    two); ``nr``: a loop without the row-shift for rows that have none; ``pd``: raw bits placed
    with one BMI2 ``pdep``."""
    one = mode in ("two64", "two64l")  # one renormalisation per element
    wide = mode in ("two64", "two64l", "joint64")
    joint = mode in ("joint", "joint64")
    L = "RL64" if wide else "RL32"
    sb = 8 if wide else 4
    nst = 2 * N if mode == "split" else N
    o: list[str] = []
    w = o.append

    def renorm(x: str, ind: str) -> None:
        if wide:
            w(f"{ind}nw_ = ({x} << 32) | ld32(buf, p)")
            w(f"{ind}c_ = {x} < {L}")
            w(f"{ind}p = p + 4 if c_ else p")
            w(f"{ind}{x} = nw_ if c_ else {x}")
        else:
            w(f"{ind}nw_ = ({x} << 16) | ld16(buf, p)")
            w(f"{ind}c_ = {x} < {L}")
            w(f"{ind}p = p + 2 if c_ else p")
            w(f"{ind}{x} = nw_ if c_ else {x}")

    def body(ind: str, fast: bool, norow: bool = False) -> None:
        """One group of N elements; in the slow form every lane has its own ctx/b and a guard."""
        lanes = range(N)
        if mode == "raw":
            for lane in lanes:
                if fast:
                    w(f"{ind}q_ = u + {lane} * W")
                    w(f"{ind}st(out, t + {lane}, (ld64(buf, q_ >> 3) >> (q_ & 7)) & WM)")
                else:
                    w(f"{ind}if t + {lane} < n:")
                    w(f"{ind}    st(out, t + {lane}, (ld64(buf, u >> 3) >> (u & 7)) & WM)")
                    w(f"{ind}    u += W")
            if fast:
                w(f"{ind}u += {N} * W")
            return
        if mode == "two64l" and fast:  # lane by lane: fewer values live at once
            for lane in lanes:
                w(f"{ind}cx = rc + ld(colctx, j + {lane})")
                w(f"{ind}slot = x{lane} & amask")
                w(f"{ind}s_ = ld(tsym, (cx << pe) + slot)")
                w(f"{ind}fc = ld(tfc, (cx << 8) + s_)")
                w(f"{ind}x{lane} = (fc & 0xFFFF) * (x{lane} >> pe) + slot - (fc >> 16)")
                sub = ind
                if const is None:
                    w(f"{ind}if mb > 0:")
                    sub = ind + "    "
                if const is None or const[2] > 0:
                    w(f"{sub}slot = x{lane} & bmask")
                    w(f"{sub}m_ = ld(msym, (s_ << pm) + slot)")
                    w(f"{sub}fc = ld(mfc, (s_ << 8) + m_)")
                    w(f"{sub}x{lane} = (fc & 0xFFFF) * (x{lane} >> pm) + slot - (fc >> 16)")
                    w(f"{sub}s_ = (s_ << mb) | m_")
                renorm(f"x{lane}", ind)
                w(f"{ind}q_ = u + {lane} * bw")
                w(f"{ind}r_ = ((ld64(buf, q_ >> 3) >> (q_ & 7)) & bm) << rs")
                w(f"{ind}st(out, t + {lane}, (s_ << p_) | (r_ & lowmask) | ((r_ >> p_) << hishift))")
            w(f"{ind}u += {N} * bw")
            return
        for lane in lanes:
            if fast:
                w(f"{ind}cx{lane} = rc + ld(colctx, j + {lane})")
            else:
                w(f"{ind}cx{lane} = 0")
                w(f"{ind}b{lane} = 0")
                w(f"{ind}r{lane} = 0")
                w(f"{ind}if t + {lane} < n:")
                w(f"{ind}    k_ = k0 + t + {lane}")
                w(f"{ind}    i_ = k_ // ncols")
                w(f"{ind}    cx{lane} = ld(rowctx, i_) + ld(colctx, k_ - i_ * ncols)")
                w(f"{ind}    r{lane} = ld(rshift, i_)")
                w(f"{ind}    b{lane} = rbits - r{lane}")
        # phase 1: exponent (or joint) step of every lane
        for lane in lanes:
            sub = ind if fast else ind + "    "
            if not fast:
                w(f"{ind}if t + {lane} < n:")
            if joint:
                w(f"{sub}slot = x{lane} & amask")
                w(f"{sub}e_ = ld(jt, (cx{lane} << pe) + slot)")
                w(f"{sub}s{lane} = e_ & 0xFFFF")
                w(f"{sub}x{lane} = (e_ >> 32) * (x{lane} >> pe) + ((e_ >> 16) & 0xFFFF)")
            elif "pe" in opts:
                w(f"{sub}slot = x{lane} & amask")
                w(f"{sub}e_ = ld(tsym, (cx{lane} << pe) + slot)")
                w(f"{sub}s{lane} = e_ & 0xFF")
                w(f"{sub}x{lane} = (((e_ >> 8) & 0xFFF) + 1) * (x{lane} >> pe) + (e_ >> 20)")
            else:
                w(f"{sub}slot = x{lane} & amask")
                w(f"{sub}s{lane} = ld(tsym, (cx{lane} << pe) + slot)")
                w(f"{sub}fc = ld(tfc, (cx{lane} << 8) + s{lane})")
                w(f"{sub}x{lane} = (fc & 0xFFFF) * (x{lane} >> pe) + slot - (fc >> 16)")
            if not one:
                renorm(f"x{lane}", sub)
        # phase 2: mantissa step
        if not joint:
            w(f"{ind}if mb > 0:")
            for lane in lanes:
                sub = ind + "    " if fast else ind + "        "
                if not fast:
                    w(f"{ind}    if t + {lane} < n:")
                st_ = f"y{lane}" if mode == "split" else f"x{lane}"
                w(f"{sub}slot = {st_} & bmask")
                if "pm" in opts:
                    w(f"{sub}e_ = ld(msym, (s{lane} << pm) + slot)")
                    w(f"{sub}m_ = e_ & 0xFF")
                    w(f"{sub}{st_} = ((e_ >> 8) & 0xFFF) * ({st_} >> pm) + (e_ >> 20)")
                else:
                    w(f"{sub}m_ = ld(msym, (s{lane} << pm) + slot)")
                    w(f"{sub}fc = ld(mfc, (s{lane} << 8) + m_)")
                    w(f"{sub}{st_} = (fc & 0xFFFF) * ({st_} >> pm) + slot - (fc >> 16)")
                w(f"{sub}s{lane} = (s{lane} << mb) | m_")
                if not one:
                    renorm(st_, sub)
        if one:
            for lane in lanes:
                sub = ind if fast else ind + "    "
                if not fast:
                    w(f"{ind}if t + {lane} < n:")
                renorm(f"x{lane}", sub)
        # raw bits and store
        for lane in lanes:
            sub = ind if fast else ind + "    "
            if not fast:
                w(f"{ind}if t + {lane} < n:")
                w(f"{sub}q_ = u")
                w(f"{sub}u += b{lane}")
                w(f"{sub}r_ = ((ld64(buf, q_ >> 3) >> (q_ & 7)) & ((1 << b{lane}) - 1)) << r{lane}")
            elif norow:
                w(f"{sub}q_ = u + {lane} * bw")
                w(f"{sub}r_ = (ld64(buf, q_ >> 3) >> (q_ & 7)) & bm")
            else:
                w(f"{sub}q_ = u + {lane} * bw")
                w(f"{sub}r_ = ((ld64(buf, q_ >> 3) >> (q_ & 7)) & bm) << rs")
            if "pd" in opts and fast:
                w(f"{sub}st(out, t + {lane}, (s{lane} << p_) | pdep(r_, rawmask))")
            else:
                w(f"{sub}st(out, t + {lane}, (s{lane} << p_) | (r_ & lowmask)"
                  " | ((r_ >> p_) << hishift))")
        if fast:
            w(f"{ind}u += {N} * bw")

    w("@njit(nogil=True, cache=False)")
    w("def kernel(out, k0, ncols, rowctx, colctx, tsym, tfc, msym, mfc, jt, pe, pm, p_, eb, mb,"
      " rshift, buf):")
    w("    n = out.shape[0]")
    if const is not None:
        w(f"    p_ = {const[0]}")
        w(f"    eb = {const[1]}")
        w(f"    mb = {const[2]}")
        w(f"    pe = {12 if mode not in ('joint', 'joint64') else 'pe'}")
        w(f"    pm = {10 if mode not in ('joint', 'joint64') else 'pm'}")
    w("    slen = ld32(buf, 0)")
    w("    p = 4")
    for lane in range(nst if mode != "raw" else 0):
        nm = f"x{lane}" if lane < N else f"y{lane - N}"
        if wide:
            w(f"    {nm} = ld64(buf, p)")
        else:
            w(f"    {nm} = ld32(buf, p)")
        w(f"    p += {sb}")
    w("    send = p + slen")
    w("    u = send * 8")
    w("    nrows = rowctx.shape[0]")
    w("    rbits = out.itemsize * 8 - eb - mb")
    w("    W = out.itemsize * 8")
    w("    WM = (1 << W) - 1")
    w("    amask = (1 << pe) - 1")
    w("    bmask = (1 << pm) - 1")
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
        body("                    ", True, True)
        w(f"                    t += {N}")
        w(f"                    j += {N}")
        w("            else:")
        w("                for _g in range(G):")
        body("                    ", True)
        w(f"                    t += {N}")
        w(f"                    j += {N}")
    else:
        w("            for _g in range(G):")
        body("                ", True)
        w(f"                t += {N}")
        w(f"                j += {N}")
    w("        else:")
    body("            ", False)
    w(f"            t += {N}")
    checks = " or ".join(f"x{lane} != {L}" for lane in range(N))
    if mode == "split":
        checks += " or " + " or ".join(f"y{lane} != {L}" for lane in range(N))
    if mode == "raw":
        w("    return 0")
    else:
        w(f"    if {checks}:")
        w("        return -2")
        w("    if p != send:")
        w("        return -3")
        w("    return 0")
    head = [
        "import numpy as np",
        "from numba import njit",
        "from bigsmall.codecs.loads import ld, ld16, ld64, st",
        "from experimental_entropy import ld32, pdep",
        "RL32 = 1 << 16",
        "RL64 = 1 << 31",
        "",
    ]
    return "\n".join(head + o) + "\n"


_KERNELS: dict = {}


def kernel(mode: str, N: int, const: tuple | None = None, opts: frozenset = frozenset()):
    """The compiled decode kernel of (mode, N lanes[, layout constants, options]): generated,
    exec'd."""
    key = (mode, N, const, opts)
    if key not in _KERNELS:
        ns: dict = {}
        exec(compile(_gen(mode, N, const, opts), f"<experimental kernel {mode} x{N} {const} "
                     f"{sorted(opts)}>", "exec"), ns)
        _KERNELS[key] = ns["kernel"]
    return _KERNELS[key]


def packed_exp(tsym: np.ndarray, tfc: np.ndarray, pbits: int) -> np.ndarray:
    """uint32[nctx << pbits] from today's split tables: sym | (freq - 1) << 8 | (slot - cum) << 20
    (freq <= 2**12, so freq - 1 fits 12 bits; slot - cum < freq)."""
    nctx = tsym.size >> pbits
    sym = tsym.astype(np.int64)
    ctx = np.arange(tsym.size, dtype=np.int64) >> pbits
    slot = np.arange(tsym.size, dtype=np.int64) & ((1 << pbits) - 1)
    fc = tfc.astype(np.int64).reshape(nctx, 256)[ctx, sym]
    f = fc & 0xFFFF
    bias = np.where(f > 0, slot - (fc >> 16), 0)
    return (sym | (np.maximum(f - 1, 0) << 8) | (bias << 20)).astype(np.uint32)


def packed_mant(msym: np.ndarray, mfc: np.ndarray, mpbits: int) -> np.ndarray:
    """uint32[rows << mpbits]: m | freq << 8 | (slot - cum) << 20 (freq <= 2**10)."""
    rows = msym.size >> mpbits
    sym = msym.astype(np.int64)
    row = np.arange(msym.size, dtype=np.int64) >> mpbits
    slot = np.arange(msym.size, dtype=np.int64) & ((1 << mpbits) - 1)
    fc = mfc.astype(np.int64).reshape(rows, 256)[row, sym]
    f = fc & 0xFFFF
    bias = np.where(f > 0, slot - (fc >> 16), 0)
    return (sym | (f << 8) | (bias << 20)).astype(np.uint32)
