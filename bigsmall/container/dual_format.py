"""Byte layout of the dual-fidelity ``.bsd`` file, and one validation of its two indexes.

::

    0    8  magic  89 42 53 44 0D 0A 1A 0A  ("\\x89BSD\\r\\n\\x1a\\n")
    8    2  major version (u16 LE), 10  2  minor
    12   4  reserved (0)
    16   8  fast index offset      24   8  fast index length (zstd JSON)
    32   8  exact index offset     40   8  exact index length (zstd JSON)
    48   8  total file length
    56   8  xxh3-64 of the stored fast index    64   8  xxh3-64 of the stored exact index
    72   8  xxh3-64 of bytes 0..72
    80      FAST member: per tensor in data order, its fast chunks (quantized: scales, minimums and
            rANS-coded INT4 codes per block of rows; the rest: zstd pieces of its exact bytes)
    ...     fast index (ends the fast member: ``fast_member_bytes`` = its end)
    ...     EXACT member: per quantized tensor, one chunk per fast chunk: its bits given the codes
    ...     exact index

Why the fast index sits right after the fast chunks: ``load(mode="fast")`` reads bytes
0..fast-index-end and nothing else. The tensors' names, dtypes, shapes and offsets are not
repeated: they are the source's verbatim safetensors header, stored in the fast index and parsed
by the same validating parser as any safetensors file, so a restore writes back exactly what it
read. Pure: every failure is a typed ``FormatError``/``IntegrityError`` (a crafted file never
reaches a kernel with a bad size).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any

import xxhash
import zstandard

from ..core.safetensors_header import SafetensorsHeader
from ..core.safetensors_header import parse_header as parse_safetensors_header
from ..errors import (
    FormatError,
    IntegrityError,
    InvalidSafetensorsError,
    TruncatedError,
    UnsupportedVersionError,
)
from . import schema
from .format import zstd_decompress

MAGIC = b"\x89BSD\r\n\x1a\n"
VERSION = (5, 0)  # written; 5.0: 4.0's fast chunks, the exact chunk's cells (codecs/dual_cells.py)
# 4.0: 3.0 with the fast chunk's codes on 8 interleaved rANS states (codecs/dual_fast.py: LANES)
READ_MAJORS = (1, 2, 3, 4, 5)  # 1.0: its key-run model (codecs/dual_keyrun.py), 2.0: the truncated
# value model (codecs/dual_trunc.py), 3.0: 2.0's model decoded by table look-ups
# (codecs/dual_lookup.py), one rANS state per fast chunk; all still decoded
HEADER_SIZE = 80
_HDR = struct.Struct("<8sHHIQQQQQQQ")
QUANTIZABLE = ("BF16", "F16", "F32")


def is_dual(prefix: bytes) -> bool:
    return prefix[:8] == MAGIC


def pack_header(fast: tuple[int, int], exact: tuple[int, int], file_len: int,
                fast_digest: int, exact_digest: int) -> bytes:
    body = _HDR.pack(MAGIC, VERSION[0], VERSION[1], 0, fast[0], fast[1], exact[0], exact[1], file_len,
                     fast_digest, exact_digest)
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


def parse_header(buf: bytes, file_size: int) -> dict[str, int]:
    if len(buf) < 8 or buf[:8] != MAGIC:
        raise FormatError("not a dual-fidelity .bsd file (wrong magic bytes at offset 0)")
    if len(buf) < HEADER_SIZE:
        raise TruncatedError(f"truncated .bsd: {len(buf)} bytes, its header needs {HEADER_SIZE}")
    _, major, minor, _, foff, flen, eoff, elen, total, fdig, edig = _HDR.unpack_from(buf, 0)
    if major not in READ_MAJORS:
        raise UnsupportedVersionError(f".bsd format {major}.{minor} is not read by this bigsmall "
                                      f"(it reads {', '.join(f'{m}.x' for m in READ_MAJORS)})")
    if struct.unpack_from("<Q", buf, 72)[0] != xxhash.xxh3_64_intdigest(buf[:72]):
        raise IntegrityError(".bsd header is corrupt (checksum mismatch in bytes 0-71)")
    if file_size < total:
        raise TruncatedError(f"truncated .bsd: {file_size} bytes, its header promises {total}")
    if not (HEADER_SIZE <= foff and foff + flen <= eoff and eoff + elen <= total):
        raise FormatError(".bsd index ranges are out of order or outside the file")
    return {"major": major, "minor": minor, "fast_off": foff, "fast_len": flen, "exact_off": eoff, "exact_len": elen,
            "file_len": total, "fast_digest": fdig, "exact_digest": edig}


def encode_index(doc: dict[str, Any]) -> tuple[bytes, int]:
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    stored = zstandard.ZstdCompressor(level=9).compress(raw)
    return stored, xxhash.xxh3_64_intdigest(stored)


def _load(stored: bytes, digest: int, what: str) -> Any:
    if xxhash.xxh3_64_intdigest(stored) != digest:
        raise IntegrityError(f".bsd {what} index is corrupt (checksum mismatch)")
    return schema.load_json(zstd_decompress(stored, schema.MAX_INDEX_BYTES, f".bsd {what} index"))


def _chunks(v: Any, where: str, lo: int, hi: int, width: int) -> list[list[int]]:
    out = []
    for i, c in enumerate(schema.list_of(v, where)):
        c = schema.list_of(c, f"{where}[{i}]", width)
        off = schema.int_in(c[0], f"{where}[{i}] offset", lo, hi)
        schema.int_in(c[1], f"{where}[{i}] length", 0, hi - off)
        for k in range(2, width):
            schema.int_in(c[k], f"{where}[{i}][{k}]", 0, schema.MAX_INT if k < 3 else (1 << 64) - 1)
        out.append([int(x) for x in c])
    return out


def check_fast(stored: bytes, head: dict[str, int]) -> tuple[dict[str, Any], SafetensorsHeader]:
    """The fast index: ``{"format", "version", "size", "sha256", "header", "tensors": [{"kind":
    "q"|"z", "chunks": [[offset, length, rows|bytes, xxh3_64]], "xxh3": hex}]}``, one entry per
    tensor of the header in data order. Returns the document and the parsed source header."""
    doc = schema.dict_of(_load(stored, head["fast_digest"], "fast"), "fast index")
    if doc.get("format") != "bigsmall-dual":
        schema.fail("fast index", "not a bigsmall-dual index")
    size = schema.int_in(schema.get(doc, "size", "fast index"), "size")
    schema.str_of(schema.get(doc, "sha256", "fast index"), "sha256")
    try:
        header_bytes = base64.b64decode(schema.str_of(schema.get(doc, "header", "fast index"), "header"),
                                        validate=True)
        st = parse_safetensors_header(header_bytes, size)
    except (binascii.Error, ValueError, InvalidSafetensorsError) as exc:
        raise FormatError(f".bsd fast index: the stored safetensors header is invalid: {exc}") from None
    if len(header_bytes) != st.data_start:
        schema.fail("fast index", "header length")
    tensors = schema.list_of(schema.get(doc, "tensors", "fast index"), "tensors", len(st.tensors))
    for i, (t, spec) in enumerate(zip(tensors, st.tensors, strict=True)):
        where = f"tensors[{i}]"
        t = schema.dict_of(t, where)
        kind = schema.get(t, "kind", where)
        schema.str_of(schema.get(t, "xxh3", where), f"{where}.xxh3")
        chunks = _chunks(schema.get(t, "chunks", where), f"{where}.chunks", HEADER_SIZE, head["fast_off"], 4)
        if kind == "q":
            if spec.dtype not in QUANTIZABLE or len(spec.shape) != 2 or 0 in spec.shape:
                schema.fail(where, f"{spec.dtype} {spec.shape} cannot be quantized")
            if any(c[2] < 1 for c in chunks) or sum(c[2] for c in chunks) != spec.shape[0]:
                schema.fail(where, "chunk rows do not add up to the tensor's rows")
        elif kind == "z":
            if sum(c[2] for c in chunks) != spec.nbytes:
                schema.fail(where, "chunk sizes do not add up to the tensor's bytes")
        else:
            schema.fail(where, f"unknown kind {kind!r}")
    return doc, st


def check_exact(stored: bytes, head: dict[str, int], fast: dict[str, Any], fast_end: int) -> list[list[list[int]]]:
    """The exact index: ``{"exact": [[[offset, length], ...] per tensor]}``, one chunk per fast
    chunk of a quantized tensor, none for the others."""
    doc = schema.dict_of(_load(stored, head["exact_digest"], "exact"), "exact index")
    per = schema.list_of(schema.get(doc, "exact", "exact index"), "exact", len(fast["tensors"]))
    out = []
    for i, (chunks, t) in enumerate(zip(per, fast["tensors"], strict=True)):
        c = _chunks(chunks, f"exact[{i}]", fast_end, head["exact_off"], 2)
        if len(c) != (len(t["chunks"]) if t["kind"] == "q" else 0):
            schema.fail(f"exact[{i}]", "chunk count differs from the fast member's")
        out.append(c)
    return out
