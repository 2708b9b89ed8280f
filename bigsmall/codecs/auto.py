"""The ``auto`` coder: per tensor, ``fieldp`` (prefix code) when it is within ``MARGINS[level]`` of
``field8`` (rANS), else ``field8``.

Why per tensor and by size: both codecs code the same model with the same side information
(``field.FieldCodec.model``); only the entropy stage differs. The prefix code's whole-bit
lengths cost a fixed share of each tensor's coded size, and that share depends on the data:
measured on the corpus (per-tensor size of ``fieldp`` over ``field8``, weighted by bytes) it is
0.25-0.31 % on MiniLM bf16, 0.19-0.22 % on Whisper tiny fp16 and 0.09-0.12 % on MiniLM fp32,
and far more on skewed byte buffers (a bool mask: 13 % vs 7.5 % of its bytes). Its decoder is
~1.7-2x faster per core (``benchmarks/bench_decode.py``). ``MARGINS`` buys that speed per level:
at the default level where the prefix code costs at most 1 % of the tensor's coded size, which
makes every float tensor of the corpus prefix-coded (MiniLM bf16: 65.76 % instead of 65.58 %,
for a kernel ~2x faster; issue 17 allows the default up to 65.8 %) while skewed byte buffers,
where a prefix code costs far more, keep rANS; at ``--level max`` where it costs at most a
quarter of a percent, so bf16 (0.25-0.31 %) keeps rANS and today's smallest auto files.

Both sizes are computed, not guessed: the joint symbol counts per context (one counting pass)
times the prefix code's lengths, against the same counts times rANS's ideal cost
``-log2(freq * mfreq / 2**(PROB_BITS + MANT_PROB_BITS))`` (within 0.1 % plus a few bytes a
chunk of what rANS writes, ``tests/test_coders.py``), plus each layout's chunk headers. Only
the chosen codec then codes the chunks.
"""

from __future__ import annotations

import numpy as np

from ..core.types import TensorPlan, TensorSpec
from . import field
from .base import get_codec

MARGINS = {"max": 0.0025, "default": 0.01, "fast": 0.01}
"""Per level: ``fieldp`` is kept when at most this much larger than ``field8`` (fraction)."""
# field8 (field8.py): u32 stream length + eight u64 states, of which about two bytes each are
# coded data (a final encoder state lies anywhere in [2^31, 2^63), ~16 bits above its floor on
# average; measured: the estimate was 15.6 bytes per chunk high without this)
FIELD8_CHUNK_HEADER = 4 + 8 * 8 - 8 * 2
FIELDP_CHUNK_HEADER = 4 * 4  # four u32 lane lengths (fieldp.py), plus up to 4 padding bytes


def estimate(m: field.EncModel, chunk_units: int) -> tuple[float, float]:
    """(field8 bytes, fieldp bytes) of the chunks of a tensor coded under ``m``."""
    from . import counting, enc_tables
    from .fieldp import joint_code

    lay = m.lay
    counts = m.joint_counts
    if counts is None:
        joint = counting._bit_field(m.values, lay.p, lay.c).reshape(m.nrows, m.ncols)
        # cluster labels, not contexts: the kernel multiplies rows by kc itself (and does not
        # check its indices)
        counts = counting._ctx_table(joint, m.cl.row_map.astype(np.int64),
                                     m.cl.col_map.astype(np.int64), m.cl.kc, m.cl.n_contexts,
                                     1 << lay.c)
    w, lens, _codes = joint_code(m.freq, m.mfreq, m.mrow, lay)
    pbits = field.PROB_BITS + (field.MANT_PROB_BITS if lay.mb else 0)
    covered, rans_bits, prefix_len = enc_tables.estimate_bits(counts, w, lens, pbits)
    if not covered:  # a symbol the tables do not cover: cannot happen; keep rANS
        return 0.0, float("inf")
    prefix_bits = float(prefix_len)
    raw_bits = float(m.ncols * (lay.rbits * m.nrows - m.rshift.sum()))
    nchunks = -(-m.values.shape[0] // chunk_units)
    return ((rans_bits + raw_bits) / 8 + FIELD8_CHUNK_HEADER * nchunks,
            (prefix_bits + raw_bits) / 8 + (FIELDP_CHUNK_HEADER + 2) * nchunks)


def encode(data: np.ndarray, spec: TensorSpec, chunk_units: int,
           level: str = "default") -> TensorPlan | None:
    """The tensor coded by ``fieldp`` or ``field8`` (see the module's docstring); None when
    neither applies."""
    f8 = get_codec("field8")
    assert isinstance(f8, field.FieldCodec)
    m = f8.model(data, spec, level)
    if m is None:
        return None
    return plan_model(m, chunk_units, level)


def plan_model(m: field.EncModel, chunk_units: int, level: str = "default") -> TensorPlan:
    """The tensor of model ``m`` coded by ``fieldp`` or ``field8`` (the module's docstring);
    also for models made elsewhere (``codecs.fp8``)."""
    f8 = get_codec("field8")
    rans_size, prefix_size = estimate(m, chunk_units)
    # 8-bit layouts (fp8, bytes) keep the smallest margin: a prefix code's whole bits cost
    # them more (MiniLM fp8: 81.35 % of its fp8 bytes instead of 81.1 %, tests/test_fp8.py)
    # and one-byte units gain less from a faster kernel per element
    margin = MARGINS["max"] if m.lay.width <= 8 else MARGINS.get(level, MARGINS["default"])
    codec = get_codec("fieldp") if prefix_size <= rans_size * (1 + margin) else f8
    assert isinstance(codec, field.FieldCodec)
    return codec.plan(m, chunk_units)
