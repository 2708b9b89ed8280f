"""Mutations of the fuzzer (``benchmarks/fuzz.py``): a pure function of (seed bytes, rng).

Two families. Blind byte mutations (bit flips, overwritten runs, truncation, appended bytes)
find what any corruption does, but almost all of them die at the first checksum. The
structure-aware ones get past the checksums on purpose, because a file can be *made*
hostile: header fields rewritten and the header checksum recomputed; the index JSON decoded,
changed (hostile values, deleted keys, duplicated or swapped entries, codec parameters, paths)
and stored again with its digest and the header recomputed; zstd frame headers of blobs
flipped; blob payloads flipped so that only a tensor's receipt can catch it.

Every mutation returns ``(bytes, description)``; the description is enough to redo it by hand
and is what a regression vector's json records.
"""

from __future__ import annotations

import copy
import json
import random
import re
import struct
from typing import Any

import xxhash
import zstandard

MAGIC = b"\x89BSM\r\n\x1a\n"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
HDR = struct.Struct("<8sHHIQQQ16s")

HOSTILE: tuple[Any, ...] = (
    -1, 0, 1, 2, 7, 255, 2**31, 2**32 + 1, 2**53 + 1, 2**63, 2**64, -2**63, 10**30, -10**30,
    0.5, -0.0, 1e308, float("nan"), float("inf"), float("-inf"), "", "x", "-1", "\ud800",
    [], [0], [-1], [1, 2, 3], [[1]], {}, {"a": 1}, None, True, False,
)
EVIL_PATHS = (".", "..", "/abs", "", "a/../../x", "a\u0000b", "\ud800", "../x", "./", "a/", "//",
              "con", " ", "x" * 300, "sub/../..", "/")
PARAM_KEYS = ("layout", "grid", "matrix", "prob_bits", "mprob_bits", "lanes", "chunk", "planes",
              "value", "of", "row_shift", "row_shifts", "nrows", "table", "width", "inner",
              "cols", "rows", "ctx", "clusters")
_PARAM_SET = frozenset(PARAM_KEYS)  # a path's int indexes never match it


# ---------------------------------------------------------------- container structure

def header(data: bytes) -> dict[str, int]:
    """The fields of a container header (no checks: the seed is known good)."""
    _m, major, minor, flags, ioff, ilen, flen, _d = HDR.unpack_from(data, 0)
    return {"major": major, "minor": minor, "flags": flags, "ioff": ioff, "ilen": ilen, "flen": flen}


def pack_header(ioff: int, ilen: int, flen: int, digest: bytes, flags: int = 1,
                version: tuple[int, int] = (1, 2)) -> bytes:
    """``bigsmall.container.format.pack_header``, restated so that values out of range (a
    negative or >64-bit field cannot be packed) are wrapped instead of raising."""
    body = HDR.pack(MAGIC, version[0] & 0xFFFF, version[1] & 0xFFFF, flags & 0xFFFFFFFF,
                    ioff % 2**64, ilen % 2**64, flen % 2**64, digest)
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


def index_doc(data: bytes) -> Any:
    h = header(data)
    raw = data[h["ioff"] : h["ioff"] + h["ilen"]]
    if h["flags"] & 1:
        raw = zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 26)
    return json.loads(raw)


def reseal(data: bytes, doc: Any, rng: random.Random) -> bytes:
    """``data`` with its index replaced by ``doc`` and every checksum recomputed: the file is
    well-formed at the byte level, so only the reader's checks on the index's *content* stand
    between the doc and the decoders. Sometimes ASCII-escaped (lone surrogates survive only
    there), sometimes stored without zstd (flag bit 0 off)."""
    h = header(data)
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    ascii_only = _SURROGATE.search(text) is not None or rng.random() < 0.3
    if ascii_only:
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=True)
    raw = text.encode("utf-8")
    flags = h["flags"]
    if rng.random() < 0.1:
        stored, flags = raw, flags & ~1
    else:
        stored = zstandard.ZstdCompressor(level=3).compress(raw)
    body = data[64 : h["ioff"]] + stored
    return pack_header(h["ioff"], len(stored), 64 + len(body), xxhash.xxh3_128_digest(stored),
                       flags, (h["major"], h["minor"])) + body


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(x: Any) -> bool:
    """Whether any string (key or value) of ``x`` holds a surrogate code point (a regex per
    string: the character loop it replaces was a third of the time of making a mutant)."""
    if isinstance(x, str):
        return _SURROGATE.search(x) is not None
    if isinstance(x, list):
        return any(_has_surrogate(v) for v in x)
    if isinstance(x, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in x.items())
    return False


def paths(x: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node of a JSON document, as a key/index path (the root excluded)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(x, dict):
        for k, v in x.items():
            out.append((*prefix, k))
            out.extend(paths(v, (*prefix, k)))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out.append((*prefix, i))
            out.extend(paths(v, (*prefix, i)))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(doc, path[:-1])[path[-1]] = value


def _hostile(rng: random.Random, old: Any) -> Any:
    """A hostile replacement for ``old``: often a near miss of its own type (off by one,
    negated, doubled), else anything from ``HOSTILE``."""
    if isinstance(old, bool) or not isinstance(old, (int, float)) or rng.random() < 0.5:
        v = rng.choice(HOSTILE)
        return copy.deepcopy(v)
    return rng.choice([old + 1, old - 1, -old, old * 2, old // 2 if isinstance(old, int) else old / 2,
                       old + 2**32, ~old if isinstance(old, int) else -old, 0])


# ---------------------------------------------------------------- byte mutations

def bitflip(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    b = bytearray(data)
    n = rng.choice((1, 1, 1, 2, 4, 16))
    where = []
    for _ in range(n):
        i = _offset(data, rng)
        bit = rng.randrange(8)
        b[i] ^= 1 << bit
        where.append(f"{i}.{bit}")
    return bytes(b), f"bitflip {','.join(where)}"


def _offset(data: bytes, rng: random.Random) -> int:
    """A byte offset, biased towards the header and the index (the first checks)."""
    r = rng.random()
    if r < 0.2:
        return rng.randrange(min(64, len(data)))
    if r < 0.4 and len(data) > 64:
        ioff = header(data)["ioff"] if data[:8] == MAGIC and len(data) >= 64 else 0
        if 64 <= ioff < len(data):
            return rng.randrange(ioff, len(data))
    return rng.randrange(len(data))


def overwrite(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    b = bytearray(data)
    i = _offset(data, rng)
    n = rng.choice((1, 2, 4, 8, 32, 256))
    fill = rng.choice(("zero", "ff", "random"))
    for k in range(i, min(len(b), i + n)):
        b[k] = 0 if fill == "zero" else 0xFF if fill == "ff" else rng.randrange(256)
    return bytes(b), f"overwrite {i}+{n} {fill}"


def truncate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    n = rng.choice((0, 1, 7, 8, 63, 64, rng.randrange(len(data)), len(data) - 1, len(data) - 8))
    n = max(0, min(len(data), n))
    return data[:n], f"truncate {n}"


def append(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    n = rng.choice((1, 8, 64, 4096))
    extra = bytes(rng.randrange(256) for _ in range(n)) if rng.random() < 0.5 else bytes(n)
    return data + extra, f"append {n}"


def cut(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Remove or insert bytes in the middle: every offset after it moves."""
    i = rng.randrange(len(data))
    n = rng.choice((1, 4, 64))
    if rng.random() < 0.5:
        return data[:i] + data[i + n :], f"delete {i}+{n}"
    return data[:i] + bytes(rng.randrange(256) for _ in range(n)) + data[i:], f"insert {i}+{n}"


BYTE_MUTATIONS = {"bitflip": bitflip, "overwrite": overwrite, "truncate": truncate,
                  "append": append, "cut": cut}


# ---------------------------------------------------------------- container-aware mutations

def header_field(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One header field rewritten, the header checksum recomputed."""
    h = header(data)
    field = rng.choice(("major", "minor", "flags", "ioff", "ilen", "flen", "digest"))
    size = len(data)
    choices = {
        "major": [0, 2, 255, 65535], "minor": [0, 1, 3, 99, 65535], "flags": [0, 2, 3, 0xFFFFFFFF],
        "ioff": [0, 63, 64, h["ioff"] - 1, h["ioff"] + 1, size, size + 1, 2**63, 2**64 - 1],
        "ilen": [0, 1, h["ilen"] - 1, h["ilen"] + 1, size, 2**63, 2**64 - 1],
        "flen": [0, 64, size - 1, size + 1, 2**63, 2**64 - 1],
    }
    digest = xxhash.xxh3_128_digest(data[h["ioff"] : h["ioff"] + h["ilen"]])
    if field == "digest":
        digest = bytes(16)
        value: Any = "zeros"
    else:
        value = rng.choice(choices[field])
        h[field] = value
    head = pack_header(h["ioff"], h["ilen"], h["flen"], digest, h["flags"], (h["major"], h["minor"]))
    return head + data[64:], f"header {field}={value}"


def _tensor_paths(doc: Any) -> list[int]:
    return list(range(len(doc.get("tensors", []))))


def index_value(doc: Any, rng: random.Random) -> str:
    """Any node of the index replaced by a hostile value (or deleted)."""
    ps = paths(doc)
    weights = [1.0 if _PARAM_SET.isdisjoint(p) and "blob" not in p else 4.0 for p in ps]
    p = rng.choices(ps, weights)[0]
    if rng.random() < 0.2:
        parent = _get(doc, p[:-1])
        del parent[p[-1]]
        return f"index del {_fmt(p)}"
    new = _hostile(rng, _get(doc, p))
    _set(doc, p, new)
    return f"index {_fmt(p)}={_short(new)}"


def _fmt(p: tuple[Any, ...]) -> str:
    return "/".join(str(k) for k in p)


def _short(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=True)
    return s if len(s) <= 40 else s[:37] + "..."


def _num(x: Any) -> bool:
    """Whether ``x`` takes arithmetic (a second change of a mutant may meet a hostile value
    that the first one put there)."""
    return isinstance(x, (int, float))


def index_params(doc: Any, rng: random.Random) -> str:
    """Codec parameters changed the way a hostile writer would: layout widths moved between
    the exponent and mantissa fields with their sum kept (a negative mantissa width), grid /
    matrix / probability bits / lanes / chunk values bent, chunk lengths shuffled (their sum
    kept, so the blob length still matches)."""
    ts = [i for i, t in enumerate(doc["tensors"]) if isinstance(t.get("params"), dict)]
    i = rng.choice(ts)
    t = doc["tensors"][i]
    params = t["params"]
    keys = [k for k in params]
    what = rng.random()
    if "layout" in params and isinstance(params["layout"], list) and len(params["layout"]) == 4 and what < 0.3 \
            and all(_num(x) for x in params["layout"]):
        lay = list(params["layout"])
        k = rng.choice((1, 2, 3, lay[3] + 1, lay[3] + 4, -1, -2))
        lay[2], lay[3] = lay[2] + k, lay[3] - k
        if rng.random() < 0.3:
            j = rng.randrange(4)
            lay[j] = _hostile(rng, lay[j])
        params["layout"] = lay
        return f"params {t['name']} layout={lay}"
    if what < 0.45 and isinstance(t["blob"], list) and len(t["blob"]) == 3 and isinstance(t["blob"][2], list) \
            and len(t["blob"][2]) > 1:
        lens = list(t["blob"][2])
        rng.shuffle(lens)
        if lens == t["blob"][2]:
            lens = lens[1:] + lens[:1]
        t["blob"][2] = lens
        return f"params {t['name']} chunk_lens shuffled={_short(lens)}"
    if what < 0.55 and isinstance(t["blob"], list) and len(t["blob"]) == 3 and isinstance(t["blob"][2], list) \
            and t["blob"][2] and _num(t["blob"][1]) and all(_num(x) for x in t["blob"][2]):
        lens = list(t["blob"][2])
        j = rng.randrange(len(lens))
        d = rng.choice((1, 2, 8, -1))
        lens[j] += d
        t["blob"][1] -= d  # the head gives the bytes back: the total stays
        t["blob"][2] = lens
        return f"params {t['name']} head/chunk split moved by {d}"
    if not keys:
        params["chunk"] = _hostile(rng, 1)
        return f"params {t['name']} chunk={_short(params['chunk'])}"
    k = rng.choice(keys)
    old = params[k]
    if isinstance(old, list) and old and rng.random() < 0.6:
        j = rng.randrange(len(old))
        old[j] = _hostile(rng, old[j])
        return f"params {t['name']} {k}[{j}]={_short(old[j])}"
    params[k] = _hostile(rng, old)
    return f"params {t['name']} {k}={_short(params[k])}"


def index_entries(doc: Any, rng: random.Random) -> str:
    """Whole entries duplicated, swapped, dropped, or their fields exchanged; codecs and dtypes
    swapped for others of the same file; blob offsets moved; receipts copied from another."""
    ts = doc["tensors"]
    i, j = rng.randrange(len(ts)), rng.randrange(len(ts))
    what = rng.choice(("dup", "dup-renamed", "swap", "drop", "field-swap", "codec", "dtype",
                       "shape", "blob-move", "ref", "layer", "receipt"))
    a, b = ts[i], ts[j]
    if what == "dup":
        ts.insert(j, copy.deepcopy(a))
    elif what == "dup-renamed":
        c = copy.deepcopy(a)
        c["name"] = a["name"] + ".copy"
        ts.append(c)
    elif what == "swap":
        ts[i], ts[j] = b, a
    elif what == "drop":
        del ts[i]
    elif what == "field-swap":
        k = rng.choice(("codec", "params", "blob", "xxh3", "dtype", "shape", "offsets", "name", "file"))
        a[k], b[k] = b.get(k), a.get(k)
        what += f" {k}"
    elif what == "codec":
        a["codec"] = rng.choice(("raw", "const", "lut", "zstd", "field", "field8", "fieldp", "ref", "nope"))
        what += f" {a['codec']}"
    elif what == "dtype":
        a["dtype"] = rng.choice(("F32", "F16", "BF16", "I32", "U8", "BOOL", "F8_E4M3", "F8_E5M2", "F64",
                                 "I64", "C64", "F4", "F6_E2M3", "F8_E8M0"))
        what += f" {a['dtype']}"
    elif what == "shape":
        a["shape"] = rng.choice(([], [0], [-1], [2**62, 4], list(reversed(a["shape"])), a["shape"] + [1],
                                 [1] + a["shape"], [3, -3], [2**32, 2**32]))
        what += f" {a['shape']}"
    elif what == "blob-move":
        d = rng.choice((-65, -64, -8, -1, 1, 8, 4096, 2**40))
        a["blob"][0] += d
        what += f" {d}"
    elif what == "ref":
        a["codec"] = "ref"
        a["params"] = {"of": rng.choice((b["name"], a["name"], "missing", None, 0))}
        what += f" of={_short(a['params']['of'])}"
    elif what == "layer":
        a["layer"] = _hostile(rng, a.get("layer") or 0)
        what += f" {_short(a['layer'])}"
    else:
        a["xxh3"] = b["xxh3"]
    return f"entries {what} {a.get('name')!r}/{b.get('name')!r}"


def index_files(doc: Any, rng: random.Random) -> str:
    """File paths, the stored name and the root kind set to what a hostile writer would put
    there: ".", "..", absolute paths, NUL bytes, lone surrogates, ..."""
    what = rng.random()
    meta = doc.setdefault("meta", {})
    if what < 0.35:
        meta["name"] = rng.choice(EVIL_PATHS)
        return f"meta name={_short(meta['name'])}"
    if what < 0.45:
        meta["root"] = rng.choice(("folder", "file", "", None, 1))
        return f"meta root={_short(meta['root'])}"
    files = doc["files"]
    f = rng.choice(files)
    if what < 0.85:
        f["path"] = rng.choice(EVIL_PATHS)
        return f"files path={_short(f['path'])}"
    if what < 0.92 and len(files) > 1:
        f["path"] = rng.choice([g["path"] for g in files if g is not f])
        return f"files duplicate path {f['path']!r}"
    k = rng.choice(list(f))
    f[k] = _hostile(rng, f[k])
    return f"files {k}={_short(f[k])}"


INDEX_MUTATIONS = {"index-value": index_value, "index-params": index_params,
                   "index-entries": index_entries, "index-files": index_files}


def zstd_frames(data: bytes) -> list[int]:
    """Offsets of zstd frames in the blob area (tensor heads, zstd-coded chunks, file blobs)."""
    ioff = header(data)["ioff"]
    out, pos = [], data.find(ZSTD_MAGIC, 64, ioff)
    while pos != -1:
        out.append(pos)
        pos = data.find(ZSTD_MAGIC, pos + 1, ioff)
    return out


def zstd_header(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A bit of a zstd frame header flipped (the frame header descriptor, window descriptor or
    content size): zstd may then ask for a huge window or lie about the content size."""
    frames = zstd_frames(data)
    if not frames:
        return bitflip(data, rng)
    pos = rng.choice(frames)
    i = pos + 4 + rng.choice((0, 0, 1, 2, 3, 4, 5))
    bit = rng.choice((7, 7, 6, 5, 2, 0, rng.randrange(8)))
    b = bytearray(data)
    b[i] ^= 1 << bit
    return bytes(b), f"zstd frame@{pos} byte+{i - pos} bit {bit}"


def blob_payload(data: bytes, rng: random.Random, doc: Any) -> tuple[bytes, str]:
    """Bits flipped inside one tensor's stored blob: the decoders see well-formed structure
    but wrong content, so only the tensor's receipt (or a kernel's own bound) can catch it."""
    ts = [t for t in doc["tensors"] if t.get("codec") != "ref" and sum(t["blob"][2]) + t["blob"][1] > 0]
    t = rng.choice(ts)
    off, head, lens = t["blob"]
    lo, n = (off, head) if head and rng.random() < 0.3 else (off + head, sum(lens) or head)
    if n <= 0:
        lo, n = off, head + sum(lens)
    b = bytearray(data)
    flips = []
    for _ in range(rng.choice((1, 1, 2, 8))):
        i = lo + rng.randrange(n)
        bit = rng.randrange(8)
        b[i] ^= 1 << bit
        flips.append(f"{i}.{bit}")
    return bytes(b), f"blob {t['name']} ({t['codec']}) {','.join(flips)}"


# ---------------------------------------------------------------- entry

CONTAINER_KINDS = (("bitflip", 10), ("overwrite", 5), ("truncate", 4), ("append", 2), ("cut", 2),
                   ("header", 6), ("index-value", 18), ("index-params", 18), ("index-entries", 12),
                   ("index-files", 10), ("zstd-header", 6), ("blob-payload", 7))


def mutate_container(data: bytes, rng: random.Random) -> tuple[str, bytes, str]:
    """One mutant of a good container: (kind, bytes, description)."""
    kinds, weights = zip(*CONTAINER_KINDS, strict=True)
    kind = rng.choices(kinds, weights)[0]
    if kind in BYTE_MUTATIONS:
        out, desc = BYTE_MUTATIONS[kind](data, rng)
    elif kind == "header":
        out, desc = header_field(data, rng)
    elif kind == "zstd-header":
        out, desc = zstd_header(data, rng)
    elif kind == "blob-payload":
        out, desc = blob_payload(data, rng, index_doc(data))
    else:
        doc = index_doc(data)
        desc = INDEX_MUTATIONS[kind](doc, rng)
        if rng.random() < 0.25:  # a second change of the same kind: combinations
            try:  # the first change may have left a value the second cannot work on
                desc += "; " + INDEX_MUTATIONS[kind](doc, rng)
            except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
                desc += f"; (second change failed: {type(exc).__name__})"
        out = reseal(data, doc, rng)
    return kind, out, desc


# ---------------------------------------------------------------- safetensors (compress input)

def _st_parts(data: bytes) -> tuple[Any, bytes]:
    (n,) = struct.unpack_from("<Q", data, 0)
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _st_join(doc: Any, body: bytes, rng: random.Random, raw: bytes | None = None) -> bytes:
    hb = raw if raw is not None else json.dumps(doc, separators=(",", ":"),
                                                ensure_ascii=rng.random() < 0.5 or _has_surrogate(doc)).encode()
    if rng.random() < 0.7:
        hb += b" " * ((8 - len(hb) % 8) % 8)
    return struct.pack("<Q", len(hb)) + hb + body


def mutate_safetensors(data: bytes, rng: random.Random) -> tuple[str, bytes, str]:
    """One malformed ``compress`` input: header values (lengths, offsets, dtypes, shapes,
    names with lone surrogates, metadata), the length prefix, JSON garbage, or blind bytes."""
    doc, body = _st_parts(data)
    names = [k for k in doc if k != "__metadata__"]
    r = rng.random()
    if r < 0.2:
        kind = "st-bytes"
        k = rng.choice(("bitflip", "overwrite", "truncate", "append", "cut"))
        out, desc = BYTE_MUTATIONS[k](data, rng)
        return kind, out, desc
    if r < 0.3:
        (n,) = struct.unpack_from("<Q", data, 0)
        v = rng.choice((0, 1, 2, n - 1, n + 1, n + 8, len(data), len(data) - 7, 2**63, 2**64 - 1, 2**32))
        return "st-length", struct.pack("<Q", v % 2**64) + data[8:], f"length prefix {v}"
    if r < 0.4:
        (n,) = struct.unpack_from("<Q", data, 0)
        hb = bytearray(data[8 : 8 + n])
        garbage = rng.choice((b"{", b"}", b"\x00", b"\xff", b"\\ud800", b'"', b"[", b"NaN", b"1e999"))
        i = rng.randrange(len(hb))
        hb[i : i + 1] = garbage
        return "st-json", _st_join(None, body, rng, bytes(hb)), f"json garbage {garbage!r} at {i}"
    kind = "st-header"
    name = rng.choice(names)
    t = doc[name]
    what = rng.choice(("offsets", "dtype", "shape", "name", "value", "metadata", "dup", "drop", "extra"))
    if what == "offsets":
        o = t["data_offsets"]
        t["data_offsets"] = rng.choice(([o[1], o[0]], [o[0], o[1] + 1], [o[0] - 1, o[1]], [-1, o[1]],
                                        [0, 2**63], [o[0]], [o[0], o[1], 0], [o[0] + 0.5, o[1]],
                                        [0, len(body) + 8], [o[0], o[1] - 1]))
        desc = f"{name} offsets={t['data_offsets']}"
    elif what == "dtype":
        t["dtype"] = rng.choice(("F32", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "F4", "F6_E2M3",
                                 "C64", "f32", "", "X", 5, None))
        desc = f"{name} dtype={t['dtype']!r}"
    elif what == "shape":
        t["shape"] = rng.choice(([], [-1], [0], [2**63], [2**31, 2**31], ["4"], [1.5], None,
                                 list(reversed(t["shape"])), t["shape"] + [1], [3, -3]))
        desc = f"{name} shape={t['shape']!r}"
    elif what == "name":
        new = rng.choice(("\ud800", "a\ud800b", "", "__metadata__", "a\u0000b", "\udfff\ud800",
                          "x" * 10000, "é", "../x"))
        doc[new] = doc.pop(name)
        desc = f"rename {name!r} -> {_short(new)}"
    elif what == "value":
        k = rng.choice(list(t))
        t[k] = _hostile(rng, t[k])
        desc = f"{name} {k}={_short(t[k])}"
    elif what == "metadata":
        doc["__metadata__"] = rng.choice(({"a": 1}, {"a": None}, [], "x", {"\ud800": "x"}, None, {"k": "\ud800"}))
        desc = f"metadata={_short(doc['__metadata__'])}"
    elif what == "dup":
        other = rng.choice(names)
        doc[other] = copy.deepcopy(t)
        desc = f"{other} := copy of {name}"
    elif what == "drop":
        del doc[name]
        desc = f"drop {name}"
    else:
        t[rng.choice(("extra", "dtype2"))] = rng.choice((1, "x", None))
        desc = f"{name} extra key"
    return kind, _st_join(doc, body, rng), desc
