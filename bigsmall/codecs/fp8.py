"""The fp8 model: ``field8``'s chunks and decoder, with a model fitted to 8-bit floats.

Why a model of its own: ``field``'s float model codes the exponent with the table of its
(row cluster, column cluster) context, the mantissa with one table per exponent shared by
every context and the sign raw, with at most 8 clusters per axis. That suits bf16/fp16, whose
low mantissa bits are noise. An fp8 element is one byte whose every bit carries information,
and per-tensor scaled fp8 casts of real models have per-column structure that this misses:
an embedding's columns (hidden dimensions) have their own scale *and their own mean*, so the
sign is predictable per column. Measured on a per-tensor scaled e4m3 cast of Whisper tiny,
its token embedding (51864 x 384, half of the file) goes from 77.4 % with the magnitude per
context and the sign raw to 73.4 % with the whole byte per context and 256 column clusters
(32, the bound ``MAX_AXIS`` used, gives the same sizes over the corpus within 0.02 points).

So for fp8 tensors this module tries two models and keeps the smaller plan: the whole byte
coded with the table of its context (layout ``(8, 0, 8, 0)``) over a grid of up to
``MAX_AXIS`` clusters per axis and ``MAX_CONTEXTS`` contexts, and ``field``'s own model
(exponent per context, mantissa given the exponent: fewer table entries, which wins on small,
unstructured tensors). The result is an ordinary ``field8``/``fieldp``/
``field`` stream: the decoder, its parameter checks (``field.FieldCodec._parse_head``: any
layout with ``eb <= 8``, up to 256 contexts) and the format are unchanged, so nothing new has
to be trusted on the decoding side and every bigsmall since format 1.0 (``field``) or 1.1
(``field8``) reads the files.

Measured on per-tensor scaled casts of the corpus: ``benchmarks/bench_fp8.py`` and
``docs/performance.md`` ("fp8").
"""

from __future__ import annotations

import numpy as np
import zstandard

from ..core.types import TensorPlan, TensorSpec
from . import field
from .base import get_codec

FP8_DTYPES = frozenset({"F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ"})
MAX_AXIS = 32  # clusters per axis the grid search may reach (256 measured the same sizes)
MAX_CONTEXTS = 256  # == the decoder's bound (``_parse_head``: kr * kc <= 256)
LAYOUT = field.Layout(8, 0, 8, 0)  # the whole byte, coded with its context's table
# ``models`` tries the whole-byte model on tensors of at least this many elements, or whose
# signs say at least SIGN_GAIN of the tensor's bytes per column (``_sign_gain``)
WHOLE_MIN_NUMEL = 1 << 23
SIGN_GAIN = 0.004
SIGN_SAMPLE_ROWS = 2048


def applies(spec: TensorSpec) -> bool:
    """Whether ``model`` codes this tensor (an fp8 dtype with elements)."""
    return spec.dtype in FP8_DTYPES and spec.numel > 0


def model(data: np.ndarray, spec: TensorSpec, level: str = "default") -> field.EncModel | None:
    """The whole-byte model of an fp8 tensor as a ``field.EncModel`` (plan it with
    ``field8``/``fieldp``/``field``); None when it does not apply. Its contexts are fitted on
    the sign and exponent bits (``models``), the tables counted on the whole byte."""
    from . import context, enc_tables, rans

    if not applies(spec):
        return None
    values = data.view(np.uint8)
    nrows, ncols = spec.matrix
    cl = context.trivial(nrows, ncols)
    if level != "fast":
        cb = 1 + spec.info.exp_bits
        sym = context._bit_field(values, 8 - cb, cb).reshape(nrows, ncols)
        cl = context.choose(sym, 1 << cb, MAX_CONTEXTS, MAX_AXIS)
    whole = context._bit_field(values, 0, 8)  # uint16, the type the kernels are compiled for
    counts = context._ctx_table(whole.reshape(nrows, ncols), cl.row_map.astype(np.int64),
                                cl.col_map.astype(np.int64), cl.kc, cl.n_contexts, 256)
    qexp = enc_tables.quantize_counts(counts)
    freq = enc_tables.normalize_codes(qexp, field.PROB_BITS)
    mfreq, mcum, mrow = field._mantissa_tables(None, LAYOUT.eb, field.MANT_PROB_BITS)
    maps = (cl.row_map.tobytes() if cl.kr > 1 else b"") + (cl.col_map.tobytes() if cl.kc > 1 else b"")
    head_z = zstandard.ZstdCompressor(level=19).compress(maps + enc_tables.pack_rows(qexp))
    return field.EncModel(values, LAYOUT, cl, nrows, ncols, freq, rans.cumulative(freq), mfreq,
                          mcum, mrow, np.zeros(nrows, np.int64), head_z, counts)


def _sign_gain(values: np.ndarray, spec: TensorSpec) -> float:
    """What coding each column's sign with its own probability saves, as a fraction of the
    tensor's bytes, estimated on up to ``SIGN_SAMPLE_ROWS`` evenly spaced rows (the estimate
    is biased up by about ``0.09 / rows`` of the bytes: 0.02 % on 384 rows)."""
    nrows, ncols = spec.matrix
    signs = values.reshape(nrows, ncols)[:: max(1, nrows // SIGN_SAMPLE_ROWS)] >> 7
    p = np.clip(signs.mean(axis=0, dtype=np.float64), 1e-12, 1 - 1e-12)
    h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return float((1.0 - h).mean() / 8)


def models(data: np.ndarray, spec: TensorSpec, level: str = "default") -> list[field.EncModel]:
    """The models tried (the module's docstring); empty when none applies.

    The whole-byte model fits its contexts on sign and exponent (``1 + exp_bits`` top bits):
    measured on the Whisper tiny e4m3 cast, 77.23 % instead of 77.30 % of the fp8 bytes when
    fitted on the whole byte, in 0.37x the time (a 32-symbol alphabet instead of ~200). The
    other is ``field``'s own model (its layout and grid): searching its layout over the larger
    grid as well gave the same sizes in the best-of-two (76.92 vs 76.91 % on Whisper tiny,
    81.01 % on MiniLM) for ~1.5x its time. A third model, the magnitude per context with the
    sign raw, was dropped: it won on 0.1 % of the corpus' fp8 bytes.

    The whole-byte model is only tried where it may win: on the e4m3 casts of the corpus it
    won on the embeddings (MiniLM's 30522 x 384 by 0.3 % of its bytes, Whisper's by 5.6 and
    10.3 %), the position encodings (sign gain 3-6 %) and three 2048 x 512 / 1536 x 384 ffn
    matrices (sign gain >= 0.43 %, by <= 0.22 %); on every tensor of under 2**23 elements
    with a sign gain under 0.4 % it lost (by 0.4-1.2 %: 256-entry tables), and trying it
    there doubled the time of the fp8 tensors' models."""
    if not applies(spec):
        return []
    f8 = get_codec("field8")
    assert isinstance(f8, field.FieldCodec)
    own = f8.model(data, spec, level)
    if own is not None and spec.numel < WHOLE_MIN_NUMEL and _sign_gain(data, spec) < SIGN_GAIN:
        return [own]
    whole = model(data, spec, level)
    return [m for m in (whole, own) if m is not None]


def encode(data: np.ndarray, spec: TensorSpec, chunk_units: int, level: str = "default",
           codec_id: str = "field8", coder: str = "rans") -> TensorPlan | None:
    """The fp8 tensor coded by ``codec_id`` (``field``, ``field8`` or ``fieldp``; with the
    ``auto`` coder, ``field8`` means: whichever of ``field8``/``fieldp`` ``codecs.auto``
    picks) under the smaller of ``models``; None when it does not apply."""
    from . import auto

    best: TensorPlan | None = None
    for m in models(data, spec, level):
        if coder == "auto" and codec_id == "field8":
            plan = auto.plan_model(m, chunk_units, level)
        else:
            codec = get_codec(codec_id)
            assert isinstance(codec, field.FieldCodec)
            plan = codec.plan(m, chunk_units)
        if best is None or plan.coded_size < best.coded_size:
            best = plan
    return best
