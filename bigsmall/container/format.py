"""Byte layout of the ``.bs`` container (normative text: ``spec/FORMAT.md``).

::

    0    8  magic  89 42 53 4D 0D 0A 1A 0A  ("\\x89BSM\\r\\n\\x1a\\n")
    8    2  major version (u16 LE)
    10   2  minor version
    12   4  flags (bit 0: index is a zstd frame)
    16   8  index offset
    24   8  index length (stored bytes)
    32   8  total file length
    40  16  xxh3-128 of the stored index bytes
    56   8  xxh3-64 of bytes 0..56
    64      blobs (tensor blobs in layer order, then other files' zstd frames)
    ...     index (JSON, UTF-8, zstd)

Why the index at the end: blobs are streamed out as they are coded, so their offsets are known
only afterwards; the fixed header says where the index is, so a reader (or an HTTP range client)
needs two reads: 64 bytes, then the index.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import xxhash
import zstandard

from ..core.dtypes import DTYPES
from ..core.types import Container, FileEntry, Receipt, TensorEntry, TensorSpec
from ..errors import FormatError, IntegrityError, TruncatedError, UnsupportedVersionError

MAGIC = b"\x89BSM\r\n\x1a\n"
VERSION = (1, 2)  # the newest format this bigsmall reads and writes
FORMATS = {"1.0": (1, 0), "1.1": (1, 1), "1.2": (1, 2)}
"""Formats the writer can produce: 1.1 adds the ``field8`` codec (spec §18), 1.2 the
prefix-coded ``fieldp`` (§19, ``coder="prefix"``); 1.0 files are read by every bigsmall
(``compress(format_version="1.0")`` for older readers). Files are labelled with the format
they were asked for, not the newest: a 1.1 reader opens a default (1.1) file."""
HEADER_SIZE = 64
FLAG_INDEX_ZSTD = 1
_HDR = struct.Struct("<8sHHIQQQ16s")


def pack_header(index_offset: int, index_length: int, file_length: int, index_digest: bytes,
                flags: int = FLAG_INDEX_ZSTD, version: tuple[int, int] = VERSION) -> bytes:
    body = _HDR.pack(MAGIC, version[0], version[1], flags, index_offset, index_length,
                     file_length, index_digest)
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


def parse_header(buf: bytes, file_size: int | None = None) -> dict[str, int | bytes]:
    """Validate the fixed header; ``file_size`` (when known) detects truncation."""
    if len(buf) < 8 or buf[:8] != MAGIC:
        if len(buf) == 0:
            raise FormatError("empty file: not a bigsmall container")
        raise FormatError("not a bigsmall container (wrong magic bytes at offset 0)")
    if len(buf) < HEADER_SIZE:
        raise TruncatedError(f"truncated container: {len(buf)} bytes, header needs {HEADER_SIZE}")
    magic, major, minor, flags, ioff, ilen, flen, idig = _HDR.unpack_from(buf, 0)
    (check,) = struct.unpack_from("<Q", buf, 56)
    intact = check == xxhash.xxh3_64_intdigest(buf[:56])
    if major != VERSION[0]:  # checked before the checksum: a new major may change bytes 12..64
        hint = "" if intact else " (or its header is corrupt: the checksum does not match)"
        if major > VERSION[0]:
            raise UnsupportedVersionError(
                f"container format {major}.{minor} is newer than this bigsmall reads "
                f"({VERSION[0]}.{VERSION[1]}): upgrade bigsmall to a release that reads format "
                f"{major}.x{hint}"
            )
        raise UnsupportedVersionError(f"container format {major}.{minor} is not supported: this "
                                      f"bigsmall reads format {VERSION[0]}.x{hint}")
    if not intact:
        raise IntegrityError("container header is corrupt (checksum mismatch in bytes 0-55)")
    if file_size is not None and file_size < flen:
        raise TruncatedError(f"truncated container: {file_size} bytes, header promises {flen}")
    if not HEADER_SIZE <= ioff <= flen or ioff + ilen > flen:
        raise FormatError(f"index range {ioff}+{ilen} lies outside the file ({flen} bytes)")
    return {"major": major, "minor": minor, "flags": flags, "index_offset": ioff,
            "index_length": ilen, "file_length": flen, "index_digest": idig}


def index_digest(stored: bytes) -> bytes:
    return xxhash.xxh3_128_digest(stored)


# ---------------------------------------------------------------- index <-> Container

def _spec_json(t: TensorEntry) -> dict[str, Any]:
    s = t.spec
    return {
        "name": s.name, "file": s.file, "dtype": s.dtype, "shape": list(s.shape),
        "offsets": [s.begin, s.end], "layer": t.layer, "codec": t.codec, "params": t.params,
        "blob": [t.offset, t.head_len, list(t.chunk_lens)], "xxh3": t.receipt.digest,
    }


def encode_index(c: Container) -> bytes:
    """Container -> stored index bytes (zstd-compressed JSON)."""
    files = []
    for f in c.files:
        d: dict[str, Any] = {"path": f.path, "kind": f.kind, "size": f.size, "sha256": f.receipt.digest}
        if f.kind == "safetensors":
            d["header"] = base64.b64encode(f.header).decode("ascii")
        else:
            d["blob"] = list(f.blob or (0, 0))
            d["codec"] = f.codec
        files.append(d)
    doc = {
        "format": "bigsmall", "version": list(c.version), "meta": c.meta,
        "files": files, "tensors": [_spec_json(t) for t in c.tensors],
    }
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return zstandard.ZstdCompressor(level=9).compress(raw)


def decode_index(stored: bytes, header: dict[str, Any]) -> Container:
    """Stored index bytes -> Container, checking digest and structure."""
    if index_digest(stored) != header["index_digest"]:
        raise IntegrityError("container index is corrupt (checksum mismatch)")
    try:
        raw = stored
        if int(header["flags"]) & FLAG_INDEX_ZSTD:
            raw = zstandard.ZstdDecompressor().decompress(stored, max_output_size=1 << 31)
        doc = json.loads(raw.decode("utf-8"))
    except (zstandard.ZstdError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"container index unreadable: {exc}") from None
    try:
        return _container_from_doc(doc, int(header["file_length"]))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"container index malformed: {exc!r}") from None


def _container_from_doc(doc: dict[str, Any], file_length: int) -> Container:
    if not isinstance(doc, dict) or doc.get("format") != "bigsmall":
        raise FormatError("index does not describe a bigsmall container")
    files = []
    for f in doc["files"]:
        kind = f["kind"]
        if kind not in ("safetensors", "blob"):
            raise FormatError(f"file {f['path']!r}: unknown kind {kind!r}")
        blob = tuple(int(x) for x in f["blob"]) if kind == "blob" else None
        if blob is not None and (blob[0] < HEADER_SIZE or blob[0] + blob[1] > file_length):
            raise FormatError(f"file {f['path']!r}: blob range outside the container")
        files.append(FileEntry(
            path=str(f["path"]), kind=kind, size=int(f["size"]),
            receipt=Receipt("sha256", str(f["sha256"])),
            header=base64.b64decode(f["header"]) if kind == "safetensors" else b"",
            blob=blob, codec=str(f.get("codec", "zstd")),  # type: ignore[arg-type]
        ))
    tensors = []
    nfiles = len(files)
    for t in doc["tensors"]:
        off, head_len, lens = t["blob"]
        spec = TensorSpec(str(t["name"]), str(t["dtype"]), t["shape"], int(t["offsets"][0]),
                          int(t["offsets"][1]), int(t["file"]))
        if not 0 <= spec.file < nfiles:
            raise FormatError(f"tensor {spec.name!r}: file index {spec.file} out of range")
        info = DTYPES.get(spec.dtype)
        if info is None:
            raise FormatError(f"tensor {spec.name!r}: unknown dtype {spec.dtype!r}")
        if not 0 <= spec.begin <= spec.end or info.nbytes(spec.numel) != spec.nbytes:
            raise FormatError(f"tensor {spec.name!r}: data offsets [{spec.begin}, {spec.end}] do not "
                              f"match {spec.dtype} shape {list(spec.shape)}")
        layer = t.get("layer")
        entry = TensorEntry(
            spec=spec, codec=str(t["codec"]), params=dict(t["params"]), offset=int(off),
            head_len=int(head_len), chunk_lens=lens,  # the converter makes a tuple of ints
            receipt=Receipt("xxh3_128", str(t["xxh3"])),
            layer=None if layer is None else int(layer),
        )
        length = entry.length
        if length and (entry.offset < HEADER_SIZE or entry.offset + length > file_length):
            raise FormatError(f"tensor {spec.name!r}: blob range {entry.offset}+{length} "
                              f"outside the container ({file_length} bytes)")
        if (entry.chunk_lens and min(entry.chunk_lens) < 0) or entry.head_len < 0:
            raise FormatError(f"tensor {spec.name!r}: negative chunk length")
        tensors.append(entry)
    _check_refs(tensors)
    version = tuple(int(x) for x in doc["version"])
    return Container(version=(version[0], version[1]), files=tuple(files), tensors=tuple(tensors),
                     meta=dict(doc.get("meta", {})))


def _check_refs(tensors: list[TensorEntry]) -> None:
    """Names are unique; every 'ref' leads, without a cycle, to a stored tensor of the same size."""
    by_name: dict[str, TensorEntry] = {}
    for t in tensors:
        if t.name in by_name:
            raise FormatError(f"tensor {t.name!r} is listed twice in the index")
        by_name[t.name] = t
    for t in tensors:
        cur, seen = t, {t.name}
        while cur.codec == "ref":
            target = by_name.get(str(cur.params.get("of")))
            if target is None or target.name in seen:
                why = "a missing tensor" if target is None else "a reference cycle"
                raise FormatError(f"tensor {t.name!r}: reference to {cur.params.get('of')!r} is {why}")
            seen.add(target.name)
            cur = target
        if cur.spec.nbytes != t.spec.nbytes:
            raise FormatError(f"tensor {t.name!r}: refers to {cur.name!r} of a different size")
