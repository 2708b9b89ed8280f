"""One validation of a container's index document, before anything else looks at it.

Why one place: the index checksums are unkeyed, so they prove that the index was not damaged,
not who wrote it. A stranger's ``.bs`` can carry any index that passes them, and everything
downstream (the planner of a restore, the kernels' parameters, output paths, buffer sizes)
trusts what the index says. So every field is checked here, on the parsed JSON, for type
(an ``int`` is an ``int``: no bool, float, string or list in its place), range (no negative
sizes, nothing past 2**62, offsets inside the blob region), finiteness (``NaN``/``Infinity``
are refused by the parser) and cross-field consistency (a tensor's byte span agrees with its
dtype and shape, every safetensors member's tensors agree with its verbatim header, member
paths are safe relative paths). Codec-specific parameters are then checked by each codec's
``prepare`` before any kernel runs. Pure: no I/O; every failure is a ``FormatError`` that says
where in the index the problem is.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from ..core.dtypes import DTYPES
from ..core.safetensors_header import MAX_DIM, MAX_DIMS
from ..errors import FormatError

MAX_INT = MAX_DIM
"""Largest byte count, offset or dimension accepted: far beyond any real file, small enough
that sums and products of a few of them stay exact in int64 kernels and numpy (the same bound
``compress`` puts on a safetensors dimension, so whatever it accepts can be read back)."""
MAX_PATH = 4096
MAX_INDEX_BYTES = 1 << 28
"""Decompressed index size cap (256 MiB): ~1 million tensors; a zstd bomb stops here."""

_HEX32 = re.compile(r"[0-9a-f]{32}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_FILE_KINDS = ("safetensors", "blob")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def fail(where: str, what: str) -> NoReturn:
    raise FormatError(f"container index malformed: {where}: {what}")


# ---------------------------------------------------------------- parsing

def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:  # two readers could pick different values: refuse the ambiguity
            fail("JSON", f"duplicate key {key!r}")
        out[key] = value
    return out


def _bad_constant(name: str) -> NoReturn:
    fail("JSON", f"{name} is not a number this format uses")


def _finite_float(text: str) -> float:
    v = float(text)
    if v != v or v in (float("inf"), float("-inf")):  # 1e400 parses to inf
        fail("JSON", f"number {text[:40]} is not finite")
    return v


def load_json(raw: bytes) -> Any:
    """The index JSON (UTF-8) parsed strictly: no NaN/Infinity, no duplicate keys, no lone
    surrogates in any string, bounded nesting."""
    try:
        text = raw.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_bad_constant,
                         parse_float=_finite_float)
    except UnicodeDecodeError as exc:
        fail("JSON", f"not UTF-8 ({exc.reason} at byte {exc.start})")
    except json.JSONDecodeError as exc:
        fail("JSON", f"{exc.msg} at byte {exc.pos}")
    except RecursionError:
        fail("JSON", "nested too deeply")
    if _SURROGATE_ESCAPE.search(text):  # only a \\uD800-\\uDFFF escape can make one
        _check_strings(doc, "index", 0)
    return doc


def _check_strings(v: Any, where: str, depth: int) -> None:
    """Every string (keys included) encodes to UTF-8: ``\\ud800`` escapes parse to lone
    surrogates that later fail as UnicodeEncodeError in a path or a message."""
    if depth > 32:
        fail(where, "nested too deeply")
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            fail(where, "string holds a lone surrogate (not valid Unicode)")
    elif isinstance(v, dict):
        for k, x in v.items():
            _check_strings(k, where, depth + 1)
            _check_strings(x, f"{where}.{k}" if len(where) < 200 else where, depth + 1)
    elif isinstance(v, list):
        for x in v:
            _check_strings(x, where, depth + 1)


# ---------------------------------------------------------------- field checks

def is_int(v: Any) -> bool:
    return type(v) is int  # not bool, not a float that happens to be whole


def get(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        fail(where, f"missing {key!r}")
    return d[key]


def int_in(v: Any, where: str, lo: int = 0, hi: int = MAX_INT) -> int:
    if not is_int(v):
        fail(where, f"expected an integer, got {_show(v)}")
    if v < 0 <= lo:
        fail(where, f"negative value {v}")
    if not lo <= v <= hi:
        fail(where, f"{v} is outside [{lo}, {hi}]")
    return int(v)


def str_of(v: Any, where: str) -> str:
    if not isinstance(v, str):
        fail(where, f"expected a string, got {_show(v)}")
    return v


def list_of(v: Any, where: str, n: int | None = None) -> list[Any]:
    if not isinstance(v, list):
        fail(where, f"expected a list, got {_show(v)}")
    if n is not None and len(v) != n:
        fail(where, f"expected {n} items, got {len(v)}")
    return v


def dict_of(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        fail(where, f"expected an object, got {_show(v)}")
    return v


def _show(v: Any) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def check_member_path(path: Any, where: str) -> str:
    """A member path as an archive extractor would accept it: relative, '/'-separated,
    normalised (no empty, '.' or '..' component), no NUL, backslash or other control
    character. Restoring it can then only ever create a file inside the output folder."""
    p = str_of(path, where)
    if not p or len(p) > MAX_PATH:
        fail(where, f"path {p!r} is empty or too long")
    if p.startswith("/") or any(ord(ch) < 32 or ch in "\\\x7f" for ch in p):
        fail(where, f"path {p!r} is absolute or holds a control character or backslash")
    if any(part in ("", ".", "..") for part in p.split("/")):
        fail(where, f"path {p!r} is not a normalised relative path")
    return p


def check_file_name(name: Any, where: str) -> str:
    """A single path component (a restored file's or folder's default name)."""
    n = check_member_path(name, where)
    if "/" in n:
        fail(where, f"name {n!r} holds a path separator")
    return n


def member_parts(paths: Sequence[Any], where: str = "files") -> list[tuple[str, ...]]:
    """Every member path checked (``check_member_path``) and split into its components; no
    path twice, and none both a file and a folder of another (``a`` and ``a/b``): restoring a
    folder then creates each file exactly once, inside the output. Linear in the number of
    components (a model folder may hold thousands of files)."""
    out = [tuple(check_member_path(p, f"{where}[{i}].path").split("/"))
           for i, p in enumerate(paths)]
    files: set[tuple[str, ...]] = set()
    for i, parts in enumerate(out):
        if parts in files:
            fail(f"{where}[{i}].path", f"{'/'.join(parts)!r} is stored twice")
        files.add(parts)
    for i, parts in enumerate(out):
        for k in range(1, len(parts)):
            if parts[:k] in files:
                fail(f"{where}[{i}].path", f"{'/'.join(parts[:k])!r} is both a file and the "
                                            f"folder of {'/'.join(parts)!r}")
    return out


# ---------------------------------------------------------------- the document

def check_doc(doc: Any, index_offset: int) -> None:
    """Validate the parsed index document of a container whose blobs end at
    ``index_offset`` (where the index starts). Raises FormatError; returns nothing: the
    caller then builds the ``Container`` from fields it may trust."""
    doc = dict_of(doc, "index")
    if doc.get("format") != "bigsmall":
        raise FormatError("index does not describe a bigsmall container")
    version = list_of(get(doc, "version", "index"), "version", 2)
    int_in(version[0], "version[0]", 1, 1)
    int_in(version[1], "version[1]", 0, 1 << 16)
    files = list_of(get(doc, "files", "index"), "files")
    tensors = list_of(get(doc, "tensors", "index"), "tensors")
    meta = dict_of(doc.get("meta", {}), "meta")
    member_parts([get(dict_of(f, f"files[{i}]"), "path", f"files[{i}]")
                  for i, f in enumerate(files)])
    for i, f in enumerate(files):
        _check_file(f, f"files[{i}]", index_offset)
    _check_meta(meta, len(files), len(tensors))
    if "base" in meta:
        check_base(meta["base"])
    for i, t in enumerate(tensors):
        _check_tensor(t, f"tensors[{i}]", files, index_offset, len(tensors), meta)


def _check_meta(meta: dict[str, Any], nfiles: int, ntensors: int) -> None:
    root = meta.get("root")
    if root not in (None, "file", "folder"):
        fail("meta.root", f"unknown root {_show(root)}")
    if root != "folder" and nfiles != 1:  # a missing root means "file" (spec §5.2)
        fail("meta.root", f"a single-file container lists {nfiles} files")
    if meta.get("name") is not None:
        check_file_name(meta["name"], "meta.name")
    if meta.get("writer") is not None:
        str_of(meta["writer"], "meta.writer")
    layers = list_of(meta.get("layers", []), "meta.layers")
    if len(layers) > max(ntensors, 1):
        fail("meta.layers", f"{len(layers)} layers for {ntensors} tensors")
    for j, key in enumerate(layers):
        key = list_of(key, f"meta.layers[{j}]", 2)
        str_of(key[0], f"meta.layers[{j}][0]")
        int_in(key[1], f"meta.layers[{j}][1]")


def _check_file(f: dict[str, Any], where: str, index_offset: int) -> None:
    """One ``files[]`` entry, its path already checked by ``member_parts``."""
    path = f["path"]
    kind = get(f, "kind", where)
    if kind not in _FILE_KINDS:
        fail(f"{where}.kind", f"unknown kind {_show(kind)}")
    size = int_in(get(f, "size", where), f"{where}.size")
    if not _HEX64.match(str_of(get(f, "sha256", where), f"{where}.sha256")):
        fail(f"{where}.sha256", "not 64 lowercase hex digits")
    if kind == "safetensors":
        text = str_of(get(f, "header", where), f"{where}.header")
        try:
            header = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            fail(f"{where}.header", "not valid base64")
        if not 8 <= len(header) <= size:
            fail(f"{where}.header", f"{len(header)} header bytes for a file of {size}")
    else:
        blob = list_of(get(f, "blob", where), f"{where}.blob", 2)
        off = int_in(blob[0], f"{where}.blob[0]")
        length = int_in(blob[1], f"{where}.blob[1]")
        _check_range(off, length, f"{where}.blob", index_offset)
        codec = f.get("codec", "zstd")
        if codec != "zstd":
            from ..errors import UnknownCodecError

            raise UnknownCodecError(f"file {path!r}: unknown file codec {_show(codec)}: this file "
                                    "needs a newer bigsmall")


def _check_range(off: int, length: int, where: str, index_offset: int) -> None:
    from .format import HEADER_SIZE

    if length and (off < HEADER_SIZE or off + length > index_offset):
        fail(where, f"byte range {off}+{length} lies outside the blob region "
                    f"[{HEADER_SIZE}, {index_offset})")


def _check_tensor(t: Any, where: str, files: list[dict[str, Any]], index_offset: int,
                  ntensors: int, meta: dict[str, Any]) -> None:
    t = dict_of(t, where)
    name = str_of(get(t, "name", where), f"{where}.name")
    where = f"tensor {name[:80]!r}"
    fi = get(t, "file", where)
    if not is_int(fi) or not 0 <= fi < len(files):
        fail(f"{where}.file", f"file index {fi!r:.40} out of range ({len(files)} files)")
    if files[fi].get("kind") != "safetensors":
        fail(f"{where}.file", f"file {fi} is not a safetensors member")
    dtype = get(t, "dtype", where)
    if not isinstance(dtype, str) or dtype not in DTYPES:
        fail(f"{where}.dtype", f"unknown dtype {_show(dtype)}")
    shape = list_of(get(t, "shape", where), f"{where}.shape")
    if len(shape) > MAX_DIMS:
        fail(f"{where}.shape", f"{len(shape)} dimensions")
    dims = [int_in(d, f"{where}.shape", 0, MAX_INT) for d in shape]
    numel = math.prod(dims)
    offs = list_of(get(t, "offsets", where), f"{where}.offsets", 2)
    begin = int_in(offs[0], f"{where}.offsets[0]")
    end = int_in(offs[1], f"{where}.offsets[1]")
    if begin > end:
        fail(f"{where}.offsets", f"data offsets [{begin}, {end}] end before they begin")
    if numel > MAX_INT or DTYPES[dtype].nbytes(numel) != end - begin:
        fail(f"{where}.offsets", f"[{begin}, {end}] do not match {dtype} shape {dims}")
    layer = t.get("layer")
    if layer is not None:
        int_in(layer, f"{where}.layer", 0, max(ntensors, len(meta.get("layers", [])), 1) - 1)
    codec = str_of(get(t, "codec", where), f"{where}.codec")
    params = dict_of(get(t, "params", where), f"{where}.params")
    if "chunk" in params:
        int_in(params["chunk"], f"{where}.params.chunk", 1 if codec != "const" else 0)
    blob = list_of(get(t, "blob", where), f"{where}.blob", 3)
    off = int_in(blob[0], f"{where}.blob[0]")
    head_len = int_in(blob[1], f"{where}.blob[1]")
    lens = list_of(blob[2], f"{where}.blob[2]")
    if len(lens) > max(end - begin, 1):  # a chunk holds at least one byte of output
        fail(f"{where}.blob[2]", f"{len(lens)} chunks for {end - begin} bytes")
    if all(type(n) is int and 0 <= n <= MAX_INT for n in lens):  # one pass, no message built
        total = head_len + sum(lens)
    else:  # the first bad length, reported as int_in words it
        total = head_len
        for k, n in enumerate(lens):
            total += int_in(n, f"{where}.blob[2][{k}]")
    _check_range(off, total, f"{where}.blob", index_offset)
    if not _HEX32.match(str_of(get(t, "xxh3", where), f"{where}.xxh3")):
        fail(f"{where}.xxh3", "not 32 lowercase hex digits")
    if codec in ("base", "delta"):  # a patch's tensor: coded against the base (io/delta.py)
        if "base" not in meta:
            fail(f"{where}.codec", f"{codec!r} in a container that names no base")
        str_of(params.get("of"), f"{where}.params.of")
        if codec == "base" and (off or total):
            fail(f"{where}.blob", "a base reference stores no bytes")
    if codec == "ref":
        str_of(params.get("of"), f"{where}.params.of")
        if off or total:
            fail(f"{where}.blob", "a reference stores no bytes")


# ---------------------------------------------------------------- ECC section (spec §20)

def check_ecc_geometry(core_length: int, block: int, k: int, m: int, stripes: int,
                       file_size: int) -> None:
    """An ECC metadata copy's geometry, before anything is read or allocated on its word:
    a power-of-two block of 512 B..16 MiB, a code of ``k + m <= 256`` blocks, exactly enough
    stripes for the core (``k`` tight), and a core and parity that fit twice the file's size
    (a repair may face a truncated file, never one a hundredfold shorter)."""
    where = "ECC metadata"
    if not (block >= 512 and block <= 1 << 24 and block & (block - 1) == 0):
        raise FormatError(f"{where}: block size {block} is not a power of two in 512..16 MiB")
    if not (1 <= k and 1 <= m and k + m <= 256):
        raise FormatError(f"{where}: code ({k} data + {m} parity blocks) is not one GF(2^8) code")
    if not (64 <= core_length <= MAX_INT and core_length <= 2 * file_size):
        raise FormatError(f"{where}: core length {core_length} does not fit a file of {file_size} bytes")
    d = -(-core_length // block)
    if not (1 <= stripes and (k - 1) * stripes < d <= k * stripes):
        raise FormatError(f"{where}: {stripes} stripes of {k} blocks do not tile {d} data blocks")
    if core_length + stripes * m * block + 16 * (d + stripes * m) > 2 * file_size:
        raise FormatError(f"{where}: its parity does not fit a file of {file_size} bytes")


def check_base(base: Any) -> None:
    """``meta.base`` of a patch (``io/delta.py``): the base's name, its files (path, size,
    sha256) and every base tensor the patch uses as [name, dtype, shape, xxh3-128]."""
    base = dict_of(base, "meta.base")
    str_of(base.get("name"), "meta.base.name")
    for i, f in enumerate(list_of(get(base, "files", "meta.base"), "meta.base.files")):
        where = f"meta.base.files[{i}]"
        f = dict_of(f, where)
        str_of(get(f, "path", where), f"{where}.path")
        int_in(get(f, "size", where), f"{where}.size")
        if not _HEX64.match(str_of(get(f, "sha256", where), f"{where}.sha256")):
            fail(f"{where}.sha256", "not 64 lowercase hex digits")
    for i, t in enumerate(list_of(get(base, "tensors", "meta.base"), "meta.base.tensors")):
        where = f"meta.base.tensors[{i}]"
        name, dtype, shape, digest = list_of(t, where, 4)
        str_of(name, f"{where}[0]")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            fail(f"{where}[1]", f"unknown dtype {_show(dtype)}")
        dims = list_of(shape, f"{where}[2]")
        if len(dims) > MAX_DIMS:
            fail(f"{where}[2]", f"{len(dims)} dimensions")
        for d in dims:
            int_in(d, f"{where}[2]")
        if not _HEX32.match(str_of(digest, f"{where}[3]")):
            fail(f"{where}[3]", "not 32 lowercase hex digits")
