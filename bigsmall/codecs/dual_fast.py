"""The ``.bsd`` v2 fast chunk: the INT4 codes with the row above as a second context.

Pure. The quantizer, the scales' coding and the rANS stream are v1's (``codecs/dual.py``); what
changes is the context of a code: v1 uses the bin that holds 0.0 in its group (``z``); v2 may
add how far from that bin the code of the same column in the row above lies (0..3, clamped),
``ctx = 4 z + up``. Measured (docs/dual.md): the fast member of Whisper tiny fp16 shrinks by
~0.7 point of raw (columns there carry a magnitude across rows); on MiniLM bf16 it gains
nothing and its 4x tables cost more, so the encoder picks per chunk, from the two models' coded
sizes as estimated by their counts, and says which in the chunk's first byte::

    u8 mode (0: z, 1: z and the row above) | u32 L | L bytes zstd(scales, minimums) | stream

``.bsd`` 4.0 codes the same codes, contexts and tables with ``LANES`` interleaved rANS states
(code ``t`` of the chunk, rows flattened, on state ``t mod LANES``; one word stream; the stream's
first ``2 LANES`` words are the states' initial values), so that the decoder's steps of
different states overlap instead of one serial chain (``_encode_lanes``, ``_decode_lanes``, the
reference of ``native._dual.decode_codes(..., lanes)``). 2.0/3.0 chunks are ``lanes = 1``.
``.bsd`` 5.0 has the same rules with ``LANES5 = 16`` states: the AVX2 decoder's step of 8 states
is bound by its latency (one chain of 8), so 5.0's decoder runs two such chains (codes ``t..t+7``
and ``t+8..t+15``) whose steps overlap.
"""

from __future__ import annotations

import numpy as np
import zstandard
from numba import njit

from .. import native
from ..errors import IntegrityError
from . import dual as v1

UP = 4  # |q - z| of the row above, clamped to 0..3
LANES = 8  # .bsd 4.0: interleaved rANS states of a fast chunk's codes
LANES5 = 16  # .bsd 5.0: the same, two AVX2 chains of 8 (the decoder's step is latency bound)
COL_CLUSTERS = (16, 64)  # mode 2: columns clustered by their mean, this many clusters
_NO_RAW = np.zeros((16 * 64, 16), dtype=np.int64)  # no raw bits, for up to 1024 contexts
_TABLE_BYTES = 1.2  # estimated stored bytes a used (context, symbol) table entry costs


@njit(cache=True, nogil=True, inline="always")
def _ctx(q, z, r, c):  # type: ignore[no-untyped-def]
    """``4 z + min(|q - z| of the code above, 3)`` (0 in the first row)."""
    u = 0
    if r > 0:
        u = min(abs(np.int32(q[r - 1, c]) - z[r - 1, c]), UP - 1)
    return z[r, c] * UP + u


@njit(cache=True, nogil=True)
def _up_ctx(q, z):  # type: ignore[no-untyped-def]
    rows, cols = q.shape
    out = np.empty((rows, cols), dtype=np.int32)
    for r in range(rows):
        for c in range(cols):
            out[r, c] = _ctx(q, z, r, c)
    return out


@njit(cache=True, nogil=True)
def _decode_up(words, z, freq, cum, lut, ok, q):  # type: ignore[no-untyped-def]
    """Codes into ``q`` (rows, cols), each in the context of its zero bin and the decoded code
    above it; 0, or 1 when the stream does not decode."""
    rows, cols = q.shape
    nw = words.size
    if nw < 2:
        return 1
    x = np.uint64(words[0]) | (np.uint64(words[1]) << np.uint64(16))
    wp = 2
    for r in range(rows):
        for c in range(cols):
            cx = _ctx(q, z, r, c)
            if not ok[cx]:
                return 1
            s, x, wp, good = v1._step(x, cx, lut, freq, cum, words, wp)
            if not good or s > 15:
                return 1
            q[r, c] = s
    if x != np.uint64(1 << 16) or wp != nw:
        return 1
    return 0


@njit(cache=True, nogil=True)
def _encode_lanes(sym, ctx, freq, cum, lanes):  # type: ignore[no-untyped-def]
    """Codes ``sym`` (flat, context ``ctx``) on ``lanes`` interleaved rANS states (code ``t`` on
    state ``t % lanes``), coded backwards into one word stream: (words u16: the states' initial
    values, lane 0 first, low word first, then the renormalisation words in decoding order)."""
    n = sym.size
    words = np.empty(n + 2 * lanes, dtype=np.uint16)
    wp = words.size
    xs = np.full(lanes, np.uint64(1 << 16), dtype=np.uint64)
    for t in range(n - 1, -1, -1):
        c = ctx[t]
        s = sym[t]
        f = np.uint64(freq[c, s])
        x = xs[t % lanes]
        if x >= (f << np.uint64(32 - v1.PB)):
            wp -= 1
            words[wp] = np.uint16(x & np.uint64(0xFFFF))
            x >>= np.uint64(16)
        xs[t % lanes] = (x // f << np.uint64(v1.PB)) + (x % f) + np.uint64(cum[c, s])
    for i in range(lanes - 1, -1, -1):
        wp -= 1
        words[wp] = np.uint16(xs[i] >> np.uint64(16))
        wp -= 1
        words[wp] = np.uint16(xs[i] & np.uint64(0xFFFF))
    return words[wp:].copy()


@njit(cache=True, nogil=True)
def _decode_lanes(words, z, freq, cum, lut, ok, q, up, lanes):  # type: ignore[no-untyped-def]
    """Inverse of ``_encode_lanes`` into ``q`` (rows, cols); the context of a code is ``z``
    (``up`` = 0: modes 0 and 2, ``z`` is the context) or ``_ctx`` (``up`` = 1, mode 1). 0, or 1
    when the stream does not decode (a context without a table, a read past the last word, a
    state that does not return to its initial value, a word left over)."""
    rows, cols = q.shape
    nw = words.size
    if nw < 2 * lanes:
        return 1
    xs = np.empty(lanes, dtype=np.uint64)
    for i in range(lanes):
        xs[i] = np.uint64(words[2 * i]) | (np.uint64(words[2 * i + 1]) << np.uint64(16))
    wp = 2 * lanes
    t = 0
    for r in range(rows):
        for c in range(cols):
            cx = _ctx(q, z, r, c) if up else z[r, c]
            if not ok[cx]:
                return 1
            s, x, wp, good = v1._step(xs[t % lanes], cx, lut, freq, cum, words, wp)
            if not good or s > 15:
                return 1
            xs[t % lanes] = x
            q[r, c] = s
            t += 1
    for i in range(lanes):
        if xs[i] != np.uint64(1 << 16):
            return 1
    if wp != nw:
        return 1
    return 0


def encode_codes(q: np.ndarray, ctx: np.ndarray, nctx: int, lanes: int) -> bytes:
    """The codes' stream: ``v1.encode_stream``'s layout (``u32 T, zstd tables, u32 W, W words``),
    its words from ``lanes`` interleaved states when ``lanes > 1``."""
    if lanes == 1:
        return v1.encode_stream(q.ravel(), ctx.ravel(), _NO_RAW, np.zeros(1, np.uint64), nctx, 16)
    sym, cx = q.ravel().astype(np.int32), ctx.ravel().astype(np.int32)
    counts = np.bincount(cx * np.int32(16) + sym, minlength=nctx * 16).reshape(nctx, 16)
    freq = v1._normalize(counts)
    cum = np.concatenate([np.zeros((nctx, 1), np.int64), np.cumsum(freq, 1)[:, :-1]], 1)
    words = _encode_lanes(sym, cx, freq, cum, lanes)
    table = zstandard.ZstdCompressor(level=19).compress(freq.astype("<u2").tobytes())
    return b"".join([v1._U32.pack(len(table)), table, v1._U32.pack(words.size), words.astype("<u2").tobytes()])


def _cost(ctx: np.ndarray, q: np.ndarray, nctx: int) -> float:
    """Estimated stored bytes of the codes under a context model: entropy + table entries."""
    joint = np.bincount(ctx.ravel() * 16 + q.ravel(), minlength=nctx * 16).astype(np.float64)
    marg = joint.reshape(nctx, 16).sum(1)
    j, m = joint[joint > 0], marg[marg > 0]
    return float((m * np.log2(m)).sum() - (j * np.log2(j)).sum()) / 8 + _TABLE_BYTES * j.size


def _colmap(w: np.ndarray, k: int) -> np.ndarray:
    """Columns in ``k`` clusters by the rank of their mean over the block's rows (u8)."""
    rank = np.argsort(np.argsort(w.mean(axis=0, dtype=np.float64), kind="stable"), kind="stable")
    return (rank * k // w.shape[1]).astype(np.uint8)


def encode_fast(w: np.ndarray, lanes: int = LANES) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """float32 block -> (fast chunk bytes, codes, scales, minimums); ``lanes``: 1 writes the
    2.0/3.0 chunk, ``LANES`` the 4.0 one, ``LANES5`` the 5.0 one."""
    q, s16, lo16 = v1.quantize_block(w)
    side = v1.side_bytes(s16, lo16)
    z = v1._zero_bin(s16, lo16, w.shape[1])
    # candidates: (estimated bytes, mode, number of contexts, extra bytes, cluster map); the
    # winner's contexts are rebuilt (not kept per candidate: a block's create memory)
    cands = [(_cost(z, q, 16), 0, 16, b"", None)]
    cands.append((_cost(_up_ctx(q, z), q, 16 * UP), 1, 16 * UP, b"", None))
    for k in COL_CLUSTERS:
        if w.shape[1] >= 4 * k:
            cm = _colmap(w, k)
            stored = zstandard.ZstdCompressor(level=19).compress(cm.tobytes())
            extra = bytes([k]) + v1._U32.pack(len(stored)) + stored
            cands.append((_cost(z * np.int32(k) + cm[None, :].astype(np.int32), q, 16 * k) + len(extra), 2, 16 * k,
                          extra, cm))
    _, mode, nctx, extra, cm = min(cands, key=lambda c: c[0])
    ctx = z if mode == 0 else _up_ctx(q, z) if mode == 1 else z * np.int32(nctx // 16) + cm[None, :].astype(np.int32)
    stream = encode_codes(q, ctx, nctx, lanes)
    return bytes([mode]) + v1._U32.pack(len(side)) + side + extra + stream, q, s16, lo16


_DTYPE_CODE = {"BF16": 0, "F16": 1, "F32": 2}


def dequantize_bits(q: np.ndarray, s16: np.ndarray, lo16: np.ndarray, dtype: str,
                    out: np.ndarray | None = None) -> np.ndarray:
    """The fast code as raw bits of ``dtype`` (uint16 / uint32 in native order, (rows, cols),
    into ``out`` if given): the C kernel (``native._dual.dequantize``, one pass) where it is
    built, else (and for scales or minimums that are not finite) the reference
    ``to_dtype_bits(dequantize_block(...))``."""
    nat = native.dual()
    if out is None:
        out = np.empty(q.shape, np.uint32 if dtype == "F32" else np.uint16)
    if nat is not None and q.size:
        if not nat.dequantize(np.ascontiguousarray(q), np.ascontiguousarray(s16).view(np.uint16),
                              np.ascontiguousarray(lo16).view(np.uint16), q.shape[1], _DTYPE_CODE[dtype], out):
            return out
    out[...] = v1.to_dtype_bits(v1.dequantize_block(q, s16, lo16), dtype)
    return out


def decode_fast(data: bytes | memoryview, rows: int, cols: int,
                lanes: int = LANES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fast chunk -> (codes uint8 (rows, cols), scales, minimums fp16 (rows, groups));
    ``lanes``: the chunk's interleaved states (1: 2.0/3.0, ``LANES``: 4.0, ``LANES5``: 5.0)."""
    buf = memoryview(data).cast("B")
    if len(buf) < 1 or buf[0] > 2:
        raise IntegrityError("dual fast chunk: unknown context mode")
    nat = native.dual()
    mode = int(buf[0])
    if mode == 0 and nat is None and lanes == 1:
        return v1.decode_fast(buf[1:], rows, cols)
    s16, lo16, pos = v1.read_side(buf[1:], rows, cols)
    pos += 1
    # the C kernel takes one zero bin per group (and the column clusters) and builds the
    # contexts itself; the numba kernels take one context (mode 1: zero bin) per code
    zg = np.ascontiguousarray(v1._zero_bin_groups(s16, lo16), dtype=np.int32)
    z = zg if nat is not None else np.ascontiguousarray(np.repeat(zg, v1.GROUP, axis=1)[:, :cols])
    cm = np.zeros(0, np.uint8)
    k = 0
    nctx = 16 * UP if mode == 1 else 16
    if mode == 2:  # contexts: the zero bin x the column's cluster
        head, pos = v1._take(buf, pos, 5, "column clusters")
        k, n = int(head[0]), v1._U32.unpack(head[1:])[0]
        cb, pos = v1._take(buf, pos, n, "column clusters")
        cm = np.frombuffer(v1.zstd_decompress(cb, cols, "dual column clusters"), np.uint8)
        if k not in COL_CLUSTERS or cm.size != cols or (cm.size and int(cm.max()) >= k):
            raise IntegrityError("dual fast chunk: column clusters corrupt")
        if nat is None:
            z = z * np.int32(k) + cm[None, :].astype(np.int32)
        nctx = 16 * k
    words, _rbuf, freq, cum, lut, ok = v1._parse_stream(buf[pos:], nctx, 16, with_lut=nat is None)
    q = np.empty((rows, cols), dtype=np.uint8)
    if nat is not None:
        bad = nat.decode_codes(words, z, freq, cum, lut, ok, q, max(cols, 1), int(mode == 1), lanes, cm,
                               k) if q.size else 0
    elif lanes > 1:
        bad = _decode_lanes(words, z, freq, cum, lut, ok, q, int(mode == 1), lanes) if q.size else 0
    elif mode == 1:
        bad = _decode_up(words, z, freq, cum, lut, ok, q)
    else:
        sym = np.empty(q.size, dtype=np.int32)
        bad = v1._decode(words, _rbuf, z.ravel(), _NO_RAW, freq, cum, lut, ok, sym, np.empty(q.size, np.uint64))
        if not bad and sym.size and int(sym.max()) > 15:
            bad = 1
        q[:] = sym.reshape(q.shape)
    if bad:
        raise IntegrityError("dual stream corrupt: it does not decode")
    return q, s16, lo16
