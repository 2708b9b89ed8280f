"""Frequency tables as side information: one byte per present symbol.

Why a byte: the decoder needs the exact integer frequencies, but those are a deterministic
function (``rans.normalize_weights``) of any weights we choose to store. Storing each weight as an
8-bit mini-float (4-bit exponent, 4-bit mantissa, ~3 % relative precision) costs well under a
thousandth of a bit per coded symbol in table mismatch, and makes the tables of a context-modelled
tensor cost ~30 bytes instead of ~100.
"""

from __future__ import annotations

import numpy as np

from ..errors import FormatError

# weight of code q (1..255): (16 + m) << e with q - 1 = e * 16 + m; code 0 means "absent"
_Q = np.arange(1, 256, dtype=np.int64)
WEIGHTS = np.concatenate([[0], (16 + ((_Q - 1) & 15)) << ((_Q - 1) >> 4)]).astype(np.int64)
_LOGW = np.log2(WEIGHTS[1:].astype(np.float64))
TOP = float(WEIGHTS[-1])


def quantize_counts(counts: np.ndarray) -> np.ndarray:
    """Counts (any shape, last axis = alphabet) -> uint8 codes, scaled per row to use the range.

    The reference: the encoder runs ``enc_tables.quantize_counts``, compiled, same codes."""
    c = np.asarray(counts, dtype=np.float64)
    peak = c.max(axis=-1, keepdims=True)
    peak[peak == 0] = 1.0
    with np.errstate(divide="ignore"):
        logv = np.log2(c / peak * TOP)
    idx = np.searchsorted(_LOGW, logv)  # first code with log weight >= value
    idx = np.clip(idx, 0, _LOGW.size - 1)
    lower = np.clip(idx - 1, 0, _LOGW.size - 1)
    pick_lower = np.abs(logv - _LOGW[lower]) < np.abs(_LOGW[idx] - logv)
    idx = np.where(pick_lower, lower, idx)
    q = (idx + 1).astype(np.uint8)
    q[c <= 0] = 0
    return q


def dequantize(q: np.ndarray) -> np.ndarray:
    return WEIGHTS[np.asarray(q, dtype=np.int64)]


def pack_rows(q: np.ndarray) -> bytes:
    """Serialise rows of codes as (u16 first present symbol, u16 span, span bytes).

    The reference: the encoder runs ``enc_tables.pack_rows``, compiled, same bytes.

    The bounds of every row come from two vectorised passes; the loop only slices bytes (a
    mantissa table has a row per exponent value: 256 ``flatnonzero`` calls per tensor cost
    more than coding a small tensor)."""
    q2 = np.ascontiguousarray(np.atleast_2d(q), dtype=np.uint8)
    nrows, width = q2.shape
    if nrows == 0:
        return b""
    nz = q2 != 0
    has = nz.any(axis=1)
    lo = np.where(has, nz.argmax(axis=1), 0)
    hi = np.where(has, width - nz[:, ::-1].argmax(axis=1), 0)
    heads = np.stack([lo, hi - lo], axis=1).astype("<u2").tobytes()
    raw = q2.tobytes()
    parts = []
    for r, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
        parts.append(heads[4 * r : 4 * r + 4])
        parts.append(raw[r * width + a : r * width + b])
    return b"".join(parts)


def unpack_rows(buf: bytes | memoryview, pos: int, nrows: int, alpha: int) -> tuple[np.ndarray, int]:
    """Inverse of ``pack_rows``; returns (codes uint8[nrows, alpha], new position)."""
    q = np.zeros((nrows, alpha), dtype=np.uint8)
    mv = memoryview(buf)
    for r in range(nrows):
        if pos + 4 > len(mv):
            raise FormatError("frequency table truncated")
        lo = int.from_bytes(mv[pos : pos + 2], "little")
        span = int.from_bytes(mv[pos + 2 : pos + 4], "little")
        pos += 4
        if lo + span > alpha or pos + span > len(mv):
            raise FormatError("frequency table out of range")
        q[r, lo : lo + span] = np.frombuffer(mv[pos : pos + span], dtype=np.uint8)
        pos += span
    return q, pos
