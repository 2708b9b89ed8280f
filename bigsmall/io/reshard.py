"""``bigsmall reshard``: split a ``.bs`` container into shards of at most a given size, merge
shards into fewer ones, or back into one ``.bs`` — by copying blobs, never re-encoding.

A container's blob region holds the tensors' blobs layer by layer (non-layer tensors first,
then the other files' zstd frames), so cutting it between layers keeps every layer in one
shard (one read for the streaming loader). A layer larger than the limit is cut between its
tensors, a tensor larger than the limit gets a shard of its own (a blob is never split). The
shard layout and index are described in ``shards.py``; merging all shards back into one file
gives the original container byte for byte (its header, the payloads in order, its index).
Every output is written atomically; when the input is a shard folder, each input shard's
xxh3-128 is checked as its bytes stream past (a damaged shard is refused, not copied).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import Any

import attrs
import xxhash

from .. import __version__
from ..container import format as fmt
from ..core.types import Container
from ..errors import IntegrityError, InvalidOptionError
from .atomic import atomic_dir, atomic_file, check_target
from .decompress import folder_mode
from .shards import (
    INDEX_SUFFIX,
    SHARD_HEADER,
    ShardSource,
    open_source,
    pack_shard_header,
    shard_of,
)
from .source import FileSource, read_container

COPY_BYTES = 8 << 20  # bytes per write while copying
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}


def parse_size(text: str) -> int:
    """``"2GB"`` (10**9, as Hugging Face counts), ``"500MiB"``, ``"1048576"`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise InvalidOptionError(f"size {text!r} is not a number with an optional unit "
                                 "(KB, MB, GB, TB or KiB, MiB, GiB, TiB)")
    n = int(float(m.group(1)) * _UNITS[(m.group(2) or "").upper()])
    if n < 1:
        raise InvalidOptionError(f"size {text!r} is less than one byte")
    return n


@attrs.frozen
class ReshardResult:
    src: str
    dst: str
    shards: int
    bytes_copied: int
    seconds: float
    sizes: tuple[int, ...] = ()
    oversize: int = 0  # shards above the limit (a layer or tensor larger than it)

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["sizes"] = list(self.sizes)
        d["mb_per_s"] = self.bytes_copied / 1e6 / self.seconds if self.seconds else None
        return d


def _units(c: Container, index_offset: int) -> list[tuple[int, int, Any]]:
    """(start, end, layer key) of the cuttable runs of the blob region, in order: each
    tensor blob, each member file's frame; runs that overlap (not made by bigsmall, but
    nothing forbids them) are merged so that no cut falls inside a blob."""
    atoms = [(t.offset, t.offset + t.length, ("layer", -1 if t.layer is None else t.layer))
             for t in c.tensors if t.length]
    atoms += [(f.blob[0], f.blob[0] + f.blob[1], ("files", 0)) for f in c.files
              if f.blob is not None and f.blob[1]]
    atoms.sort(key=lambda a: (a[0], a[1]))
    units: list[tuple[int, int, Any]] = []
    pos = fmt.HEADER_SIZE
    for a, b, key in atoms:
        if units and a < units[-1][1]:  # overlaps the previous run: one run
            s, e, k = units[-1]
            units[-1] = (s, max(e, b), k)
            continue
        if a > pos and units:  # a gap (padding): it goes with the run before it
            s, _e, k = units[-1]
            units[-1] = (s, a, k)
        elif a > pos:
            a = pos
        units.append((a, b, key))
        pos = b
    if units:
        s, _e, k = units[-1]
        units[-1] = (s, index_offset, k)
    return units


def plan_cuts(c: Container, index_offset: int, limit: int) -> list[tuple[int, int]]:
    """The shards' payload ranges: whole layers packed greedily up to ``limit`` bytes per
    shard file (its header included), a layer cut between tensors only when alone it is
    larger than that."""
    units = _units(c, index_offset)
    if not units:
        return [(fmt.HEADER_SIZE, index_offset)]
    room = max(1, limit - SHARD_HEADER)
    layers = [[(a, b) for a, b, _k in runs] for _key, runs in groupby(units, key=lambda u: u[2])]
    shards: list[tuple[int, int]] = []
    start = end = fmt.HEADER_SIZE
    for runs in layers:
        lo, hi = runs[0][0], runs[-1][1]
        if hi - start <= room:  # the layer fits in the open shard
            end = hi
            continue
        if end > start:  # close the open shard where this layer starts
            shards.append((start, end))
            start = end = lo
        if hi - lo <= room:
            end = hi
        else:  # a layer larger than a shard: cut between its tensors
            start, end = _pack(runs, start, end, room, shards)
    shards.append((start, end))
    return shards


def _pack(runs: list[tuple[int, int]], start: int, end: int, room: int,
          shards: list[tuple[int, int]]) -> tuple[int, int]:
    """Tensors of one layer, packed greedily; returns the open shard's (start, end)."""
    for a, b in runs:
        if b - start > room and end > start:
            shards.append((start, end))
            start = a
        end = b
    return start, end


def _pieces(src: FileSource | ShardSource, start: int, end: int) -> Iterator[tuple[int, memoryview]]:
    """(offset, bytes) of ``[start, end)`` of the container, in pieces that lie within one
    input shard and are at most ``COPY_BYTES`` long. Each piece is read (``pread``) into one
    reused buffer, valid until the next piece: writing straight from the file's memory map
    faulted its pages in one by one and ran at ~400 MB/s where a copy runs at ~2 GB/s."""
    buf = memoryview(bytearray(min(COPY_BYTES, max(end - start, 1))))
    readinto = getattr(src, "readinto", None)
    pos = start
    while pos < end:
        n = min(COPY_BYTES, end - pos)
        if isinstance(src, ShardSource):
            s = src.index.shards[shard_of(src.index.shards, pos)]
            n = min(n, s.start + s.length - pos)
        if readinto is None:  # a source without positional reads into a buffer
            yield pos, src.view(pos, n)
        else:
            readinto(pos, buf[:n])
            yield pos, buf[:n]
        pos += n


class _ShardCheck:
    """Hashes the input shards' payloads as they stream past and checks each at its end."""

    def __init__(self, src: FileSource | ShardSource):
        self.shards = src.index.shards if isinstance(src, ShardSource) else ()
        self.k = 0
        self.h = xxhash.xxh3_128()

    def feed(self, pos: int, piece: memoryview) -> None:
        """``piece`` (at container offset ``pos``) lies within one input shard (``_pieces``)."""
        if not self.shards:
            return
        self._skip_empty()
        self.h.update(piece)
        s = self.shards[self.k]
        if pos + len(piece) == s.start + s.length:
            self._close()
            self._skip_empty()

    def _skip_empty(self) -> None:
        while self.k < len(self.shards) and self.shards[self.k].length == 0:
            self._close()

    def _close(self) -> None:
        s = self.shards[self.k]
        if self.h.hexdigest() != s.xxh3:
            raise IntegrityError(f"shard {s.path!r} is corrupt (its xxh3-128 does not match "
                                 "the shard index): nothing was written")
        self.k += 1
        self.h = xxhash.xxh3_128()


class _Tail:
    """What follows the container in its file (``compress --ecc``'s parity section): not
    part of the shards, kept in ``NAME.bs.tail`` and appended again by a merge, so that the
    merged file is the original byte for byte. Its parity describes the merged file, not the
    shards (each shard has its xxh3-128 in the index instead)."""

    def __init__(self, source: FileSource | ShardSource, flen: int):
        self.file: FileSource | None
        if isinstance(source, ShardSource):
            self.file, self.start = source.tail, 0
            self.digest = source.index.tail.xxh3 if source.index.tail is not None else None
        else:
            self.file, self.start, self.digest = source, flen, None
        self.length = self.file.size - self.start if self.file is not None else 0

    def pieces(self) -> Iterator[memoryview]:
        if self.file is None or not self.length:
            return
        h = xxhash.xxh3_128()
        buf = memoryview(bytearray(min(COPY_BYTES, self.length)))
        for pos in range(self.start, self.start + self.length, COPY_BYTES):
            n = min(COPY_BYTES, self.start + self.length - pos)
            self.file.readinto(pos, buf[:n])
            h.update(buf[:n])
            yield buf[:n]
        if self.digest is not None and h.hexdigest() != self.digest:
            raise IntegrityError(f"{self.file.path} is corrupt (its xxh3-128 does not match the "
                                 "shard index): nothing was written")

    def write(self, path: Path, mode: int, durable: bool) -> dict[str, Any]:
        h = xxhash.xxh3_128()
        with open(path, "xb") as fh:
            for piece in self.pieces():
                fh.write(piece)
                h.update(piece)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(path, mode & 0o666)
        return {"path": path.name, "length": self.length, "xxh3": h.hexdigest()}


def _stem(src: Path, src_is_dir: bool, name: str) -> str:
    if src_is_dir:
        return name[:-3] if name.endswith(".bs") else name
    return src.name[:-3] if src.name.endswith(".bs") else src.name


def reshard(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
            max_shard_size: int | str = "2GB", force: bool = False,
            durable: bool = True) -> ReshardResult:
    """Split ``src`` (a ``.bs`` or a shard folder) into a folder ``dst`` of shards of at most
    ``max_shard_size`` bytes, or, when ``dst`` ends in ``.bs``, merge it into one container
    (the original file, byte for byte). Blobs are copied, never re-encoded."""
    t0 = time.perf_counter()
    limit = parse_size(max_shard_size) if isinstance(max_shard_size, str) else int(max_shard_size)
    if limit < 1:
        raise InvalidOptionError(f"max shard size must be at least 1 byte, not {limit}")
    src, out = Path(src), Path(dst)
    merge = out.suffix == ".bs"
    with open_source(src) as source:
        header, c = read_container(source)  # type: ignore[arg-type]
        ioff, flen = int(header["index_offset"]), int(header["file_length"])
        head = source.read(0, fmt.HEADER_SIZE)
        index = source.read(ioff, flen - ioff)
        name = source.index.name if isinstance(source, ShardSource) else src.name
        tail = _Tail(source, flen)
        check_target(out, force, folder=not merge, inputs=[src])
        mode = source.mode
        check = _ShardCheck(source)
        if merge:
            with atomic_file(out, force, durable, mode=mode, inputs=[src]) as (_tmp, fh):
                fh.write(head)  # type: ignore[attr-defined]
                for pos, piece in _pieces(source, fmt.HEADER_SIZE, ioff):
                    fh.write(piece)  # type: ignore[attr-defined]
                    check.feed(pos, piece)
                fh.write(index)  # type: ignore[attr-defined]
                for piece in tail.pieces():
                    fh.write(piece)  # type: ignore[attr-defined]
            total = flen + tail.length
            return ReshardResult(str(src), str(out), 1, total, time.perf_counter() - t0,
                                 (total,), int(total > limit))
        cuts = plan_cuts(c, ioff, limit)
        stem = _stem(src, isinstance(source, ShardSource), name)
        n = len(cuts)
        paths = [f"{stem}-{i + 1:05d}-of-{n:05d}.bs" for i in range(n)]
        infos = []
        with atomic_dir(out, force, durable, mode=folder_mode(mode), inputs=[src]) as tmp:
            for i, (a, b) in enumerate(cuts):
                h = xxhash.xxh3_128()
                with open(tmp / paths[i], "xb") as fh:
                    fh.write(pack_shard_header(i + 1, n, a, b - a))
                    for pos, piece in _pieces(source, a, b):
                        fh.write(piece)
                        h.update(piece)
                        check.feed(pos, piece)
                        fh.flush()
                    if durable:
                        os.fsync(fh.fileno())
                os.chmod(tmp / paths[i], mode & 0o666)
                infos.append({"path": paths[i], "start": a, "length": b - a, "xxh3": h.hexdigest()})
            doc = _index_doc(c, name, head, index, infos, limit)
            if tail.length:
                doc["tail"] = tail.write(tmp / f"{stem}.bs.tail", mode, durable)
            (tmp / f"{stem}{INDEX_SUFFIX}").write_text(dump_index(doc))
            os.chmod(tmp / f"{stem}{INDEX_SUFFIX}", mode & 0o666)
    sizes = tuple(SHARD_HEADER + x["length"] for x in infos)
    return ReshardResult(str(src), str(out), n, sum(sizes) + tail.length, time.perf_counter() - t0,
                         sizes, sum(1 for s in sizes if s > limit))


def dump_index(doc: dict[str, Any]) -> str:
    """The index as JSON with a shard or a weight-map entry per line (readable and diffable,
    like Hugging Face's). Written piece by piece with the C encoder: ``json.dumps(indent=...)``
    runs the pure-Python encoder, whose closures are reference cycles (garbage that the CLI,
    which runs with the cyclic collector off, would keep)."""
    lines = ["{"]
    keys = list(doc)
    for i, key in enumerate(keys):
        value, end = doc[key], "," if i + 1 < len(keys) else ""
        if isinstance(value, list) and value:
            items = [f"  {json.dumps(v)}" for v in value]
            lines += [f" {json.dumps(key)}: [", ",\n".join(items), f" ]{end}"]
        elif isinstance(value, dict) and value and key == "weight_map":
            items = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
            lines += [f" {json.dumps(key)}: {{", ",\n".join(items), f" }}{end}"]
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{end}")
    return "\n".join(lines) + "\n}\n"


def _index_doc(c: Container, name: str, head: bytes, index: bytes, infos: list[dict[str, Any]],
               limit: int) -> dict[str, Any]:
    """The shard index: Hugging Face's ``weight_map`` plus what restores the container."""
    starts = tuple(x["start"] for x in infos)
    by_name = c.by_name()
    wm = {}
    for t in c.tensors:
        src = t
        seen = 0
        while src.codec == "ref" and seen < 64:  # a copy lives where its original does
            src = by_name[str(src.params.get("of"))]
            seen += 1
        k = 0
        if src.length:
            k = max(0, sum(1 for s in starts if s <= src.offset) - 1)
        wm[t.name] = infos[k]["path"]
    return {
        "format": "bigsmall-shards", "version": 1,
        "metadata": {"name": name, "writer": f"bigsmall {__version__}",
                     "total_size": sum(SHARD_HEADER + x["length"] for x in infos),
                     "original_size": sum(f.size for f in c.files), "max_shard_size": limit},
        "container": {"header": base64.b64encode(head).decode("ascii"),
                      "index": base64.b64encode(index).decode("ascii")},
        "shards": infos,
        "weight_map": wm,
    }
