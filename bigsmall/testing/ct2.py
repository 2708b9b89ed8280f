"""A reader of CTranslate2 binary (version 6) model files, with numpy only.

Why: two corpus models (Whisper tiny.en and base) ship only as CTranslate2 files, and the
``ctranslate2`` library is a large native dependency when all we need is the tensors. Every
field is validated; a corrupt file raises :class:`ValueError`. Conversion to safetensors is in
``convert.py``, to transformers' Whisper names in ``whisper_hf.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: CTranslate2 dtype code -> (name, numpy dtype). bf16 has no numpy dtype, so its variables are
#: returned as the raw ``uint16`` bit patterns; :attr:`Ct2Checkpoint.dtypes` says which they are.
CT2_DTYPES: dict[int, tuple[str, np.dtype[Any]]] = {
    0: ("f32", np.dtype("<f4")),
    1: ("i8", np.dtype("i1")),
    2: ("i16", np.dtype("<i2")),
    3: ("i32", np.dtype("<i4")),
    4: ("f16", np.dtype("<f2")),
    5: ("bf16", np.dtype("<u2")),
}


@dataclass(frozen=True)
class Ct2Checkpoint:
    """Everything a CTranslate2 v6 ``model.bin`` holds.

    ``variables`` maps the ``/``-separated names to arrays (bf16 ones as ``uint16`` bit patterns);
    ``dtypes`` maps the same names to the CTranslate2 dtype name (``"f32"``, ``"i8"``, ``"i16"``,
    ``"i32"``, ``"f16"``, ``"bf16"``), which is the only way to tell bf16 from a real ``uint16``;
    ``aliases`` maps alias -> target variable (tied weights are stored once).
    """

    spec_name: str
    revision: int
    variables: dict[str, np.ndarray] = field(repr=False)
    dtypes: dict[str, str]
    aliases: dict[str, str]


class _Cursor:
    """Bounds-checked little-endian reads, so a corrupt file raises ValueError, never IndexError."""

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        left = len(self.buf) - self.pos
        if n > left:
            raise ValueError(
                f"truncated CTranslate2 file: {what} needs {n} bytes at offset {self.pos}, "
                f"only {left} left"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "little")

    def string(self, what: str) -> str:
        n = self.uint(2, f"length of {what}")
        if n == 0:
            raise ValueError(f"{what} at offset {self.pos - 2} has length 0 (must count its NUL)")
        raw = bytes(self.take(n, what))
        if raw[-1] != 0:
            raise ValueError(f"{what} at offset {self.pos - n} does not end with NUL")
        body = raw[:-1]
        if b"\x00" in body:
            raise ValueError(f"{what} at offset {self.pos - n} contains an interior NUL")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{what} at offset {self.pos - n} is not UTF-8: {exc}") from None


def load_ct2(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> Ct2Checkpoint:
    """Parse a CTranslate2 binary version 6 model, from a path or from its bytes, with numpy only.

    Why not the ``ctranslate2`` library: it is a large native dependency and we only need the
    tensors. Accepting bytes lets split models (Whisper base ships as two parts) be parsed after
    concatenation without a temporary file. Every field is validated (version, string framing,
    dtype code, ``nbytes`` == product of dims * item size, duplicate names, alias targets, no
    trailing bytes) and any violation raises :class:`ValueError`.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf = memoryview(source).cast("B")
    else:
        buf = memoryview(Path(source).read_bytes())
    cur = _Cursor(buf)

    version = cur.uint(4, "version")
    if version != 6:
        raise ValueError(f"unsupported CTranslate2 binary version {version} (only 6 is supported)")
    spec_name = cur.string("spec name")
    revision = cur.uint(4, "spec revision")
    n_vars = cur.uint(4, "variable count")

    variables: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for i in range(n_vars):
        name = cur.string(f"name of variable {i}")
        if name in variables:
            raise ValueError(f"duplicate variable name {name!r}")
        rank = cur.uint(1, f"rank of {name!r}")
        dims = tuple(cur.uint(4, f"dim {d} of {name!r}") for d in range(rank))
        code = cur.uint(1, f"dtype of {name!r}")
        if code not in CT2_DTYPES:
            raise ValueError(f"variable {name!r} has unknown dtype code {code}")
        dtype_name, np_dtype = CT2_DTYPES[code]
        nbytes = cur.uint(4, f"byte count of {name!r}")
        count = 1
        for d in dims:
            count *= d
        if nbytes != count * np_dtype.itemsize:
            raise ValueError(
                f"variable {name!r}: byte count {nbytes} != {count} elements of shape {dims} "
                f"* {np_dtype.itemsize} bytes ({dtype_name})"
            )
        raw = cur.take(nbytes, f"data of {name!r}")
        # copy: aligned, writable, and independent of the (possibly large) file buffer
        variables[name] = np.frombuffer(raw, dtype=np_dtype, count=count).reshape(dims).copy()
        dtypes[name] = dtype_name

    n_aliases = cur.uint(4, "alias count")
    aliases: dict[str, str] = {}
    for i in range(n_aliases):
        alias = cur.string(f"alias {i}")
        target = cur.string(f"target of alias {alias!r}")
        if alias in variables or alias in aliases:
            raise ValueError(f"alias {alias!r} duplicates an existing name")
        if target not in variables:
            raise ValueError(f"alias {alias!r} points to unknown variable {target!r}")
        aliases[alias] = target

    if cur.pos != len(buf):
        raise ValueError(f"{len(buf) - cur.pos} trailing bytes after the alias table")
    return Ct2Checkpoint(spec_name, revision, variables, dtypes, aliases)


def read_ct2(
    path: str | os.PathLike[str],
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``(variables, aliases)`` of a CTranslate2 v6 file; see :func:`load_ct2`.

    bf16 variables come back as ``uint16`` bit patterns, indistinguishable here from integer data;
    call :func:`load_ct2` and look at ``Ct2Checkpoint.dtypes`` when that matters (no corpus model
    has bf16 variables).
    """
    ckpt = load_ct2(path)
    return ckpt.variables, ckpt.aliases
