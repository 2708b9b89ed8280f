"""Decode one tensor's blob into a buffer: the serial reference every shell path mirrors."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..codecs.base import chunk_bounds, get_codec
from ..errors import IntegrityError
from .types import TensorSpec


def split_blob(blob: bytes | memoryview, head_len: int, chunk_lens: tuple[int, ...]) -> tuple[memoryview, list[memoryview]]:
    mv = memoryview(blob)
    if len(mv) != head_len + sum(chunk_lens):
        raise IntegrityError("blob length does not match its chunk table")
    head = mv[:head_len]
    chunks = []
    pos = head_len
    for n in chunk_lens:
        chunks.append(mv[pos : pos + n])
        pos += n
    return head, chunks


def decode_into(
    spec: TensorSpec, codec_id: str, params: dict[str, Any], blob: bytes | memoryview,
    head_len: int, chunk_lens: tuple[int, ...], out: np.ndarray,
) -> np.ndarray:
    """Decode every chunk of a blob into ``out`` (uint8[spec.nbytes])."""
    codec = get_codec(codec_id)
    head, chunks = split_blob(blob, head_len, chunk_lens)
    state = codec.prepare(spec, params, bytes(head))
    count = len(chunks) if codec_id != "const" else 1
    for i, (b, e) in enumerate(chunk_bounds(spec, params, count)):
        codec.decode_chunk(state, spec, params, i, chunks[i] if chunks else b"", out[b:e])
    return out
