"""The container index: encode -> decode gives the same Container, metadata values exactly
(NaN, integers beyond 64 bits), and a malformed index is a FormatError."""

from __future__ import annotations

import json
import math

import pytest
import zstandard

from bigsmall.container import format as fmt
from bigsmall.core.types import Container, FileEntry, Receipt, TensorEntry, TensorSpec
from bigsmall.errors import FormatError


def _container(meta: dict[str, object]) -> Container:
    spec = TensorSpec("w", "F32", (2, 3), 0, 24, 0)
    t = TensorEntry(spec=spec, codec="raw", params={"chunk": 6}, offset=fmt.HEADER_SIZE,
                    head_len=0, chunk_lens=(24,), receipt=Receipt("xxh3_128", "0" * 32), layer=0)
    body = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}).encode()
    header = len(body).to_bytes(8, "little") + body
    f = FileEntry(path="m.safetensors", kind="safetensors", size=len(header) + 24,
                  receipt=Receipt("sha256", "0" * 64), header=header)
    return Container(version=fmt.VERSION, files=(f,), tensors=(t,), meta=meta)


def _round_trip(c: Container) -> Container:
    stored = fmt.encode_index(c)
    header = {"index_digest": fmt.index_digest(stored), "flags": fmt.FLAG_INDEX_ZSTD,
              "file_length": fmt.HEADER_SIZE + 1000 + len(stored),
              "index_offset": fmt.HEADER_SIZE + 1000}
    return fmt.decode_index(stored, header)


def test_index_round_trips() -> None:
    c = _container({"tool": "bigsmall", "n": 3})
    d = _round_trip(c)
    assert d.tensors == c.tensors and d.files == c.files and d.meta == c.meta
    assert d.tensors[0].spec.shape == (2, 3) and d.tensors[0].chunk_lens == (24,)


def test_metadata_values_round_trip_exactly() -> None:
    """Integers beyond 64 bits must come back as written (a faster parser that turned a big
    integer into a float was tried and dropped); NaN, which ``json`` writes but JSON does not
    have, is refused in an index (a stranger's index used it to reach untyped errors)."""
    c = _container({"big": 1 << 70, "neg": -(1 << 63) - 1})
    d = _round_trip(c)
    assert d.meta["big"] == 1 << 70 and isinstance(d.meta["big"], int)
    assert d.meta["neg"] == -(1 << 63) - 1 and isinstance(d.meta["neg"], int)


def test_malformed_index_is_a_format_error() -> None:
    for raw in (b"{not json", b"\xff\xfe", b'{"format": "bigsmall"'):
        stored = zstandard.ZstdCompressor().compress(raw)
        header = {"index_digest": fmt.index_digest(stored), "flags": fmt.FLAG_INDEX_ZSTD,
                  "file_length": 10_000, "index_offset": 10_000 - len(stored)}
        with pytest.raises(FormatError):
            fmt.decode_index(stored, header)


def test_nan_in_an_index_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="NaN"):
        _round_trip(_container({"nan": math.nan}))
