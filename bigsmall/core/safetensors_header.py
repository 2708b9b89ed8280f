"""Parse and validate the header of a safetensors file, from bytes only.

Why pure: the compressor keeps the header verbatim and trusts the offsets it gives for every
tensor it reads; any lie in them (overlap, gap, size that does not match the shape) would make
the round trip inexact. So every check happens here, on bytes, before a single tensor is read,
and the module does no I/O so it can be tested and fuzzed directly.

Layout of a safetensors file: an 8-byte little-endian length ``N``, then ``N`` bytes of UTF-8
JSON (an object, possibly padded with trailing spaces), then the data region. Every key of the
JSON object but ``__metadata__`` names a tensor whose ``data_offsets`` are relative to the start
of the data region; the ranges must tile the data region exactly.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

import attrs

from ..errors import InvalidSafetensorsError
from .dtypes import DTYPES
from .types import TensorSpec

#: safetensors' own cap on the JSON header length (``N``), in bytes.
HEADER_LIMIT = 100 * 1024 * 1024

#: the largest dimension and the most axes accepted, here and in a container's index
#: (``container/schema.py`` imports them), so that every file compress accepts can be read back
MAX_DIM = 1 << 62
MAX_DIMS = 64
_MAX_ARRAY_BYTES = (1 << 63) - 1

_PREFIX = 8
_METADATA_KEY = "__metadata__"


def _fail(msg: str) -> NoReturn:
    raise InvalidSafetensorsError(msg)


def header_length(prefix: bytes, file_size: int) -> int:
    """Total header size ``8 + N`` from the first 8 bytes of a file of ``file_size`` bytes."""
    have = len(prefix)
    if have == 0:
        _fail("empty file: too short to be a safetensors file (need at least 8 bytes)")
    if have < _PREFIX:
        _fail(
            f"file of {have} bytes is too short to be a safetensors file "
            f"(the header length at offset 0 needs 8 bytes)"
        )
    n = int.from_bytes(bytes(prefix[:_PREFIX]), "little")
    if n > HEADER_LIMIT:
        _fail(
            f"header length {n} at offset 0 exceeds the safetensors limit of {HEADER_LIMIT} bytes"
        )
    if _PREFIX + n > file_size:
        _fail(
            f"header length {n} at offset 0 runs past the end of the file: "
            f"header would end at offset {_PREFIX + n} but the file has {file_size} bytes"
        )
    return _PREFIX + n


@attrs.frozen
class SafetensorsHeader:
    """A validated safetensors header: verbatim bytes plus the tensors it describes."""

    header_bytes: bytes  # the first 8 + N bytes, verbatim (padding included)
    data_start: int  # = 8 + N: file offset of the data region
    data_len: int  # = file_size - data_start
    tensors: tuple[TensorSpec, ...]  # in data order (by begin offset)
    metadata: dict[str, str] | None = attrs.field(default=None, hash=False)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            _fail(f"duplicate key {key!r} in the header JSON")
        out[key] = value
    return out


def _bad_constant(name: str) -> NoReturn:
    _fail(f"header JSON holds {name}, which is not valid JSON")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _load_json(header_bytes: bytes) -> Any:
    raw = bytes(header_bytes[_PREFIX:])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail(f"header is not valid UTF-8: bad byte at file offset {_PREFIX + exc.start}")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_bad_constant)
    except json.JSONDecodeError as exc:
        off = _PREFIX + len(text[: exc.pos].encode("utf-8"))
        _fail(f"header is not valid JSON: {exc.msg} at file offset {off}")
    except RecursionError:
        _fail(
            f"header JSON is nested too deeply (header at file offsets {_PREFIX}..{len(raw) + _PREFIX})"
        )
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _fail(f"header JSON cannot be read: {detail}")


def _unicode(text: str, what: str) -> str:
    """``text`` if it is valid Unicode. JSON's ``\\ud800`` escapes decode to lone surrogates,
    which no UTF-8 encoder accepts: the index (and any tool) would fail on them later."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        _fail(f"{what} {text!r} is not valid Unicode (it holds a lone surrogate)")
    return text


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail(f"{_METADATA_KEY!r} must be an object of strings, not {type(value).__name__}")
    for k, v in value.items():
        _unicode(k, f"{_METADATA_KEY!r} key")
        if not isinstance(v, str):
            _fail(f"{_METADATA_KEY!r} entry {k!r} must be a string, not {type(v).__name__}")
        _unicode(v, f"{_METADATA_KEY!r} entry {k!r}:")
    return dict(value)


def _tensor(name: str, value: Any, data_len: int, file_index: int) -> TensorSpec:
    t = repr(_unicode(name, "tensor name"))
    if not isinstance(value, dict):
        _fail(f"tensor {t}: entry must be an object, not {type(value).__name__}")
    for field in ("dtype", "shape", "data_offsets"):
        if field not in value:
            _fail(f"tensor {t}: missing {field!r}")

    dtype = value["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        _fail(f"tensor {t}: unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")

    shape = value["shape"]
    if not isinstance(shape, list):
        _fail(f"tensor {t}: shape must be a list of non-negative integers, got {shape!r}")
    for dim in shape:
        if not _is_int(dim) or dim < 0:
            _fail(f"tensor {t}: shape {shape!r} has {dim!r}, not a non-negative integer")
        if dim > MAX_DIM:
            _fail(f"tensor {t}: shape has dimension {dim}, above the limit of {MAX_DIM}")
    if len(shape) > MAX_DIMS:
        _fail(f"tensor {t}: shape has {len(shape)} dimensions, above the limit of {MAX_DIMS}")
    if math.prod(max(d, 1) for d in shape) * -(-DTYPES[dtype].bits // 8) > _MAX_ARRAY_BYTES:
        # numpy refuses such a shape even with a zero dimension (``np.empty((0, 2**62, 4))``)
        _fail(f"tensor {t}: shape {shape} is too large for an array (its non-zero dimensions "
              f"multiply past {_MAX_ARRAY_BYTES} bytes)")

    offsets = value["data_offsets"]
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) and o >= 0 for o in offsets)
    ):
        _fail(
            f"tensor {t}: data_offsets must be [begin, end] non-negative integers, got {offsets!r}"
        )
    begin, end = offsets
    if begin > end:
        _fail(f"tensor {t}: data_offsets begin {begin} is after end {end}")
    if end > data_len:
        _fail(
            f"tensor {t}: data_offsets end {end} is past the end of the data region "
            f"({data_len} bytes)"
        )

    numel = math.prod(shape)
    expected = DTYPES[dtype].nbytes(numel)
    if expected is None:
        _fail(
            f"tensor {t}: {numel} elements of {dtype} ({DTYPES[dtype].bits} bits each) "
            f"do not fill whole bytes"
        )
    if end - begin != expected:
        _fail(
            f"tensor {t}: data_offsets [{begin}, {end}] span {end - begin} bytes but "
            f"{dtype} shape {shape} needs {expected} bytes"
        )
    return TensorSpec(
        name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end, file=file_index
    )


def _check_tiling(tensors: list[TensorSpec], data_start: int, data_len: int) -> None:
    """Ranges sorted by begin must tile ``[0, data_len)``: no overlap, no gap, nothing left."""
    pos = 0
    prev: TensorSpec | None = None
    for spec in tensors:
        if spec.begin < pos:
            assert prev is not None  # pos > 0 only once a tensor was seen
            _fail(
                f"tensor {spec.name!r} at data offset {spec.begin} overlaps tensor "
                f"{prev.name!r} which ends at data offset {pos}"
            )
        if spec.begin > pos:
            after = f"the end of tensor {prev.name!r}" if prev is not None else "the data start"
            _fail(
                f"gap of {spec.begin - pos} bytes between {after} at data offset {pos} and "
                f"tensor {spec.name!r} at data offset {spec.begin}"
            )
        prev = spec
        pos = spec.end
    if pos < data_len:
        _fail(
            f"data region is longer than the tensors: they end at data offset {pos} "
            f"(file offset {data_start + pos}) but the data region holds {data_len} bytes"
        )
    if pos > data_len:  # unreachable: every end was checked against data_len
        _fail(f"data region is shorter than the tensors: {data_len} < {pos} bytes")


def parse_header(header_bytes: bytes, file_size: int, file_index: int = 0) -> SafetensorsHeader:
    """Validate the first ``8 + N`` bytes of a safetensors file of ``file_size`` bytes.

    Raises InvalidSafetensorsError with a one-line message naming the tensor or offset at fault.
    """
    header_bytes = bytes(header_bytes)
    data_start = header_length(header_bytes[:_PREFIX], file_size)
    if data_start != len(header_bytes):
        _fail(
            f"header length at offset 0 says the header ends at offset {data_start} but "
            f"{len(header_bytes)} header bytes were given"
        )
    data_len = file_size - data_start

    obj = _load_json(header_bytes)
    if not isinstance(obj, dict):
        _fail(f"header JSON at file offset {_PREFIX} must be an object, not {type(obj).__name__}")

    metadata: dict[str, str] | None = None
    specs: list[TensorSpec] = []
    for name, value in obj.items():
        if name == _METADATA_KEY:
            metadata = _metadata(value)
        else:
            specs.append(_tensor(name, value, data_len, file_index))
    specs.sort(key=lambda s: (s.begin, s.end, s.name))
    _check_tiling(specs, data_start, data_len)
    return SafetensorsHeader(
        header_bytes=header_bytes,
        data_start=data_start,
        data_len=data_len,
        tensors=tuple(specs),
        metadata=metadata,
    )
