"""The manifest of a ``.bsd`` folder: which original file each stored file restores.

A model folder (config, tokenizer, one or several safetensors shards) becomes a folder of the
same layout in which every ``x.safetensors`` is a dual-fidelity ``x.bsd`` and every other file
is copied as it is; ``bigsmall-dual.json`` at its root lists each original file with its size
and sha256, so that a restore can rebuild the folder byte for byte and prove it. Why a folder
and not one file: the ``.bsd`` format holds one safetensors file; a folder of them needs no
format change, keeps the fast member of each shard contiguous, and its config files stay
readable by any tool.

Pure (the layer rule): parsing and validation only. The manifest comes from disk and may be
crafted, so every field is checked here (the index checks of ``schema``: strict JSON, safe
relative member paths, no path twice, integers in range) before a path is joined or a byte
written; every failure is a ``FormatError`` (``UnsupportedVersionError`` for a newer major).
"""

from __future__ import annotations

import json
import re

import attrs

from ..errors import FormatError, UnsupportedVersionError
from . import schema

NAME = "bigsmall-dual.json"
FORMAT = "bigsmall-dual-folder"
VERSION = (1, 0)
MAX_BYTES = 64 << 20  # a manifest larger than this is refused before it is parsed
KINDS = ("bsd", "copy")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


@attrs.frozen
class Member:
    """One original file: ``path`` in the source folder, ``stored`` in the ``.bsd`` folder
    (``x.safetensors`` -> ``x.bsd``; a copy keeps its path), its size and sha256."""

    path: str
    stored: str
    kind: str  # "bsd" or "copy"
    size: int
    sha256: str


def stored_name(path: str) -> str:
    """``a/model-00001-of-00002.safetensors`` -> ``a/model-00001-of-00002.bsd``."""
    return path[: -len(".safetensors")] + ".bsd" if path.endswith(".safetensors") else path


def encode(members: list[Member]) -> bytes:
    doc = {"format": FORMAT, "version": list(VERSION),
           "files": [attrs.asdict(m) for m in members]}
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


def _fail(where: str, what: str) -> FormatError:
    return FormatError(f"{NAME} malformed: {where}: {what}")


def parse(raw: bytes) -> list[Member]:
    """The manifest's members, every field checked; raises ``FormatError``."""
    if len(raw) > MAX_BYTES:
        raise _fail("file", f"{len(raw)} bytes, more than {MAX_BYTES}")
    try:
        doc = schema.dict_of(schema.load_json(raw), "manifest")
        if doc.get("format") != FORMAT:
            raise _fail("format", f"not {FORMAT!r}")
        version = schema.list_of(schema.get(doc, "version", "manifest"), "version", 2)
        major = schema.int_in(version[0], "version[0]", 0, 1 << 16)
        schema.int_in(version[1], "version[1]", 0, 1 << 16)
        if major != VERSION[0]:
            raise UnsupportedVersionError(f"{NAME}: folder format {major}.x is not supported "
                                          f"(this bigsmall reads {VERSION[0]}.x); upgrade bigsmall")
        files = schema.list_of(schema.get(doc, "files", "manifest"), "files")
        out = []
        for i, f in enumerate(files):
            where = f"files[{i}]"
            f = schema.dict_of(f, where)
            kind = schema.get(f, "kind", where)
            if kind not in KINDS:
                raise _fail(f"{where}.kind", f"{kind!r} is not one of {', '.join(KINDS)}")
            path = schema.check_member_path(schema.get(f, "path", where), f"{where}.path")
            stored = schema.check_member_path(schema.get(f, "stored", where), f"{where}.stored")
            if stored != (stored_name(path) if kind == "bsd" else path) or stored == NAME:
                raise _fail(f"{where}.stored", f"{stored!r} is not the stored name of {path!r}")
            sha = schema.str_of(schema.get(f, "sha256", where), f"{where}.sha256")
            if not _HEX64.match(sha):
                raise _fail(f"{where}.sha256", "not 64 lowercase hex digits")
            size = schema.int_in(schema.get(f, "size", where), f"{where}.size")
            out.append(Member(path, stored, kind, size, sha))
    except FormatError as exc:
        if isinstance(exc, UnsupportedVersionError) or str(exc).startswith(NAME):
            raise
        raise FormatError(f"{NAME} malformed: {exc}") from None
    # restored and stored paths: each once, none both a file and a folder of another
    schema.member_parts([m.path for m in out], "files")
    schema.member_parts([m.stored for m in out] + [NAME], "stored")
    if not any(m.kind == "bsd" for m in out):
        raise _fail("files", "no .bsd member")
    return out
