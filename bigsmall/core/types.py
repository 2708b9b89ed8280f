"""Frozen value types of the core.

Why frozen attrs: every stage (parse, plan, encode, index) hands values to the next; immutable
values can be shared across threads and property-tested without defensive copies.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from .dtypes import DTYPES, DTypeInfo


def _tuple_int(v: Any) -> tuple[int, ...]:
    # map, not a generator expression: ~2x faster, and an index of many tensors converts two
    # tuples per tensor (``bigsmall.open`` on a 936-tensor file spent 9 ms here)
    return tuple(map(int, v))


@attrs.frozen
class TensorSpec:
    """One tensor as the source safetensors header describes it."""

    name: str
    dtype: str
    shape: tuple[int, ...] = attrs.field(converter=_tuple_int)
    begin: int = 0  # byte offsets inside the source file's data section
    end: int = 0
    file: int = 0  # index of the source file in Container.files

    @property
    def info(self) -> DTypeInfo:
        return DTYPES[self.dtype]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def matrix(self) -> tuple[int, int]:
        """(rows, cols) view used for context modelling: first axis x the rest."""
        if len(self.shape) >= 2 and self.shape[0] > 0:
            return self.shape[0], self.numel // self.shape[0]
        return 1, max(self.numel, 1)


@attrs.frozen
class Receipt:
    """Checksum of original bytes: ``algo`` is 'xxh3_128' (tensors) or 'sha256' (files)."""

    algo: str
    digest: str  # lowercase hex


@attrs.frozen
class TensorPlan:
    """The codec chosen for one tensor, its JSON parameters and its side information."""

    codec: str
    params: dict[str, Any] = attrs.field(factory=dict, hash=False)
    head: bytes = b""  # side information stored at the start of the blob
    chunks: tuple[bytes, ...] = ()  # independently decodable coded chunks

    @property
    def coded_size(self) -> int:
        return len(self.head) + sum(len(c) for c in self.chunks)


@attrs.frozen
class TensorEntry:
    """One tensor in a container's index: what it is, how it is coded, where its blob lies."""

    spec: TensorSpec
    codec: str
    params: dict[str, Any] = attrs.field(hash=False)
    offset: int  # absolute offset of the blob in the container file
    head_len: int
    chunk_lens: tuple[int, ...] = attrs.field(converter=_tuple_int)
    receipt: Receipt
    layer: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def length(self) -> int:
        return self.head_len + sum(self.chunk_lens)


@attrs.frozen
class FileEntry:
    """A file of the source model: a safetensors file (header kept verbatim) or another file."""

    path: str  # relative, '/'-separated
    kind: str  # 'safetensors' | 'blob'
    size: int
    receipt: Receipt
    header: bytes = b""  # safetensors: the first 8 + header_len bytes, verbatim
    blob: tuple[int, int] | None = None  # 'blob' files: (offset, length) of their zstd frame
    codec: str = "zstd"


@attrs.frozen
class Container:
    """The parsed index of a ``.bs`` file."""

    version: tuple[int, int]
    files: tuple[FileEntry, ...]
    tensors: tuple[TensorEntry, ...]
    meta: dict[str, Any] = attrs.field(factory=dict, hash=False)

    def by_name(self) -> dict[str, TensorEntry]:
        """Every tensor under its key ``"file::name"``, and under its plain name where that name
        is held by one file only (see :func:`tensor_keys`)."""
        return tensor_keys(self.files, self.tensors)[0]

    def ambiguous_names(self) -> frozenset[str]:
        """Plain names held by more than one file: they must be asked for as ``"file::name"``."""
        return tensor_keys(self.files, self.tensors)[1]

    def key(self, entry: TensorEntry) -> str:
        """The shortest key that names ``entry`` unambiguously: its plain name where unique."""
        if entry.name in self.ambiguous_names():
            return qualified_key(self.files[entry.spec.file].path, entry.name)
        return entry.name


#: separates a member file's path from a tensor's name in a qualified key
KEY_SEP = "::"


def qualified_key(path: str, name: str) -> str:
    """``"2_Dense/model.safetensors::linear.weight"``: a tensor addressed by (file, name).

    Why: a folder container holds several safetensors files, and separate modules (a
    sentence-transformers folder's ``2_Dense`` and ``3_Dense``) each name their weight
    ``linear.weight``. A name is unique only within its file."""
    return f"{path}{KEY_SEP}{name}"


def tensor_keys(files: tuple[FileEntry, ...] | list[FileEntry],
                tensors: tuple[TensorEntry, ...] | list[TensorEntry],
                ) -> tuple[dict[str, TensorEntry], frozenset[str]]:
    """({key: entry}, ambiguous plain names) for an index.

    Keys: ``"file::name"`` for every tensor, plus the plain name for each name held by one file
    (what every caller used before files had namespaces, and what a single-file model has).
    A tensor whose file index is out of range gets no qualified key (the schema rejects that
    index before anything looks tensors up)."""
    counts: dict[str, int] = {}
    for t in tensors:
        counts[t.name] = counts.get(t.name, 0) + 1
    out: dict[str, TensorEntry] = {}
    for t in tensors:
        if counts[t.name] == 1:
            out[t.name] = t
        if 0 <= t.spec.file < len(files):
            out.setdefault(qualified_key(files[t.spec.file].path, t.name), t)
    return out, frozenset(n for n, c in counts.items() if c > 1)
