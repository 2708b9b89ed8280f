"""The codec interface and the registry of codec ids.

Shape borrowed from numcodecs: a codec has an id, turns raw bytes into a ``TensorPlan`` (JSON
params + side information + independently decodable chunks), and decodes one chunk into a
caller-provided buffer. Decoding by chunk is what lets the shell spread a tensor over all cores
and read a slice alone. Codecs are pure: no I/O, no clocks, no globals beyond the constant registry.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np
import zstandard

from ..core.types import TensorPlan, TensorSpec
from ..errors import UnknownCodecError


def unit_bytes(spec: TensorSpec) -> int:
    """Chunking unit: one element for byte-aligned dtypes, one byte for packed sub-byte ones."""
    return spec.info.itemsize or 1


def n_units(spec: TensorSpec) -> int:
    return spec.nbytes // unit_bytes(spec)


def chunk_bounds(spec: TensorSpec, params: dict[str, Any], count: int) -> list[tuple[int, int]]:
    """Byte ranges of the decoded tensor covered by each of ``count`` chunks."""
    unit = unit_bytes(spec)
    per = int(params.get("chunk", 0)) or max(n_units(spec), 1)
    total = spec.nbytes
    out = []
    for i in range(count):
        b = min(i * per * unit, total)
        e = min((i + 1) * per * unit, total)
        out.append((b, e))
    return out


def zstd_compress(level: int, data: bytes | memoryview) -> bytes:
    """``zstandard.ZstdCompressor(level=level).compress(data)``, on a compressor kept for the
    next call.

    Why: a fresh compressor allocates its context on its first frame: 53 -> 21 us for a
    64 KiB zstd probe, 14 -> 6 us for a tiny tensor's side information at level 19 (issue 17).
    Each ``compress`` call is a frame of its own, with its parameters set from the level and
    that input's size, so the bytes are those of a fresh compressor. A caller pops an idle
    compressor for its own use and puts it back (list.pop/append are atomic), as
    ``container.format.zstd_decompress`` does: concurrent encoders never share one, and no
    thread-local state (the codecs hold no threads: tests/test_layers_rule.py)."""
    idle = _IDLE_CCTX.setdefault(level, [])
    try:
        cctx = idle.pop()
    except IndexError:
        cctx = zstandard.ZstdCompressor(level=level)
    out = cctx.compress(data)
    idle.append(cctx)  # only after a clean frame: a failed call drops its compressor
    return out


# Compressors not in use, per level; at most as many per level as ever ran at once.
_IDLE_CCTX: dict[int, list[zstandard.ZstdCompressor]] = {}


CODERS = ("rans", "prefix", "auto")
"""Entropy stages of the float/byte codecs: ``rans`` (``field8``, format 1.1: smallest files),
``prefix`` (``fieldp``, format 1.2: the same model with a prefix code, ~1.6x faster to decode,
~0.1-0.2 points larger on the corpus) and ``auto`` (format 1.2): per tensor, ``prefix`` where
it costs at most 1 % of the tensor's size (0.25 % at ``--level max``), else ``rans``
(``codecs/auto.py``)."""

LEVELS = ("fast", "default", "max")
"""Encoder effort levels: ``fast`` skips the search for row/column contexts (one context per
tensor: ~2-2.5x faster compress, ~0.2-1.6 points larger on the corpus); ``default`` searches;
``max`` searches too and, with the ``auto`` coder, keeps rANS wherever the prefix code costs
more than 0.25 % (the smallest ``auto`` files, slower to decode: ``codecs/auto.py``)."""


class Codec(abc.ABC):
    codec_id: ClassVar[str]

    @abc.abstractmethod
    def encode(self, data: np.ndarray, spec: TensorSpec, chunk_units: int, *,
               level: str = "default") -> TensorPlan | None:
        """Code ``data`` (uint8, the tensor's raw bytes); None when the codec does not apply.

        ``level`` (one of ``LEVELS``) trades encoder effort for size; it never changes what a
        decoder needs: every level writes the same format, only the choices in it differ."""

    def prepare(self, spec: TensorSpec, params: dict[str, Any], head: bytes) -> Any:
        """Parse side information once per tensor; the result is shared by every chunk."""
        return None

    @abc.abstractmethod
    def decode_chunk(
        self, state: Any, spec: TensorSpec, params: dict[str, Any], index: int,
        chunk: bytes | memoryview, out: np.ndarray,
    ) -> None:
        """Decode chunk ``index`` into ``out`` (uint8, exactly that chunk's decoded bytes)."""

    def decode_strided(
        self, state: Any, spec: TensorSpec, params: dict[str, Any], blob: np.ndarray,
        offsets: np.ndarray, first: int, step: int, out: np.ndarray,
    ) -> bool:
        """Decode chunks ``first``, ``first + step``, ... (chunk ``i`` is
        ``blob[offsets[i]:offsets[i + 1]]``) into the whole tensor's ``out`` in one call, or
        return False and let the caller loop over ``decode_chunk``. A codec whose kernel releases
        the GIL overrides this so that a thread decodes its share of a tensor without coming
        back to Python (and to the GIL) between chunks."""
        return False


_REGISTRY: dict[str, Codec] = {}


def register(codec: Codec) -> Codec:
    _REGISTRY[codec.codec_id] = codec
    return codec


def get_codec(codec_id: str) -> Codec:
    codec = _REGISTRY.get(codec_id)  # the common case first: no import machinery per call
    if codec is not None:
        return codec
    from . import builtin  # noqa: F401  (registers the built-in codecs)

    try:
        return _REGISTRY[codec_id]
    except KeyError:
        raise UnknownCodecError(
            f"unknown codec id {codec_id!r}: this file needs a newer bigsmall "
            f"(known: {', '.join(sorted(_REGISTRY))})"
        ) from None
