"""Hand-built safetensors files for tests: exact bytes, any dtype, optional header padding."""

from __future__ import annotations

import json
from pathlib import Path


def write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]],
                      metadata: dict[str, str] | None = None, pad: int = 0,
                      compact: bool = False) -> Path:
    """Write a safetensors file by hand (any dtype, exact bytes, optional header padding).

    ``compact`` writes the header JSON without spaces (as the golden vectors do)."""
    header: dict[str, object] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    pos = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + len(data)]}
        pos += len(data)
    hb = json.dumps(header, separators=(",", ":") if compact else None).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8 + pad)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(len(hb).to_bytes(8, "little"))
        fh.write(hb)
        for _, (_, _, data) in tensors.items():
            fh.write(data)
    return path
