"""A safetensors file from raw bytes: any dtype, any bit pattern (NaN payloads included), in a
given order. Why not ``safetensors.numpy.save_file``: numpy has no bf16 or fp8, and tests of
bit-exact paths need to write exactly the bytes they later compare."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

ITEM = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
        "F8_E4M3": 1}


def write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> Path:
    """A safetensors file from raw bytes (any dtype, any bit pattern), in the given order."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, (dt, shape, raw) in tensors.items():
        assert len(raw) == int(np.prod(shape, dtype=np.int64)) * ITEM[dt]
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(r for _, _, r in tensors.values()))
    return path
