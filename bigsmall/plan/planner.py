"""Choose and apply a codec for one tensor: a pure function of its bytes.

Why try several codecs: the right one depends on the data (constant buffers, few distinct values,
float exponents, wide integers), and measuring the actual coded size is cheap next to the cost of
guessing wrong. The result never expands: if nothing beats the raw bytes, the tensor is stored raw.
"""

from __future__ import annotations

import numpy as np

from ..codecs import auto, fp8, spread
from ..codecs.base import CODERS, LEVELS, get_codec, n_units, unit_bytes
from ..codecs.field import base_layout
from ..core.types import TensorPlan, TensorSpec
from ..errors import InvalidOptionError
from .rowgroups import row_group_units

CHUNK_BYTES = 1 << 18  # decoded bytes per independently decodable chunk (parallel decode)


def chunk_units_for(spec: TensorSpec, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Units per chunk: ``chunk_bytes`` worth, or a token-embedding table's row group
    (``rowgroups.py``: small row-aligned chunks, so a lookup decodes few bytes)."""
    rows = row_group_units(spec, chunk_bytes)
    if rows is not None:
        return rows
    return balanced_units(spec, chunk_bytes)


SPLIT_MIN_BYTES = 1 << 17  # a tensor at least this large gets an even number of chunks
CHUNK_ALIGN_UNITS = 64  # chunk boundaries fall on whole cache lines of the output


def balanced_units(spec: TensorSpec, chunk_bytes: int) -> int:
    """Units per chunk: at most about ``chunk_bytes`` of output, the chunks of a tensor of at
    least ``SPLIT_MIN_BYTES`` balanced into an even count of near-equal ones.

    Why balanced: a chunk is the unit of parallel decoding, and ``read`` splits one tensor's
    chunks over the threads. Cut greedily, a 384 x 384 bf16 matrix (295 KB) made chunks of
    131072 and 16384 elements: one thread decoded 89 % of it, so two threads gained ~7 % on
    MiniLM (issue 17). Two chunks of 73728 cost the same headers; a tensor gets at most one
    chunk more than the greedy cut (~18 bytes). Boundaries are rounded to
    ``CHUNK_ALIGN_UNITS`` so that two threads never write the same cache line."""
    per = max(1, chunk_bytes // unit_bytes(spec))
    n = n_units(spec)
    if spec.nbytes < SPLIT_MIN_BYTES or n <= per // 2:
        return per
    k = -(-n // per)
    k += k % 2
    units = -(-n // k)
    return -(-units // CHUNK_ALIGN_UNITS) * CHUNK_ALIGN_UNITS


def candidate_codecs(spec: TensorSpec, format_version: tuple[int, int] = (1, 1),
                     coder: str = "rans") -> list[str]:
    """Codec ids worth trying for this dtype, cheapest-to-check first.

    Format 1.1 codes floats with ``field8`` (the model of ``field``, a decoder about 1.8x faster
    per core, spec §18); format 1.0 with ``field``, which every bigsmall reads; the ``prefix``
    coder (format 1.2) with ``fieldp`` (same model, prefix-coded, §19); the ``auto`` coder
    (format 1.2) with whichever of the two ``codecs.auto`` picks for the tensor."""
    out = ["const"]
    if spec.info.itemsize >= 2:
        out.append("lut")
    lay = base_layout(spec)
    if lay is not None:
        if coder == "auto":
            out.append("field8")  # planned by ``codecs.auto``: field8 or fieldp
        elif coder == "prefix":
            out.append("fieldp")
            if lay.eb == 8 and lay.mb == 0 and lay.width == 8:
                out.append("field8")  # whole bytes: see PREFIX_MARGIN
        else:
            out.append("field8" if format_version >= (1, 1) else "field")
    out.append("zstd")  # also catches repetitive float tensors (e.g. sinusoidal tables)
    return out


PREFIX_MARGIN = 0.95
"""With the prefix coder, ``field8`` replaces ``fieldp`` only when it is this much smaller.

Why tried at all: a prefix code spends at least one bit per unit, so on skewed byte data
(attention masks, sparse bool buffers) it can be twice rANS's size (bool mask vector: 13 % vs
7.5 %); float fields, whose joint symbols are never that skewed, stay within ~0.3 % and are
only coded with ``fieldp``. The margin keeps the faster codec when the saving is small."""

ZSTD_PROBE_MARGIN = 1.02  # skip the zstd trial when its probe is this much larger, per byte
SMALL_PROBE_BYTES = 1 << 16  # the probe of a tensor of one or two chunks


def _zstd_may_win(data: np.ndarray, spec: TensorSpec, chunk_units: int, best: TensorPlan) -> bool:
    """Whether trying ``zstd`` on the whole tensor is worth it, judged on its first bytes.

    Why: the zstd trial was ~7 % of compress time and almost never wins on weights (its byte
    planes lose to the exponent model by 5-20 points); where it does win (repetitive tables
    such as sinusoidal position embeddings, and by ~0.3 % Whisper tiny's fp16 token embedding
    at ``--level fast``) it wins on every chunk. So code the first chunk only and go on only
    if it comes within ``ZSTD_PROBE_MARGIN`` of the best plan's first chunk. A tensor of one
    or two chunks (a 384 x 384 attention matrix) is probed on its first ``SMALL_PROBE_BYTES``
    instead of being tried in full: those trials were ~6 % of a ``--level fast`` compress of
    MiniLM bf16, and the files of the corpus models come out byte-identical. Why not the
    small probe everywhere: zstd codes 64 KiB less well than 256 KiB (less history), and the
    embedding above then misses its trial (+0.1 points of size). A tensor no larger than its
    probe is tried in full.
    """
    if not best.chunks:
        return True
    unit = unit_bytes(spec)
    units = chunk_units
    if len(best.chunks) <= 2:
        units = max(1, min(chunk_units, SMALL_PROBE_BYTES // unit))
    n = units * unit
    if n >= data.size:
        return True
    probe = get_codec("zstd").encode(data[:n], spec, units)
    if probe is None:
        return False
    first = min(chunk_units * unit, data.size)  # bytes the best plan's first chunk covers
    return probe.coded_size * first <= ZSTD_PROBE_MARGIN * len(best.chunks[0]) * n


ZSTD_GROUP_CHUNKS = 8  # chunks per piece of a spread zstd trial


def _zstd_trial(data: np.ndarray, spec: TensorSpec, chunk_units: int) -> TensorPlan | None:
    """The ``zstd`` codec's plan of the whole tensor, coded in groups of chunks through
    ``spread.map_pieces`` (over the pool ``compress`` lends a large tensor).

    Why: each zstd chunk is a frame of its own, so the groups' chunks are the chunks of one
    call, and where zstd wins (Whisper tiny's fp16 embedding at ``--level fast``: 40 MB) its
    trial no longer runs on one thread alone. Always the same bytes as ``encode`` on the
    whole tensor."""
    codec = get_codec("zstd")
    step = chunk_units * unit_bytes(spec) * ZSTD_GROUP_CHUNKS
    if data.size <= step:
        return codec.encode(data, spec, chunk_units)
    parts = spread.map_pieces(lambda i: codec.encode(data[i : i + step], spec, chunk_units),
                              range(0, data.size, step))
    if any(p is None for p in parts):
        return None
    return TensorPlan(parts[0].codec, parts[0].params, parts[0].head,
                      tuple(c for p in parts for c in p.chunks))


def check_options(level: str, coder: str, format_version: tuple[int, int]) -> None:
    """InvalidOptionError for an unknown level or coder, or the prefix coder before format
    1.2. One place for the rule: ``compress`` calls it before touching any file, and
    ``plan_tensor`` for callers of the core alone."""
    if level not in LEVELS:
        raise InvalidOptionError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    if coder not in CODERS:
        raise InvalidOptionError(f"unknown coder {coder!r}; expected one of {', '.join(CODERS)}")
    if coder in ("prefix", "auto") and format_version < (1, 2):
        raise InvalidOptionError(f"the {coder} coder needs format 1.2 or later, not "
                                 f"{format_version[0]}.{format_version[1]}")


def plan_tensor(data: np.ndarray, spec: TensorSpec, chunk_bytes: int = CHUNK_BYTES,
                level: str = "default", format_version: tuple[int, int] = (1, 1),
                coder: str = "rans") -> TensorPlan:
    """Code one tensor's raw bytes (uint8 array) with the smallest applicable codec.

    ``level``: encoder effort (``codecs.base.LEVELS``); ``coder``: entropy stage
    (``codecs.base.CODERS``; ``prefix`` needs format 1.2). InvalidOptionError on a bad one."""
    check_options(level, coder, format_version)
    chunk_units = chunk_units_for(spec, chunk_bytes)
    raw = get_codec("raw")
    if data.size == 0:
        return raw.encode(data, spec, chunk_units)  # type: ignore[return-value]
    best: TensorPlan | None = None
    for cid in candidate_codecs(spec, format_version, coder):
        if cid == "zstd" and best is not None and not _zstd_may_win(data, spec, chunk_units, best):
            continue
        if cid in ("field", "field8", "fieldp") and fp8.applies(spec):
            plan = fp8.encode(data, spec, chunk_units, level, cid, coder)
        elif cid == "field8" and coder == "auto":
            plan = auto.encode(data, spec, chunk_units, level)
        elif cid == "zstd":
            plan = _zstd_trial(data, spec, chunk_units)
        else:
            plan = get_codec(cid).encode(data, spec, chunk_units, level=level)
        if plan is None:
            continue
        bar = best.coded_size if best is not None else 0
        if best is not None and cid == "field8" and best.codec == "fieldp":
            bar = int(bar * PREFIX_MARGIN)
        if best is None or plan.coded_size < bar:
            best = plan
        if cid == "const":
            break  # nothing beats a constant
    if best is None or best.coded_size >= data.size:
        return raw.encode(data, spec, chunk_units)  # type: ignore[return-value]
    return best
