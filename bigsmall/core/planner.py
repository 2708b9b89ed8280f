"""Choose and apply a codec for one tensor: a pure function of its bytes.

Why try several codecs: the right one depends on the data (constant buffers, few distinct values,
float exponents, wide integers), and measuring the actual coded size is cheap next to the cost of
guessing wrong. The result never expands: if nothing beats the raw bytes, the tensor is stored raw.
"""

from __future__ import annotations

import numpy as np

from ..codecs.base import get_codec, unit_bytes
from ..codecs.field import base_layout
from .types import TensorPlan, TensorSpec

CHUNK_BYTES = 1 << 18  # decoded bytes per independently decodable chunk (parallel decode)


def chunk_units_for(spec: TensorSpec, chunk_bytes: int = CHUNK_BYTES) -> int:
    return max(1, chunk_bytes // unit_bytes(spec))


def candidate_codecs(spec: TensorSpec) -> list[str]:
    """Codec ids worth trying for this dtype, cheapest-to-check first."""
    out = ["const"]
    if spec.info.itemsize >= 2:
        out.append("lut")
    if base_layout(spec) is not None:
        out.append("field")
    out.append("zstd")  # also catches repetitive float tensors (e.g. sinusoidal tables)
    return out


def plan_tensor(data: np.ndarray, spec: TensorSpec, chunk_bytes: int = CHUNK_BYTES) -> TensorPlan:
    """Code one tensor's raw bytes (uint8 array) with the smallest applicable codec."""
    chunk_units = chunk_units_for(spec, chunk_bytes)
    raw = get_codec("raw")
    if data.size == 0:
        return raw.encode(data, spec, chunk_units)  # type: ignore[return-value]
    best: TensorPlan | None = None
    for cid in candidate_codecs(spec):
        plan = get_codec(cid).encode(data, spec, chunk_units)
        if plan is None:
            continue
        if best is None or plan.coded_size < best.coded_size:
            best = plan
        if cid == "const":
            break  # nothing beats a constant
    if best is None or best.coded_size >= data.size:
        return raw.encode(data, spec, chunk_units)  # type: ignore[return-value]
    return best
