"""The ``delta`` codec: a fine-tuned tensor coded against the same tensor of its base model.

Why this model (measured on the MiniLM bf16 pair of ``testing/finetune.py``, 40 AdamW steps,
28 % of the values changed, in % of the fine-tune's file; ``benchmarks/bench_delta.py``):
XOR + zstd-19 13.4 %, order-0 entropy of the integer difference 9.4 %, that difference given
the base value's exponent 7.3 %, + a per-row cluster 7.1 %; the previous element's symbol, the
top mantissa bit of the base or a column cluster each gain < 0.05 points. An optimizer moves a
weight by about the same *absolute* amount across a tensor, so the change counted in units in
the last place is set by the base value's exponent: that is the context.

Per element (words of the dtype's width ``W``; packed sub-byte dtypes as bytes):

- both words go through the monotone map (floats: sign-magnitude -> ordered integers; signed
  integers: offset binary), ``d = M(ft) - M(base) mod 2**W`` (bijective for any base word:
  NaN payloads, infinities, -0 are just bit patterns), zig-zagged to ``z`` (0, -1, 1, -2, ...
  -> 0, 1, 2, 3, ...);
- symbol ``s``: ``z`` itself for ``z < 2``, else ``2 * (bitlen(z) - 1) + (the bit below the
  leading one)`` (alphabet ``2W``), coded by static rANS under the context (exponent bucket of
  the base value) x (row cluster); the ``bitlen(z) - 2`` bits below are stored raw.

Blob: head = u8 version (3; 2 is still read), u8 K (exponent buckets), u8 R (row clusters), u8
PB, i16 elo, u32 rowctx length, the zstd'ed row clusters, the frequency tables
(``tables.pack_rows``); then one chunk per ``params["chunk"]`` elements: u32 rANS bytes, the final
states, the rANS words (one stream; element ``j`` of a chunk on state ``j % lanes``), the raw
bits. ``lanes`` is the only difference between the versions: 4 in version 2, ``LANES3`` (32) in
version 3, so that an AVX2 decoder steps 8 states a vector with four vectors in flight
(``native/delta_wide.h``): the words a vector's states need are the next ones in the stream, in
lane order, exactly what the scalar order reads.
Pure: numpy and numba only; the shell (``io/delta.py``) supplies the base bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zstandard

from .. import native
from ..core.types import TensorPlan, TensorSpec
from ..errors import FormatError, IntegrityError
from . import rans, tables
from .base import Codec, register
from .delta_kernels import (  # noqa: F401  (_mono .. _zig: what the property tests reach here)
    LANES,
    LANES3,
    RANS_L,
    _bitlen,
    _counts,
    _decode,
    _encode,
    _mono,
    _symbols,
    _tables,
    _unmono,
    _zig,
)

CODEC_ID = "delta"
BASE_ID = "base"  # the tensor equals a base tensor: zero bytes (params ``of``: its name)
PB = 13  # probability bits of version 2
PB3 = 10  # of version 3: a context's slot table is 1 kB (8 kB at 13: the AVX2 decoder's gathers
#          missed L1 and ran at 4.3 ns an element instead of ~1.7); +0.04-0.15 % of a patch
MAX_K = 16
CHUNK_ELEMS = 1 << 20
VERSION = 3  # what the writer writes; 2 (four states a chunk) is still read
_LANES = {2: LANES, 3: LANES3}
_PB = {2: PB, 3: PB3}
_WORDS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_NB = np.arange(128) // 2 + 1  # symbol -> bit length of z (symbols >= 2)
#: symbol -> z's bits known from the symbol (its leading one and the bit below; z for s < 4)
ZLEAD = np.array([s if s < 2 else (1 << int(_NB[s] - 1)) | ((s & 1) << int(_NB[s] - 2))
                  for s in range(128)], np.uint64)
RAWN = np.maximum(_NB - 2, 0).astype(np.uint8)  # symbol -> raw bits below those


def word_width(spec: TensorSpec) -> int:
    """Bytes per coded word: the element for byte-aligned dtypes, a byte for packed ones."""
    w = spec.info.itemsize
    return w if w in _WORDS else 1


def _kind(spec: TensorSpec) -> int:
    """0 unsigned, 1 signed integer (offset binary), 2 float (sign-magnitude)."""
    info = spec.info
    if info.itemsize not in _WORDS:
        return 0
    if info.exp_bits and info.bits in (8, 16, 32, 64):
        return 2
    return 1 if spec.dtype.startswith("I") else 0


# ---------------------------------------------------------------- the model

def _layout(spec: TensorSpec) -> tuple[int, int, int, int, int]:
    """(word bytes, word bits, kind, mantissa bits, exponent bits)."""
    wb = word_width(spec)
    kind = _kind(spec)
    info = spec.info
    return wb, wb * 8, kind, (info.mant_bits if kind == 2 else 0), (info.exp_bits if kind == 2 else 0)


def _rows(spec: TensorSpec, n: int) -> tuple[int, int]:
    rows, cols = spec.matrix
    if rows * cols != n or cols == 0:
        return 1, max(n, 1)
    return rows, cols


def _cost_bits(counts: np.ndarray) -> float:
    c = counts.astype(np.float64)
    tot = c.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(c * np.log2(np.where(c > 0, c / np.maximum(tot, 1), 1))).sum()
    return float(h) + 8 * 6 * int((counts > 0).any(axis=1).sum())


def _row_clusters(sym: np.ndarray, rows: int, cols: int, nr: int) -> np.ndarray:
    """Rows ranked by their mean (clipped) symbol, cut into ``nr`` equal groups; where some
    rows are unchanged and others not, the unchanged ones are group 0 alone (they then cost
    nothing and decode as a copy, ``_decode``'s ``skip``) and the rest share the others."""
    if nr == 1 or rows < 2 * nr:
        return np.zeros(rows, np.uint8)
    m = sym.reshape(rows, cols)
    score = np.minimum(m, 8).mean(axis=1)
    same = ~(m != 0).any(axis=1)
    out = np.zeros(rows, np.uint8)
    rest = np.flatnonzero(~same)
    groups, first = (nr - 1, 1) if same.any() and rest.size >= nr - 1 else (nr, 0)
    if not same.any() or groups == nr:
        rest = np.arange(rows)
    order = rest[np.argsort(score[rest], kind="stable")]
    out[order] = (first + np.arange(order.size) * groups // order.size).astype(np.uint8)
    return out


def encode(base: np.ndarray, ft: np.ndarray, spec: TensorSpec, version: int = VERSION,
           ) -> TensorPlan | None:
    """``ft`` (uint8, the tensor's bytes) coded against ``base`` (uint8, same size); None when
    the tensor is empty. The caller compares ``coded_size`` with the standalone coding.
    ``version``: 3, or 2 (what bigsmall wrote before; the tests keep decoding it)."""
    if base.size != ft.size or ft.size == 0:
        return None
    wb, wbits, kind, mbits, ebits = _layout(spec)
    dt = _WORDS[wb]
    bw = base.view(dt)
    fw = ft.view(dt)
    n = bw.size
    rows, cols = _rows(spec, n)
    alpha = 2 * wbits
    elo, nk = 0, 1
    if kind == 2:
        e = ((bw >> mbits) & ((1 << ebits) - 1)).astype(np.int64)
        hist = np.bincount(e, minlength=1 << ebits)
        nz = np.flatnonzero(hist)
        hi = int(nz[-1])
        cum_hi = np.cumsum(hist[::-1])
        # the top bucket ends at the largest exponent; the lowest covers the rare small values
        lo_keep = int(np.searchsorted(cum_hi, 0.999 * n))
        nk = max(1, min(MAX_K, lo_keep + 1, hi - int(nz[0]) + 1))
        elo = hi - nk + 1
    sym, ce = _symbols(bw, fw, wbits, kind, mbits, ebits, elo, nk)
    best: tuple[float, int, np.ndarray, np.ndarray] | None = None
    for nr in (1, 4):
        if nr > 1 and rows < 64:
            continue
        rowctx = np.zeros(rows, np.uint8) if nr == 1 else _row_clusters(sym, rows, cols, nr)
        counts = _counts(sym, ce, rowctx, cols, nr, nk * nr, alpha)
        cost = _cost_bits(counts) + (rows * 2 if nr > 1 else 0)
        if best is None or cost < best[0]:
            best = (cost, nr, rowctx, counts)
    assert best is not None
    _, nr, rowctx, counts = best
    packed = tables.pack_rows(tables.quantize_counts(counts))
    pb = _PB[version]
    freq, cum, _tsym, _pos, err = _tables(np.frombuffer(packed, np.uint8), 0, nk * nr, alpha, pb)
    if err:
        return None
    tab = rans.encoder_table(freq, cum, pb)
    det = (freq[:, 0] == 1 << pb).astype(np.uint8)
    rc = zstandard.ZstdCompressor(level=9).compress(rowctx.tobytes()) if nr > 1 else b""
    head = (bytes([version, nk, nr, pb]) + int(elo).to_bytes(2, "little", signed=True)
            + len(rc).to_bytes(4, "little") + rc + packed)
    per = max(1, CHUNK_ELEMS // cols) * cols
    chunks = tuple(_encode(sym[a:a + per], ce[a:a + per], rowctx, a, cols, nr, bw[a:a + per],
                           fw[a:a + per], wbits, kind, tab, alpha, det, _LANES[version]).tobytes()
                   for a in range(0, n, per))
    return TensorPlan(CODEC_ID, {"chunk": per}, head, chunks)


def prepare(spec: TensorSpec, params: dict[str, Any], head: bytes | memoryview) -> Any:
    """Parse and check the side information; a bad head is a typed error, never a crash."""
    where = f"tensor {spec.name!r}: delta"
    per = params.get("chunk")
    wb, wbits, kind, mbits, ebits = _layout(spec)
    n = spec.nbytes // wb
    rows, cols = _rows(spec, n)
    if type(per) is not int or per < 1 or per % cols:
        raise FormatError(f"{where}: bad chunk parameter")
    head = bytes(head)
    if len(head) < 10 or head[0] not in _LANES:
        raise FormatError(f"{where}: side information truncated or of an unknown version")
    nk, nr, pb = head[1], head[2], head[3]
    elo = int.from_bytes(head[4:6], "little", signed=True)
    rlen = int.from_bytes(head[6:10], "little")
    if not (1 <= nk <= MAX_K and nr in (1, 4) and pb == _PB[head[0]] and 10 + rlen <= len(head)):
        raise FormatError(f"{where}: bad side information")
    if nr > 1:
        from ..container.format import zstd_decompress

        rowctx = np.frombuffer(zstd_decompress(head[10:10 + rlen], rows, where), np.uint8)
        if rowctx.size != rows or (rowctx.size and int(rowctx.max()) >= nr):
            raise IntegrityError(f"{where}: row clusters corrupt")
    else:
        rowctx = np.zeros(rows, np.uint8)
    alpha = 2 * wbits
    enc = native.enc_kernels()
    if enc is not None:  # the C table builder (the field codecs' rows: alpha = 2**eb, no mantissa)
        # a decode then runs no numba code at all: loading even cached numba kernels maps
        # LLVM, ~100 MB of RSS that apply/load(base=) paid and decompress did not
        tsym, tfc, _ms, _mf, pos, err = enc.build_tables(
            np.frombuffer(head, np.uint8), 10 + rlen, nk * nr, alpha.bit_length() - 1, 0, pb, 0, True)
        freq0 = tfc[::alpha] & 0xFFFF
    else:
        freq, cum, tsym, pos, err = _tables(np.frombuffer(head, np.uint8), 10 + rlen, nk * nr,
                                            alpha, pb)
        tfc = (freq | cum << 16).astype(np.uint32).ravel()
        freq0 = freq[:, 0]
    if err:
        raise FormatError(f"{where}: frequency tables truncated or out of range")
    if pos != len(head):
        raise FormatError(f"{where}: side information has trailing bytes")
    det = (freq0 == 1 << pb).astype(np.uint8)
    skip = det.reshape(nk, nr).all(axis=0).astype(np.uint8)
    # 3 spare bytes: the AVX2 kernel reads a slot's symbol with a 4-byte gather
    tsym = np.concatenate((tsym, np.zeros(4, np.uint8)))
    return (wb, wbits, kind, mbits, ebits, elo, nk, nr, cols, rowctx, tsym, tfc, det, skip,
            _LANES[head[0]], pb, per)


def chunk_ranges(state: Any, spec: TensorSpec, nchunks: int) -> list[tuple[int, int]]:
    """The output byte range of each chunk; the chunk count must match the tensor's size."""
    wb, per = state[0], state[-1]
    n = spec.nbytes // wb
    if nchunks != -(-n // per):
        raise FormatError(f"tensor {spec.name!r}: delta chunk count does not match its size")
    return [(i * per * wb, min(n, (i + 1) * per) * wb) for i in range(nchunks)]


def decode_chunk(state: Any, spec: TensorSpec, index: int, chunk: bytes | memoryview,
                 base: np.ndarray, out: np.ndarray) -> None:
    """Decode chunk ``index`` against ``base`` (uint8, that chunk's base bytes) into ``out``
    (uint8, that chunk's output bytes)."""
    wb, wbits, kind, mbits, ebits, elo, nk, nr, cols, rowctx, tsym, tfc, det, skip, lanes, pb, per = state
    dt = _WORDS[wb]
    bw = base.view(dt)
    if out.size != base.size or bw.size > per:
        raise FormatError(f"tensor {spec.name!r}: delta chunk {index} has the wrong size")
    c = native.delta()  # the C port (same arguments, same bytes), or the numba reference
    err = (c.decode if c is not None else _decode)(
        np.frombuffer(chunk, np.uint8), bw, out.view(dt), index * per, wbits, kind, mbits, ebits,
        elo, nk, cols, rowctx, nr, tsym, tfc, 2 * wbits, pb, det, skip, ZLEAD, RAWN, lanes)
    if err:
        raise IntegrityError(f"tensor {spec.name!r}: delta chunk {index} corrupt (code {err})")


def decode(state: Any, spec: TensorSpec, base: np.ndarray, chunks: list[memoryview],
           out: np.ndarray) -> None:
    """Decode every chunk (``prepare``'s state) against ``base`` (uint8) into ``out`` (uint8)."""
    if out.size != base.size or base.size != spec.nbytes:
        raise FormatError(f"tensor {spec.name!r}: delta base or output of the wrong size")
    for i, (lo, hi) in enumerate(chunk_ranges(state, spec, len(chunks))):
        decode_chunk(state, spec, i, chunks[i], base[lo:hi], out[lo:hi])


class _NeedsBase(Codec):
    """Registered so that a patch opened without its base names the problem: these tensors
    decode only through ``io/delta.py``, which supplies the base."""

    def __init__(self, codec_id: str):
        self.codec_id = codec_id  # type: ignore[misc]

    def encode(self, data: np.ndarray, spec: TensorSpec, chunk_units: int, *,
               level: str = "default") -> TensorPlan | None:
        return None

    def decode_chunk(self, state: Any, spec: TensorSpec, params: dict[str, Any], index: int,
                     chunk: bytes | memoryview, out: np.ndarray) -> None:
        from ..errors import BaseRequiredError

        raise BaseRequiredError(f"tensor {spec.name!r} is stored as a change to a base model: "
                                "give the base (--base BASE, base=...)")


register(_NeedsBase(CODEC_ID))
register(_NeedsBase(BASE_ID))
