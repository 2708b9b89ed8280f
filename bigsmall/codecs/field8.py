"""The ``field8`` codec: the ``field`` model with a faster entropy stage.

Same layout, contexts, exponent and mantissa tables, head and parameters as ``field`` (spec
§14.1-14.4), except ``params["lanes"] = 8`` and the chunk layout: 8 rANS lanes interleaved by
element (unit ``t`` of a chunk belongs to lane ``t % 8``) with 63-bit states in ``[2^31, 2^63)``
and ONE 32-bit renormalisation per unit (an exponent step plus a mantissa step consume at most
``pb + mpb <= 24 < 32`` bits), all lanes sharing one word stream read in the decoder's program
order. The decoder then advances eight independent dependency chains with one stream pointer;
measured 1.7-1.9x faster per core than the 4-lane kernel at the same size
(``benchmarks/proto``).

Chunk of ``n >= 1`` units (little-endian)::

    u32 S | u64 x_0 .. x_7 (initial decoder states) | S bytes of u32 words | raw bits

- Raw bits: one LSB-first bit stream in unit order (spec §14.7, one stream per chunk), zero
  padded to a byte; the chunk length is exactly ``68 + S + ceil(raw bits / 8)``.
- Decoding, per group of up to 8 consecutive units, lanes ascending within each phase:
  (1) exponent step of every unit, (2) mantissa step of every unit (``mb > 0``),
  (3) renormalisation: ``if x < 2^31: x = x << 32 | next u32 word``; then the raw bits.
- End: every state equals ``2^31`` (lanes without units keep their initial state), all ``S``
  bytes consumed.
- Encoder: the reverse (states start at ``2^31``; groups last to first; per group the
  renormalisation of every lane, then the mantissa steps, then the exponent steps, each in
  reverse lane order); the stream is the emitted words in reverse emission order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import field, spread
from .base import register

LANES = 8


def encode_chunk(values: np.ndarray, k0: int, ncols: int, rowctx: np.ndarray,
                 colctx: np.ndarray, freq: np.ndarray, cum: np.ndarray, mfreq: np.ndarray,
                 mcum: np.ndarray, mrow: np.ndarray, lay: field.Layout,
                 rshift: np.ndarray) -> bytes:
    """One ``field8`` chunk of ``values`` (units ``k0 ..`` of the tensor)."""
    from ..native import enc_kernels
    from ._generated.encode8 import MAGIC, SHIFT, encode_values
    from .rans_encode import _raw_lane_fast

    native = enc_kernels()  # the C port (same states, words and bytes) unless disabled/absent
    if native is not None:
        encode_values = native.encode_values
        if values.dtype.itemsize * 8 - lay.c <= 32:  # wider: numba's (rans._raw_lane)
            _raw_lane_fast = native.raw_lane_fast

    xs, words = encode_values(values, k0, ncols, rowctx, colctx, freq.shape[1], mrow,
                              mfreq.shape[1], lay.p, lay.eb, lay.mb, freq.ravel(), cum.ravel(),
                              mfreq.ravel(), mcum.ravel(), field.PROB_BITS, field.MANT_PROB_BITS,
                              MAGIC, SHIFT)
    raw = _raw_lane_fast(values, k0, 0, values.shape[0], ncols, lay.p, lay.c, rshift)
    # one copy into the chunk (``+`` of bytes copied the lanes' words up to four times)
    return b"".join((int(words.nbytes).to_bytes(4, "little"), xs.astype("<u8", copy=False),
                     words.astype("<u4", copy=False), raw))


class Field8Codec(field.FieldCodec):
    """``field``'s model, head and parameters (``lanes = 8``) with the chunk layout above."""

    codec_id = "field8"
    lanes = LANES
    # freq | cum rows of 2**eb / 2**mb entries, not 256 (``decode_tables.build_tables``): the
    # kernel indexes ``(ctx << eb) + e`` and ``(e << mb) + m``. Decoder-only (the tables are
    # derived, not stored); a bf16 tensor's mantissa rows take 8 KiB instead of 256. Measured
    # with the kernel alone, CPU time, interleaved in one process over every field8 tensor
    # (21 rounds, median of pair ratios): time x0.95-0.96 on MiniLM bf16 (one run of four
    # x1.01), x0.95 on whisper-tiny fp16, x1.00 on MiniLM fp32.
    compact_rows = True

    def _encode_chunks(self, values: np.ndarray, chunk_units: int, ncols: int,
                       rowctx: np.ndarray, colctx: np.ndarray, freq: np.ndarray, cum: np.ndarray,
                       mfreq: np.ndarray, mcum: np.ndarray, mrow: np.ndarray, lay: field.Layout,
                       rshift: np.ndarray) -> tuple[bytes, ...]:
        return tuple(spread.map_pieces(  # independent chunks (spread.py)
            lambda k0: encode_chunk(values[k0 : k0 + chunk_units], k0, ncols, rowctx, colctx,
                                    freq, cum, mfreq, mcum, mrow, lay, rshift),
            range(0, values.shape[0], chunk_units)))

    def _kernels(self) -> tuple[Any, Any]:
        from ..native import kernels

        native = kernels("field8")  # the C port (same arguments and results) where selected
        if native is not None:
            return native.decode8_chunk, native.decode8_chunks
        from ._generated.decode8 import decode_chunk, decode_chunks

        return decode_chunk, decode_chunks


register(Field8Codec())
