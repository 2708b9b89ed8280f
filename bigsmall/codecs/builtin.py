"""The small codecs, and the import that registers every built-in codec.

- ``raw``: the bytes as they are (the never-expand fallback, and empty tensors).
- ``const``: every element has the same bit pattern (all-zero buffers, constant masks).
- ``lut``: at most 256 distinct bit patterns; a value table plus byte indices coded by ``field``.
- ``zstd``: byte planes (byte k of every element together) then zstd: the generic path for
  wide integers and anything the exponent model does not fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..container.format import zstd_decompress
from ..core.types import TensorPlan, TensorSpec
from ..errors import FormatError, IntegrityError
from . import delta as _delta  # noqa: F401  (registers "delta" and "base": they need the base)
from . import field as _field  # noqa: F401  (registers "field")
from . import field8 as _field8  # noqa: F401  (registers "field8")
from . import fieldp as _fieldp  # noqa: F401  (registers "fieldp")
from .base import Codec, get_codec, register, unit_bytes, zstd_compress

_WORD = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


class RawCodec(Codec):
    codec_id = "raw"

    def encode(self, data: np.ndarray, spec: TensorSpec, chunk_units: int, *,
               level: str = "default") -> TensorPlan:
        step = chunk_units * unit_bytes(spec)
        chunks = tuple(data[i : i + step].tobytes() for i in range(0, data.size, step))
        return TensorPlan(self.codec_id, {"chunk": chunk_units}, b"", chunks)

    def decode_chunk(self, state: Any, spec: TensorSpec, params: dict[str, Any], index: int,
                     chunk: bytes | memoryview, out: np.ndarray) -> None:
        if len(chunk) != out.size:
            raise IntegrityError(f"tensor {spec.name!r}: raw chunk {index} has the wrong size")
        out[:] = np.frombuffer(chunk, np.uint8)


class ConstCodec(Codec):
    codec_id = "const"

    def encode(self, data: np.ndarray, spec: TensorSpec, chunk_units: int, *,
               level: str = "default") -> TensorPlan | None:
        unit = unit_bytes(spec)
        if data.size == 0 or data.size % unit:
            return None
        rows = data.reshape(-1, unit)
        view = _WORD.get(unit)
        if view is not None:  # one compare per element, and most tensors fail on the first few
            words = data.view(view)
            if not (words[:64] == words[0]).all() or not (words == words[0]).all():
                return None
        elif not (rows == rows[0]).all():
            return None
        return TensorPlan(self.codec_id, {"value": rows[0].tobytes().hex()}, b"", ())

    def prepare(self, spec: TensorSpec, params: dict[str, Any], head: bytes) -> np.ndarray:
        try:
            value = np.frombuffer(bytes.fromhex(params["value"]), np.uint8)
        except (KeyError, ValueError, TypeError):
            raise FormatError(f"tensor {spec.name!r}: bad const parameters") from None
        if value.size != unit_bytes(spec):
            raise FormatError(f"tensor {spec.name!r}: const value has the wrong width")
        return value

    def decode_chunk(self, state: np.ndarray, spec: TensorSpec, params: dict[str, Any], index: int,
                     chunk: bytes | memoryview, out: np.ndarray) -> None:
        out.reshape(-1, state.size)[:] = state


class LutCodec(Codec):
    """Few distinct values: index bytes through ``field``, value table in the side information."""

    codec_id = "lut"
    _U8 = TensorSpec("", "U8", (0,))

    def encode(self, data: np.ndarray, spec: TensorSpec, chunk_units: int, *,
               level: str = "default") -> TensorPlan | None:
        unit = spec.info.itemsize
        if unit < 2 or data.size == 0:
            return None
        values = data.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[unit])
        probe = values[:: max(1, values.size // 65536)]
        # compiled, stopping at the 257th distinct value (most tensors: within a few hundred)
        from .counting import _more_distinct_than

        if _more_distinct_than(probe, 256):
            return None
        table, idx = np.unique(values, return_inverse=True)
        if table.size > 256:
            return None
        rows, cols = spec.matrix
        ispec = TensorSpec(spec.name, "U8", (rows, cols), 0, values.size)
        inner = get_codec("field").encode(idx.astype(np.uint8), ispec, chunk_units)
        if inner is None:
            return None
        params = {"chunk": chunk_units, "inner": inner.params, "inner_head": len(inner.head)}
        return TensorPlan(self.codec_id, params, table.tobytes() + inner.head, inner.chunks)

    def prepare(self, spec: TensorSpec, params: dict[str, Any], head: bytes) -> Any:
        unit = spec.info.itemsize
        try:
            ih = params["inner_head"]
            inner_params = params["inner"]
            if type(ih) is not int:
                raise TypeError
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"tensor {spec.name!r}: bad lut parameters") from None
        if (not isinstance(inner_params, dict) or inner_params.get("chunk") != params.get("chunk")
                or unit < 2):
            # the inner code's chunk size places each chunk's row contexts (k0 = index *
            # chunk): it must be the chunking the outer tensor is cut by
            raise FormatError(f"tensor {spec.name!r}: bad lut parameters")
        tbytes = len(head) - ih
        if ih < 0 or tbytes <= 0 or tbytes % unit or tbytes // unit > 256:
            raise IntegrityError(f"tensor {spec.name!r}: lut table corrupt")
        table = np.frombuffer(head[:tbytes], np.uint8).reshape(-1, unit)
        rows, cols = spec.matrix
        ispec = TensorSpec(spec.name, "U8", (rows, cols), 0, spec.numel)
        inner = get_codec("field")
        return table, ispec, inner_params, inner.prepare(ispec, inner_params, head[tbytes:])

    def decode_chunk(self, state: Any, spec: TensorSpec, params: dict[str, Any], index: int,
                     chunk: bytes | memoryview, out: np.ndarray) -> None:
        table, ispec, inner_params, inner_state = state
        idx = np.empty(out.size // table.shape[1], np.uint8)
        get_codec("field").decode_chunk(inner_state, ispec, inner_params, index, chunk, idx)
        if idx.size and int(idx.max()) >= table.shape[0]:
            raise IntegrityError(f"tensor {spec.name!r}: lut index out of range")
        out.reshape(-1, table.shape[1])[:] = table[idx]


class ZstdPlanesCodec(Codec):
    codec_id = "zstd"
    LEVEL = 3

    def encode(self, data: np.ndarray, spec: TensorSpec, chunk_units: int, *,
               level: str = "default") -> TensorPlan | None:
        unit = unit_bytes(spec)
        step = chunk_units * unit
        chunks = []
        for i in range(0, data.size, step):
            part = data[i : i + step].reshape(-1, unit).T  # planes
            chunks.append(zstd_compress(self.LEVEL, np.ascontiguousarray(part).reshape(-1).data))  # no copy
        return TensorPlan(self.codec_id, {"chunk": chunk_units, "planes": unit}, b"", tuple(chunks))

    def decode_chunk(self, state: Any, spec: TensorSpec, params: dict[str, Any], index: int,
                     chunk: bytes | memoryview, out: np.ndarray) -> None:
        unit = unit_bytes(spec)
        raw = zstd_decompress(chunk, out.size, f"tensor {spec.name!r}: chunk {index}")
        if len(raw) != out.size:
            raise IntegrityError(f"tensor {spec.name!r}: chunk {index} has the wrong size")
        out.reshape(-1, unit)[:] = np.frombuffer(raw, np.uint8).reshape(unit, -1).T


for _c in (RawCodec(), ConstCodec(), LutCodec(), ZstdPlanesCodec()):
    register(_c)
