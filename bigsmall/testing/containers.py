"""Reading and rewriting a container's index, for tests and the fuzzer.

Why here: tests of hostile input need containers whose index says something crafted while its
checksums still pass (the checksums are unkeyed, so anyone can do this); one helper keeps the
tests from each carrying their own copy of the header arithmetic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import zstandard

from ..container import format as fmt


def index_doc(bs: Path) -> dict[str, Any]:
    """The parsed index of container ``bs`` (no validation: tests edit what they read)."""
    data = Path(bs).read_bytes()
    hdr = fmt.parse_header(data[: fmt.HEADER_SIZE], len(data))
    ioff, ilen = int(hdr["index_offset"]), int(hdr["index_length"])
    raw = zstandard.ZstdDecompressor().decompress(data[ioff: ioff + ilen], max_output_size=1 << 26)
    return json.loads(raw)  # type: ignore[no-any-return]


def with_index(bs: Path, index: bytes, out: Path) -> Path:
    """A copy of ``bs`` at ``out`` whose stored index is ``index``, header resealed."""
    data = Path(bs).read_bytes()
    hdr = fmt.parse_header(data[: fmt.HEADER_SIZE], len(data))
    ioff = int(hdr["index_offset"])
    body = data[fmt.HEADER_SIZE:ioff] + index
    Path(out).write_bytes(fmt.pack_header(ioff, len(index), fmt.HEADER_SIZE + len(body),
                                          fmt.index_digest(index)) + body)
    return Path(out)


def with_doc(bs: Path, doc: Any, out: Path) -> Path:
    """A copy of ``bs`` at ``out`` whose index is ``doc`` (any JSON value), checksums resealed."""
    return with_index(bs, zstandard.ZstdCompressor().compress(json.dumps(doc).encode()), out)
