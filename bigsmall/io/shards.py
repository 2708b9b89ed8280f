"""A folder of ``.bs`` shards read as the one container it was cut from.

Layout (written by ``reshard.py``; docs/tools.md): ``NAME.bs.index.json`` plus shard files
``NAME-00001-of-0000N.bs`` (and ``NAME.bs.tail``: what followed the container in its file, an
ECC section, kept so that a merge gives that file back). Each shard holds a contiguous run of the original container's blob
region (whole layers, never part of a blob) after a 64-byte shard header; the index JSON holds
the original container's 64-byte header and stored index (base64), each shard's range and
xxh3-128, and a Hugging-Face-style ``weight_map`` (tensor -> shard file).

Why this shape: the original container's bytes are the header, the shards' payloads in order,
and the index, so a shard folder is that container with its blob region split across files.
``ShardSource`` serves exactly those bytes (``view``/``read``/``release``, like
``source.FileSource``), so ``BsFile`` and everything built on it (decompress, verify, load,
streaming) read a shard folder unchanged, and merging the shards back gives the original
``.bs`` byte for byte. The index JSON is a stranger's input: every field is checked here, and
the embedded container index goes through the usual ``format.decode_index`` validation.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import os
import stat
import struct
from pathlib import Path
from typing import Any

import attrs
import xxhash

from ..container import format as fmt
from ..container import schema
from ..errors import BigsmallIOError, FormatError, ShardError, TruncatedError
from .source import FileSource

SHARD_MAGIC = b"\x89BSS\r\n\x1a\n"
SHARD_VERSION = 1
SHARD_HEADER = 64
INDEX_SUFFIX = ".bs.index.json"
MAX_SHARDS = 100_000
MAX_INDEX_JSON = 1 << 28
_SHDR = struct.Struct("<8sIIIIQQ")  # magic, version, shard number, count, reserved, start, length


def pack_shard_header(number: int, count: int, start: int, length: int) -> bytes:
    body = _SHDR.pack(SHARD_MAGIC, SHARD_VERSION, number, count, 0, start, length)
    body += b"\0" * (SHARD_HEADER - 8 - len(body))
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


@attrs.frozen
class ShardInfo:
    path: str
    start: int  # offset in the original container of the shard's first payload byte
    length: int
    xxh3: str


@attrs.frozen
class ShardIndex:
    """A checked ``NAME.bs.index.json``."""

    name: str  # the original container's file name
    header: bytes  # its 64-byte header
    index: bytes  # its stored index bytes
    shards: tuple[ShardInfo, ...]
    weight_map: dict[str, str] = attrs.field(hash=False)
    file_length: int = 0
    index_offset: int = 0
    tail: ShardInfo | None = None  # bytes after the container (an ECC section), kept apart


def _fail(where: str, what: str) -> ShardError:
    return ShardError(f"shard index malformed: {where}: {what}")


def find_index(folder: Path) -> Path:
    """The one ``*.bs.index.json`` of a shard folder."""
    try:
        found = sorted(p for p in folder.iterdir() if p.name.endswith(INDEX_SUFFIX))
    except OSError as exc:
        raise BigsmallIOError(f"{folder}: cannot list it ({exc.strerror or exc})") from None
    if not found:  # the error a folder got before shard folders existed: an I/O error
        raise BigsmallIOError(f"{folder} is a folder, not a .bs file (nor a folder of .bs "
                              f"shards: it holds no *{INDEX_SUFFIX})")
    if len(found) > 1:
        raise ShardError(f"{folder} holds {len(found)} shard indexes "
                         f"({', '.join(p.name for p in found[:3])}): which one is meant is unclear")
    return found[0]


def is_shard_folder(path: Path) -> bool:
    try:
        return path.is_dir() and any(p.name.endswith(INDEX_SUFFIX) for p in path.iterdir())
    except OSError:
        return False


def is_bigsmall(path: Path) -> bool:
    """A ``.bs`` container or a folder of shards (else: safetensors input)."""
    if path.is_dir():
        return is_shard_folder(path)
    try:
        with open(path, "rb") as fh:
            return fh.read(len(fmt.MAGIC)) == fmt.MAGIC
    except OSError:
        return path.suffix == ".bs"


def parse_index(raw: bytes) -> ShardIndex:
    """The index JSON, every field checked (``ShardError``); the embedded container header
    and index are checked by ``format`` (``FormatError``/``IntegrityError``)."""
    if len(raw) > MAX_INDEX_JSON:
        raise _fail("JSON", f"{len(raw)} bytes, larger than any real shard index")
    try:
        doc = schema.load_json(raw)
    except FormatError as exc:
        raise ShardError(str(exc).replace("container index", "shard index")) from None
    try:
        return _parse_doc(doc)
    except ShardError:
        raise
    except FormatError as exc:  # a schema helper's message: same words, our type
        raise ShardError(str(exc).replace("container index", "shard index")) from None


def _b64(v: Any, where: str) -> bytes:
    try:
        return base64.b64decode(schema.str_of(v, where), validate=True)
    except (binascii.Error, ValueError):
        raise _fail(where, "not valid base64") from None


def _parse_doc(doc: Any) -> ShardIndex:
    doc = schema.dict_of(doc, "index")
    if doc.get("format") != "bigsmall-shards":
        raise ShardError("not a bigsmall shard index (its 'format' is not 'bigsmall-shards')")
    version = schema.int_in(schema.get(doc, "version", "index"), "version", 0, 1 << 16)
    if version != SHARD_VERSION:
        raise ShardError(f"shard index version {version} is not supported by this bigsmall "
                         f"(it reads version {SHARD_VERSION}): upgrade bigsmall")
    meta = schema.dict_of(doc.get("metadata", {}), "metadata")
    name = schema.check_file_name(meta.get("name", "model.bs"), "metadata.name")
    cont = schema.dict_of(schema.get(doc, "container", "index"), "container")
    header = _b64(schema.get(cont, "header", "container"), "container.header")
    index = _b64(schema.get(cont, "index", "container"), "container.index")
    if len(header) != fmt.HEADER_SIZE:
        raise _fail("container.header", f"{len(header)} bytes, not {fmt.HEADER_SIZE}")
    h = fmt.parse_header(header)
    ioff, ilen, flen = int(h["index_offset"]), int(h["index_length"]), int(h["file_length"])
    if len(index) != ilen or ioff + ilen != flen:
        raise _fail("container.index", f"{len(index)} bytes where the header says {ilen} at "
                    f"{ioff} of {flen}")
    shards = schema.list_of(schema.get(doc, "shards", "index"), "shards")
    if not 1 <= len(shards) <= MAX_SHARDS:
        raise _fail("shards", f"{len(shards)} shards")
    out: list[ShardInfo] = []
    pos = fmt.HEADER_SIZE
    names: set[str] = set()
    for i, s in enumerate(shards):
        w = f"shards[{i}]"
        s = schema.dict_of(s, w)
        path = schema.check_file_name(schema.get(s, "path", w), f"{w}.path")
        if path in names or path.endswith(INDEX_SUFFIX):
            raise _fail(f"{w}.path", f"{path!r} is listed twice or names the index")
        names.add(path)
        start = schema.int_in(schema.get(s, "start", w), f"{w}.start")
        length = schema.int_in(schema.get(s, "length", w), f"{w}.length")
        digest = schema.str_of(schema.get(s, "xxh3", w), f"{w}.xxh3")
        if len(digest) != 32 or any(c not in "0123456789abcdef" for c in digest):
            raise _fail(f"{w}.xxh3", "not 32 lowercase hex digits")
        if start != pos:
            raise _fail(f"{w}.start", f"{start}: the shards must tile the blob region in order "
                        f"(expected {pos})")
        pos += length
        out.append(ShardInfo(path, start, length, digest))
    if pos != ioff:
        raise _fail("shards", f"they end at {pos}, the container's blobs at {ioff}")
    tail = None
    if doc.get("tail") is not None:
        t = schema.dict_of(doc["tail"], "tail")
        path = schema.check_file_name(schema.get(t, "path", "tail"), "tail.path")
        if path in names or path.endswith(INDEX_SUFFIX):
            raise _fail("tail.path", f"{path!r} is a shard's or the index's name")
        length = schema.int_in(schema.get(t, "length", "tail"), "tail.length")
        digest = schema.str_of(schema.get(t, "xxh3", "tail"), "tail.xxh3")
        if len(digest) != 32 or any(c not in "0123456789abcdef" for c in digest):
            raise _fail("tail.xxh3", "not 32 lowercase hex digits")
        tail = ShardInfo(path, flen, length, digest)
    wm = schema.dict_of(doc.get("weight_map", {}), "weight_map")
    for k, v in wm.items():
        if schema.str_of(v, f"weight_map[{k[:60]!r}]") not in names:
            raise _fail(f"weight_map[{k[:60]!r}]", f"names no shard ({v[:60]!r})")
    return ShardIndex(name, header, index, tuple(out), dict(wm), flen, ioff, tail)


def shard_of(shards: tuple[ShardInfo, ...], offset: int) -> int:
    """The number of the shard whose payload holds container offset ``offset``."""
    starts = [s.start for s in shards]
    return max(0, bisect.bisect_right(starts, offset) - 1)


class ShardSource:
    """The original container's bytes, served from a shard folder (``FileSource``'s reads)."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.path = Path(folder)
        self.index_path = find_index(self.path)
        try:
            raw = self.index_path.read_bytes()
            self.mode = stat.S_IMODE(self.index_path.stat().st_mode)
        except OSError as exc:
            raise BigsmallIOError(f"{self.index_path}: cannot read it ({exc.strerror or exc})") from None
        self.index = parse_index(raw)
        self.size = self.index.file_length
        self._starts = [s.start for s in self.index.shards]
        self._files: list[FileSource] = []
        self.tail: FileSource | None = None
        try:
            for i, s in enumerate(self.index.shards):
                f = FileSource(self.path / s.path)
                self._files.append(f)
                self._check_shard(i, s, f)
            t = self.index.tail
            if t is not None:
                self.tail = FileSource(self.path / t.path)
                if self.tail.size != t.length:
                    raise TruncatedError(f"{self.tail.path}: {self.tail.size} bytes, the index "
                                         f"promises {t.length}")
        except BaseException:
            self.close()
            raise
        self._check_weight_map()

    def _check_shard(self, i: int, s: ShardInfo, f: FileSource) -> None:
        n = len(self.index.shards)
        if f.size < SHARD_HEADER + s.length:
            raise TruncatedError(f"{f.path}: truncated shard: {f.size} bytes, the index "
                                 f"promises {SHARD_HEADER + s.length}")
        if f.size != SHARD_HEADER + s.length or f.read(0, SHARD_HEADER) != pack_shard_header(
                i + 1, n, s.start, s.length):
            raise ShardError(f"{f.path}: not shard {i + 1} of {n} as the index describes it "
                             "(a shard of another model, or a corrupt shard header)")

    def _check_weight_map(self) -> None:
        """The weight map names, for each stored tensor, the shard holding its blob (a map
        that disagrees would send a reader that trusts it to the wrong file)."""
        from .source import read_container

        _, c = read_container(self)  # type: ignore[arg-type]
        wm = self.index.weight_map
        for t in c.tensors:
            if t.length and t.name in wm:
                want = self.index.shards[shard_of(self.index.shards, t.offset)].path
                if wm[t.name] != want:
                    raise ShardError(f"shard index: weight_map[{t.name!r}] says {wm[t.name]!r}, "
                                     f"its blob is in {want!r}")

    def _locate(self, offset: int, length: int) -> tuple[int, int]:
        """(shard number, offset in that shard's file) of a range of payload bytes."""
        k = shard_of(self.index.shards, offset)
        s = self.index.shards[k]
        if offset < s.start or offset + length > s.start + s.length:
            raise FormatError(f"{self.path}: byte range {offset}+{length} crosses a shard "
                              "boundary (a blob split across shards)")
        return k, SHARD_HEADER + offset - s.start

    def _memory(self, offset: int, length: int) -> bytes | None:
        """Header and index bytes (kept in the index JSON), else None."""
        if offset + length <= fmt.HEADER_SIZE:
            return self.index.header[offset : offset + length]
        ioff = self.index.index_offset
        if offset >= ioff:
            if offset + length > self.size:
                raise TruncatedError(f"{self.path}: needs bytes {offset}..{offset + length}, "
                                     f"the container has {self.size}")
            return self.index.index[offset - ioff : offset - ioff + length]
        return None

    def read(self, offset: int, length: int) -> bytes:
        if length == 0:
            return b""
        mem = self._memory(offset, length)
        if mem is not None:
            return mem
        k, off = self._locate(offset, length)
        return self._files[k].read(off, length)

    def view(self, offset: int, length: int) -> memoryview:
        if length == 0:
            return memoryview(b"")
        mem = self._memory(offset, length)
        if mem is not None:
            return memoryview(mem)
        k, off = self._locate(offset, length)
        return self._files[k].view(off, length)

    def readinto(self, offset: int, buf: memoryview) -> None:
        """Fill ``buf`` from container offset ``offset`` (within one shard's payload)."""
        n = len(buf)
        mem = self._memory(offset, n) if n else b""
        if mem is not None:
            buf[: len(mem)] = mem
            return
        k, off = self._locate(offset, n)
        self._files[k].readinto(off, buf)

    def release(self, offset: int, length: int) -> None:
        if length <= 0 or offset < fmt.HEADER_SIZE or offset >= self.index.index_offset:
            return
        try:
            k, off = self._locate(offset, length)
        except FormatError:
            return
        self._files[k].release(off, length)

    def shard_files(self) -> list[FileSource]:
        return list(self._files)

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files = []
        if self.tail is not None:
            self.tail.close()
            self.tail = None

    def __enter__(self) -> ShardSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(path: Any) -> Any:
    """The byte source of a container: a shard folder's ``ShardSource``, else
    ``remote.open_source``'s (a local file, a URL, an ``hf://`` path)."""
    from .remote import is_remote
    from .remote import open_source as file_or_remote

    if not is_remote(path) and Path(path).is_dir():
        return ShardSource(path)
    return file_or_remote(path)


def open_container(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """``BsFile`` of a ``.bs`` file or a shard folder."""
    from .reader import BsFile

    return BsFile(path, threads=threads)
