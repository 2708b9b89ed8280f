"""Parsing and validation of safetensors headers (bigsmall.core.safetensors_header)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bigsmall.core import safetensors_header as sth
from bigsmall.core.types import TensorSpec
from bigsmall.errors import InvalidSafetensorsError


def _file(header: dict[str, Any] | str | bytes, data: bytes = b"", pad: int = 0) -> bytes:
    """A whole safetensors file from a header (dict, JSON text or raw bytes) and data bytes."""
    if isinstance(header, dict):
        hb = json.dumps(header).encode()
    elif isinstance(header, str):
        hb = header.encode()
    else:
        hb = header
    hb += b" " * pad
    return struct.pack("<Q", len(hb)) + hb + data


def _parse(blob: bytes, file_index: int = 0) -> sth.SafetensorsHeader:
    n = sth.header_length(blob[:8], len(blob))
    return sth.parse_header(blob[:n], len(blob), file_index)


def _bad(blob: bytes, *needles: str) -> str:
    with pytest.raises(InvalidSafetensorsError) as info:
        _parse(blob)
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def _t(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


# --- valid files ------------------------------------------------------------------------------


def test_numpy_written_file(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    arrays = {
        "a.f32": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b.f16": np.ones((5,), np.float16),
        "c.i64": np.arange(3, dtype=np.int64),
        "d.u8": np.arange(7, dtype=np.uint8),
        "e.bool": np.array([True, False, True]),
        "f.empty": np.zeros((0, 4), np.float32),
        "g.scalar": np.array(2.5, np.float64),
        "h.i16": np.arange(6, dtype=np.int16).reshape(2, 1, 3),
    }
    path = tmp_path / "m.safetensors"
    save_file(arrays, str(path), metadata={"format": "np", "x": "y"})
    blob = path.read_bytes()
    hdr = _parse(blob, file_index=3)

    n = struct.unpack("<Q", blob[:8])[0]
    assert hdr.data_start == 8 + n
    assert hdr.header_bytes == blob[: 8 + n]
    assert hdr.data_len == len(blob) - 8 - n
    assert hdr.metadata == {"format": "np", "x": "y"}
    assert [t.begin for t in hdr.tensors] == sorted(t.begin for t in hdr.tensors)
    assert {t.name for t in hdr.tensors} == set(arrays)
    assert hdr.tensors[-1].end == hdr.data_len
    want_dtype = {
        "float32": "F32",
        "float16": "F16",
        "int64": "I64",
        "uint8": "U8",
        "bool": "BOOL",
        "float64": "F64",
        "int16": "I16",
    }
    for spec in hdr.tensors:
        arr = arrays[spec.name]
        assert spec.file == 3
        assert spec.dtype == want_dtype[arr.dtype.name]
        assert spec.shape == arr.shape
        assert spec.nbytes == arr.nbytes
        raw = blob[hdr.data_start + spec.begin : hdr.data_start + spec.end]
        assert raw == np.ascontiguousarray(arr).tobytes()
    scalar = next(t for t in hdr.tensors if t.name == "g.scalar")
    assert scalar.shape == () and scalar.nbytes == 8
    empty = next(t for t in hdr.tensors if t.name == "f.empty")
    assert empty.begin == empty.end


def test_torch_bf16_file(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    w = torch.randn(4, 6).to(torch.bfloat16)
    path = tmp_path / "t.safetensors"
    save_file({"w": w, "b": torch.zeros(6, dtype=torch.bfloat16)}, str(path))
    blob = path.read_bytes()
    hdr = _parse(blob)
    by = {t.name: t for t in hdr.tensors}
    assert by["w"].dtype == "BF16" and by["w"].shape == (4, 6) and by["w"].nbytes == 48
    assert by["b"].dtype == "BF16" and by["b"].nbytes == 12
    raw = blob[hdr.data_start + by["w"].begin : hdr.data_start + by["w"].end]
    assert raw == w.view(torch.int16).numpy().tobytes()
    assert hdr.metadata is None or isinstance(hdr.metadata, dict)


def test_padding_kept_verbatim() -> None:
    header = {"__metadata__": {"k": "v"}, "x": _t("F32", [2], 0, 8)}
    blob = _file(header, b"\0" * 8, pad=13)
    hdr = _parse(blob)
    assert hdr.header_bytes == blob[: len(blob) - 8]
    assert hdr.header_bytes.endswith(b"}" + b" " * 13)
    assert hdr.data_start == len(blob) - 8
    assert hdr.metadata == {"k": "v"}
    assert hdr.tensors == (TensorSpec("x", "F32", (2,), 0, 8, 0),)


def test_zero_tensors_is_valid() -> None:
    hdr = _parse(_file({}, pad=6))
    assert hdr.tensors == () and hdr.data_len == 0 and hdr.metadata is None


def test_data_order_and_empty_ties() -> None:
    header = {
        "z": _t("U8", [4], 0, 4),
        "e2": _t("F32", [0], 4, 4),
        "a": _t("U8", [2], 4, 6),
        "e1": _t("F16", [3, 0], 4, 4),
        "e0": _t("I8", [0], 0, 0),
        "last_empty": _t("U8", [0], 6, 6),
    }
    hdr = _parse(_file(header, b"\1" * 6))
    assert [t.name for t in hdr.tensors] == ["e0", "z", "e1", "e2", "a", "last_empty"]


def test_sub_byte_dtype_whole_bytes() -> None:
    hdr = _parse(_file({"f4": _t("F4", [2, 3], 0, 3)}, b"\0" * 3))
    assert hdr.tensors[0].nbytes == 3


# --- bad inputs: length prefix ------------------------------------------------------------------


def test_empty_file() -> None:
    with pytest.raises(InvalidSafetensorsError, match="empty file"):
        sth.header_length(b"", 0)


def test_three_bytes() -> None:
    with pytest.raises(InvalidSafetensorsError, match="too short") as info:
        sth.header_length(b"abc", 3)
    assert "offset 0" in str(info.value) and "3 bytes" in str(info.value)


def test_huge_header_length() -> None:
    n = sth.HEADER_LIMIT + 1
    with pytest.raises(InvalidSafetensorsError) as info:
        sth.header_length(struct.pack("<Q", n), 10**12)
    assert str(n) in str(info.value) and "offset 0" in str(info.value)
    assert "limit" in str(info.value)


def test_header_length_past_end() -> None:
    blob = struct.pack("<Q", 100) + b"{}"
    with pytest.raises(InvalidSafetensorsError) as info:
        sth.header_length(blob[:8], len(blob))
    msg = str(info.value)
    assert "100" in msg and "offset 108" in msg and "10 bytes" in msg


def test_header_bytes_length_mismatch() -> None:
    blob = _file({}, pad=2)
    with pytest.raises(InvalidSafetensorsError, match="offset"):
        sth.parse_header(blob[:-1], len(blob))


# --- bad inputs: JSON ---------------------------------------------------------------------------


def test_not_json() -> None:
    _bad(_file("{not json"), "not valid JSON", "file offset 9")


def test_json_array() -> None:
    _bad(_file("[1, 2]"), "must be an object", "list", "offset 8")


def test_not_utf8() -> None:
    _bad(_file(b'{"\xff": 1}'), "UTF-8", "file offset 10")


def test_duplicate_key() -> None:
    first, second = json.dumps(_t("U8", [1], 0, 1)), json.dumps(_t("U8", [1], 1, 2))
    text = '{"w": ' + first + ', "w": ' + second + "}"
    _bad(_file(text, b"\0\0"), "duplicate key", "'w'")


def test_nan_constant_rejected() -> None:
    _bad(_file('{"w": {"dtype": "U8", "shape": [NaN], "data_offsets": [0, 1]}}', b"\0"), "NaN")


@pytest.mark.parametrize(
    "meta, needle",
    [
        ([1, 2], "list"),
        ("format", "str"),
        ({"k": 1}, "'k'"),
        ({"k": {"nested": "x"}}, "'k'"),
    ],
)
def test_bad_metadata(meta: Any, needle: str) -> None:
    _bad(_file({"__metadata__": meta}), "__metadata__", needle)


# --- bad inputs: tensors ------------------------------------------------------------------------


def test_unknown_dtype() -> None:
    _bad(_file({"w": _t("F128", [1], 0, 16)}, b"\0" * 16), "'w'", "'F128'", "unknown dtype")


def test_tensor_entry_not_object() -> None:
    _bad(_file({"w": [1, 2, 3]}), "'w'", "object")


def test_missing_field() -> None:
    _bad(_file({"w": {"dtype": "U8", "shape": [1]}}, b"\0"), "'w'", "data_offsets")


@pytest.mark.parametrize("shape", [[-1], [2.0], [2, 1.5], [True], "3", 3])
def test_bad_shape(shape: Any) -> None:
    _bad(_file({"w": _t("U8", shape, 0, 2)}, b"\0\0"), "'w'", "shape")


@pytest.mark.parametrize("offsets", [[0], [0, 1, 2], [0.0, 1], [-1, 0], [0, True], "0,1"])
def test_bad_offsets_type(offsets: Any) -> None:
    header = {"w": {"dtype": "U8", "shape": [1], "data_offsets": offsets}}
    _bad(_file(header, b"\0"), "'w'", "data_offsets")


def test_offsets_past_end() -> None:
    header = {"a": _t("U8", [4], 0, 4), "w": _t("U8", [4], 4, 8)}
    _bad(_file(header, b"\0" * 6), "'w'", "end 8", "6 bytes")


def test_overlapping_ranges() -> None:
    header = {"a": _t("U8", [4], 0, 4), "b": _t("U8", [4], 2, 6)}
    _bad(_file(header, b"\0" * 6), "overlaps", "'a'", "'b'", "offset 2")


def test_empty_tensor_inside_another_overlaps() -> None:
    header = {"a": _t("U8", [4], 0, 4), "e": _t("U8", [0], 2, 2)}
    _bad(_file(header, b"\0" * 4), "overlaps", "'a'", "'e'")


def test_gap() -> None:
    header = {"a": _t("U8", [4], 0, 4), "b": _t("U8", [2], 6, 8)}
    _bad(_file(header, b"\0" * 8), "gap of 2 bytes", "'a'", "'b'", "offset 4", "offset 6")


def test_gap_at_start() -> None:
    _bad(_file({"b": _t("U8", [2], 2, 4)}, b"\0" * 4), "gap", "'b'", "offset 2")


def test_begin_after_end() -> None:
    _bad(_file({"w": _t("U8", [0], 4, 2)}, b"\0" * 4), "'w'", "begin 4", "end 2")


def test_size_mismatching_shape() -> None:
    _bad(_file({"w": _t("F32", [2, 3], 0, 20)}, b"\0" * 20), "'w'", "20 bytes", "24 bytes")


def test_sub_byte_not_whole_bytes() -> None:
    _bad(_file({"f4": _t("F4", [3], 0, 2)}, b"\0\0"), "'f4'", "whole bytes")


def test_data_region_longer_than_tensors() -> None:
    header = {"a": _t("U8", [4], 0, 4)}
    blob = _file(header, b"\0" * 7)
    _bad(blob, "longer", "data offset 4", "7 bytes")


def test_data_region_nonempty_without_tensors() -> None:
    _bad(_file({}, b"\0" * 3), "longer", "data offset 0", "3 bytes")
