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

from ..core.safetensors_header import parse_header as parse_safetensors_header
from ..core.types import Container, FileEntry, Receipt, TensorEntry, TensorSpec, tensor_keys
from ..errors import (
    FormatError,
    IntegrityError,
    InvalidSafetensorsError,
    TruncatedError,
    UnsupportedVersionError,
)
from . import schema

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
        hint = ""
        if len(buf) >= 9 and buf[8:9] == b"{":  # an 8-byte length, then JSON: safetensors
            hint = ": it looks like a safetensors file (use `bigsmall compress` to make a .bs)"
        raise FormatError(f"not a bigsmall container (wrong magic bytes at offset 0){hint}")
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
    """Stored index bytes -> Container: digest, then one schema validation of every field
    (``schema.check_doc``), then the cross-checks that need the built values (references,
    each safetensors member's verbatim header against its tensors). Any index that passes is
    safe to hand to the decoder; anything else is a ``FormatError``."""
    if index_digest(stored) != header["index_digest"]:
        raise IntegrityError("container index is corrupt (checksum mismatch)")
    raw = stored
    if int(header["flags"]) & FLAG_INDEX_ZSTD:
        raw = zstd_decompress(stored, schema.MAX_INDEX_BYTES, "container index")
    elif len(raw) > schema.MAX_INDEX_BYTES:
        raise FormatError(f"container index of {len(raw)} bytes is larger than any real one")
    doc = schema.load_json(raw)
    schema.check_doc(doc, int(header["index_offset"]))
    try:
        return _container_from_doc(doc)
    except FormatError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        # unreachable once ``check_doc`` passed; kept so that a gap in it stays a typed error
        raise FormatError(f"container index malformed: {exc!r}") from None


def zstd_decompress(data: bytes | memoryview, max_size: int, what: str) -> bytes:
    """One zstd frame decoded into at most ``max_size`` bytes; any failure is an
    ``IntegrityError`` naming ``what``.

    Why not a bare ``ZstdDecompressor().decompress``: a frame header states its content size
    and python-zstandard allocates it up front, so one flipped bit there raised ``MemoryError``
    (or asked for gigabytes) instead of reporting corruption. The declared size is checked
    first, and every exception the library raises on bad bytes becomes ours."""
    try:
        declared = zstandard.frame_content_size(data)
    except (zstandard.ZstdError, ValueError, TypeError) as exc:
        raise IntegrityError(f"{what}: not a valid zstd frame ({exc})") from None
    if declared > max_size:  # -1: unknown size, bounded by max_output_size below
        raise IntegrityError(f"{what}: zstd frame declares {declared} bytes, more than the "
                             f"{max_size} it may hold (corrupt)")
    try:
        dctx = _IDLE_DCTX.pop()
    except IndexError:
        dctx = zstandard.ZstdDecompressor()
    try:
        out = dctx.decompress(data, max_output_size=max(max_size, 1))
    except (zstandard.ZstdError, MemoryError, ValueError, OverflowError) as exc:
        raise IntegrityError(f"{what}: stored bytes corrupt ({type(exc).__name__}: {exc})") from None
    _IDLE_DCTX.append(dctx)  # only after a clean decode: a failed one is dropped
    return out


# Decompressors not in use. Why: creating one costs ~18 us (its context's allocation) against
# ~0.5 us for decoding a tensor's side information, and a read creates one per tensor (~2 ms of
# a MiniLM read's 68, on the GIL; issue 17). A caller pops one for its own use and puts it
# back (list.pop/append are atomic), so concurrent readers never share one; the list holds at
# most as many as ever ran at once.
_IDLE_DCTX: list[zstandard.ZstdDecompressor] = []


def _container_from_doc(doc: dict[str, Any]) -> Container:
    """Build the Container from a document ``schema.check_doc`` accepted."""
    files = []
    for f in doc["files"]:
        kind = f["kind"]
        files.append(FileEntry(
            path=f["path"], kind=kind, size=f["size"], receipt=Receipt("sha256", f["sha256"]),
            header=base64.b64decode(f["header"]) if kind == "safetensors" else b"",
            blob=tuple(f["blob"]) if kind == "blob" else None,  # type: ignore[arg-type]
            codec=f.get("codec", "zstd"),
        ))
    tensors = []
    for t in doc["tensors"]:
        off, head_len, lens = t["blob"]
        spec = TensorSpec(t["name"], t["dtype"], t["shape"], t["offsets"][0], t["offsets"][1],
                          t["file"])
        tensors.append(TensorEntry(
            spec=spec, codec=t["codec"], params=t["params"], offset=off, head_len=head_len,
            chunk_lens=lens, receipt=Receipt("xxh3_128", t["xxh3"]), layer=t.get("layer"),
        ))
    _check_refs(files, tensors)
    _check_headers(files, tensors)
    version = doc["version"]
    return Container(version=(version[0], version[1]), files=tuple(files), tensors=tuple(tensors),
                     meta=dict(doc.get("meta", {})))


def _check_headers(files: list[FileEntry], tensors: list[TensorEntry]) -> None:
    """Each safetensors member's verbatim header (what a restore writes first) describes
    exactly the tensors the index lists for that file: same names, dtypes, shapes and byte
    ranges, tiling its data section. A restore, a ``read`` by name and a load then all agree
    on what each byte is."""
    by_file: dict[int, set[tuple[str, str, tuple[int, ...], int, int]]] = {}
    for t in tensors:
        s = t.spec
        by_file.setdefault(s.file, set()).add((s.name, s.dtype, s.shape, s.begin, s.end))
    for i, f in enumerate(files):
        if f.kind != "safetensors":
            continue
        try:
            parsed = parse_safetensors_header(f.header, f.size, i)
        except InvalidSafetensorsError as exc:
            raise FormatError(f"file {f.path!r}: stored safetensors header invalid: {exc}") from None
        want = {(s.name, s.dtype, s.shape, s.begin, s.end) for s in parsed.tensors}
        if want != by_file.get(i, set()):
            raise FormatError(f"file {f.path!r}: the index's tensors do not match the file's "
                              "stored safetensors header")


def _check_refs(files: list[FileEntry], tensors: list[TensorEntry]) -> None:
    """Names are unique within each file (two files may both hold ``linear.weight``); every
    'ref' names its target by a key (``"file::name"``, or a name unique in the container) and
    leads, without a cycle, to a stored tensor of the same size."""
    seen_names: set[tuple[int, str]] = set()
    for t in tensors:
        if (t.spec.file, t.name) in seen_names:
            raise FormatError(f"tensor {t.name!r} is listed twice in the index")
        seen_names.add((t.spec.file, t.name))
    by_key, ambiguous = tensor_keys(files, tensors)
    for t in tensors:
        cur, seen = t, {id(t)}
        while cur.codec == "ref":
            of = str(cur.params.get("of"))
            target = by_key.get(of)
            if target is None or id(target) in seen:
                why = ("an ambiguous name (held by several files)" if of in ambiguous
                       else "a missing tensor" if target is None else "a reference cycle")
                raise FormatError(f"tensor {t.name!r}: reference to {of!r} is {why}")
            seen.add(id(target))
            cur = target
        if cur.spec.nbytes != t.spec.nbytes:
            raise FormatError(f"tensor {t.name!r}: refers to {cur.name!r} of a different size")
