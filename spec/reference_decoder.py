"""An independent decoder of container format 1.x (1.0 - 1.2), written from ``spec/FORMAT.md`` alone.

It imports nothing from ``bigsmall``: only the standard library, ``zstandard`` and ``xxhash``.
It is slow (pure Python, one element at a time) and meant for small files: its job is to prove
that the specification is complete, by decoding the golden vectors to their source bytes.

    python spec/reference_decoder.py FILE.bs OUTDIR     # restore every file into OUTDIR

Section numbers in comments refer to FORMAT.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import xxhash
import zstandard

MAGIC = b"\x89BSM\r\n\x1a\n"
KNOWN_MAJOR = 1
HEADER = struct.Struct("<8sHHIQQQ16s")
L = 1 << 16

# Appendix A: dtype -> (unit_bytes, bits)
DTYPES = {
    "BOOL": (1, 8), "U8": (1, 8), "I8": (1, 8), "U16": (2, 16), "I16": (2, 16), "U32": (4, 32),
    "I32": (4, 32), "U64": (8, 64), "I64": (8, 64), "F16": (2, 16), "BF16": (2, 16),
    "F32": (4, 32), "F64": (8, 64), "C64": (8, 64), "F8_E4M3": (1, 8), "F8_E5M2": (1, 8),
    "F8_E4M3FNUZ": (1, 8), "F8_E5M2FNUZ": (1, 8), "F8_E8M0": (1, 8), "F6_E2M3": (1, 6),
    "F6_E3M2": (1, 6), "F4": (1, 4),
}


class DecodeError(Exception):
    pass


class UnsupportedVersion(DecodeError):
    pass


class UnknownCodec(DecodeError):
    pass


def _zstd(data: bytes, limit: int = 1 << 31) -> bytes:
    return zstandard.ZstdDecompressor().decompress(data, max_output_size=limit)


# ------------------------------------------------------------------------- §3 header, §5 index

def read_container(buf: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    if len(buf) < 8 or buf[:8] != MAGIC:
        raise DecodeError("not a container")
    if len(buf) < 64:
        raise DecodeError("truncated")
    _, major, minor, flags, ioff, ilen, flen, idig = HEADER.unpack_from(buf, 0)
    if major != KNOWN_MAJOR:
        raise UnsupportedVersion(f"format {major}.{minor} (this decoder reads {KNOWN_MAJOR}.x)")
    (check,) = struct.unpack_from("<Q", buf, 56)
    if check != xxhash.xxh3_64_intdigest(buf[:56]):
        raise DecodeError("header checksum")
    if len(buf) < flen:
        raise DecodeError("truncated")
    if not (64 <= ioff <= flen and ioff + ilen <= flen):
        raise DecodeError("index range")
    stored = buf[ioff : ioff + ilen]
    if xxhash.xxh3_128_digest(stored) != idig:
        raise DecodeError("index digest")
    text = _zstd(stored) if flags & 1 else stored
    index = json.loads(text.decode("utf-8"))
    if index.get("format") != "bigsmall":
        raise DecodeError("not a bigsmall index")
    header = {"major": major, "minor": minor, "flags": flags, "file_length": flen}
    check_index(index, flen)
    return header, index


def check_index(index: dict[str, Any], flen: int) -> None:
    """The structural checks of §5.4."""
    by_name: dict[str, dict[str, Any]] = {}
    for t in index["tensors"]:
        if t["name"] in by_name:
            raise DecodeError(f"{t['name']}: listed twice")
        by_name[t["name"]] = t
        if t["dtype"] not in DTYPES or not 0 <= t["file"] < len(index["files"]):
            raise DecodeError(f"{t['name']}: unknown dtype or file")
        begin, end = t["offsets"]
        numel = 1
        for d in t["shape"]:
            numel *= d
        bits = DTYPES[t["dtype"]][1]
        if not 0 <= begin <= end or (numel * bits) % 8 or numel * bits // 8 != end - begin:
            raise DecodeError(f"{t['name']}: offsets do not match dtype and shape")
        off, head_len, lens = t["blob"]
        length = head_len + sum(lens)
        if head_len < 0 or min(lens, default=0) < 0 or (length and not (64 <= off and off + length <= flen)):
            raise DecodeError(f"{t['name']}: blob range")
    for t in index["tensors"]:
        cur, seen = t, {t["name"]}
        while cur["codec"] == "ref":
            nxt = by_name.get(cur["params"]["of"])
            if nxt is None or nxt["name"] in seen:
                raise DecodeError(f"{t['name']}: broken reference")
            seen.add(nxt["name"])
            cur = nxt
        if cur["offsets"][1] - cur["offsets"][0] != t["offsets"][1] - t["offsets"][0]:
            raise DecodeError(f"{t['name']}: reference to a tensor of another size")


# ------------------------------------------------------------------------- §14.3, §14.4 tables

def q_weight(q: int) -> int:
    return 0 if q == 0 else (16 + ((q - 1) & 15)) << ((q - 1) >> 4)


def unpack_rows(raw: bytes, pos: int, nrows: int, alpha: int) -> tuple[list[list[int]], int]:
    rows = []
    for _ in range(nrows):
        if pos + 4 > len(raw):
            raise DecodeError("table truncated")
        lo, span = struct.unpack_from("<HH", raw, pos)
        pos += 4
        if lo + span > alpha or pos + span > len(raw):
            raise DecodeError("table out of range")
        q = [0] * alpha
        q[lo : lo + span] = raw[pos : pos + span]
        pos += span
        rows.append(q)
    return rows, pos


def normalize(w: list[int], bits: int) -> list[int]:
    t = 1 << bits
    present = [s for s, x in enumerate(w) if x > 0]
    f = [0] * len(w)
    if not present:
        return f
    if len(present) > t:
        raise DecodeError("more symbols than slots")
    total = sum(w[s] for s in present)
    rem = {}
    for s in present:
        f[s] = max((w[s] * t) // total, 1)
        rem[s] = (w[s] * t) % total
    diff = t - sum(f[s] for s in present)
    if diff > 0:
        order = sorted(present, key=lambda s: (-rem[s], s))
        for k in range(diff):
            f[order[k % len(order)]] += 1
    while diff < 0:
        order = sorted(present, key=lambda s: (-f[s], s))
        for s in order:
            if diff == 0:
                break
            if f[s] > 1:
                f[s] -= 1
                diff += 1
    return f


class Table:
    def __init__(self, freq: list[int], bits: int):
        self.freq = freq
        self.bits = bits
        self.cum = []
        acc = 0
        for f in freq:
            self.cum.append(acc)
            acc += f
        self.sym = [0] * (1 << bits)
        for s, f in enumerate(freq):
            for slot in range(self.cum[s], self.cum[s] + f):
                self.sym[slot] = s
        self.empty = acc == 0


# ------------------------------------------------------------------------- §14 field

class Field:
    LANES = 4

    def __init__(self, params: dict[str, Any], unit: int, nbytes: int, head: bytes):
        self.width, self.p, self.eb, self.mb = (int(x) for x in params["layout"])
        self.kr, self.kc = (int(x) for x in params["grid"])
        self.nrows, self.ncols = (int(x) for x in params["matrix"])
        self.pb, self.mpb = (int(x) for x in params["prob_bits"])
        self.lanes = int(params["lanes"])
        self.chunk = int(params["chunk"])
        self.c = self.eb + self.mb
        self.rbits = self.width - self.c
        if not (self.width == 8 * unit and 0 < self.c <= 16 and self.eb <= 8 and self.mb <= 8
                and self.p >= 0 and self.p + self.c <= self.width and self.rbits <= 56
                and self.nrows * self.ncols * unit == nbytes and 1 <= self.kr <= 256
                and 1 <= self.kc <= 256 and self.kr * self.kc <= 256 and 8 <= self.pb <= 12
                and 8 <= self.mpb <= 12 and self.lanes == self.LANES):
            raise DecodeError("field params")
        raw = _zstd(head, 1 << 30)
        pos = 0
        self.row_map = [0] * self.nrows
        self.col_map = [0] * self.ncols
        if self.kr > 1:
            self.row_map = list(raw[pos : pos + self.nrows])
            pos += self.nrows
        if self.kc > 1:
            self.col_map = list(raw[pos : pos + self.ncols])
            pos += self.ncols
        if (len(self.row_map) != self.nrows or len(self.col_map) != self.ncols
                or any(r >= self.kr for r in self.row_map) or any(c >= self.kc for c in self.col_map)):
            raise DecodeError("cluster maps")
        qexp, pos = unpack_rows(raw, pos, self.kr * self.kc, 1 << self.eb)
        self.etab = [Table(normalize([q_weight(q) for q in row], self.pb), self.pb) for row in qexp]
        self.mtab: list[Table | None] = []
        if self.mb:
            qmant, pos = unpack_rows(raw, pos, 1 << self.eb, 1 << self.mb)
            for row in qmant:
                present = any(row)
                self.mtab.append(Table(normalize([q_weight(q) for q in row], self.mpb), self.mpb)
                                 if present else None)
        self.rshift = [0] * self.nrows
        if params.get("row_shift"):
            if pos + self.nrows > len(raw):
                raise DecodeError("row shifts truncated")
            self.rshift = list(raw[pos : pos + self.nrows])
            if any(s > self.p for s in self.rshift):
                raise DecodeError("row shifts")

    def decode_chunk(self, ci: int, chunk: bytes, n: int) -> list[int]:
        """§14.5 - §14.7: four lanes over the quarters of the chunk."""
        lanes = self.lanes
        if len(chunk) < 8 * lanes:
            raise DecodeError("chunk truncated")
        lens = struct.unpack_from(f"<{2 * lanes}I", chunk, 0)
        slens, rlens = lens[:lanes], lens[lanes:]
        if 8 * lanes + sum(lens) != len(chunk) or min(slens) < 4:
            raise DecodeError("chunk lengths")
        pos = 8 * lanes
        streams, raws = [], []
        for n_ in slens:
            streams.append(chunk[pos : pos + n_])
            pos += n_
        for n_ in rlens:
            raws.append(chunk[pos : pos + n_])
            pos += n_
        q = -(-n // lanes)
        out: list[int] = []
        for lane in range(lanes):
            out += self._decode_lane(ci * self.chunk, min(n, lane * q), min(n, (lane + 1) * q),
                                     streams[lane], raws[lane])
        return out

    def _decode_lane(self, k0: int, b: int, e: int, stream: bytes, raw: bytes) -> list[int]:
        (x,) = struct.unpack_from("<I", stream, 0)
        pos = 4
        acc = nbits = rpos = used = 0
        p, c, mb = self.p, self.c, self.mb
        out = []

        def step(x: int, tab: Table) -> tuple[int, int]:
            nonlocal pos
            slot = x & ((1 << tab.bits) - 1)
            s = tab.sym[slot]
            x = tab.freq[s] * (x >> tab.bits) + slot - tab.cum[s]
            if x < L:
                if pos + 2 > len(stream):
                    raise DecodeError("stream exhausted")
                x = (x << 16) | stream[pos] | (stream[pos + 1] << 8)
                pos += 2
            return s, x

        for t in range(b, e):
            i, j = divmod(k0 + t, self.ncols)
            tab = self.etab[self.row_map[i] * self.kc + self.col_map[j]]
            if tab.empty:
                raise DecodeError("symbol from an empty context")
            ex, x = step(x, tab)
            m = 0
            if mb:
                mt = self.mtab[ex]
                if mt is None:
                    raise DecodeError("no mantissa table for this exponent")
                m, x = step(x, mt)
            sym = (ex << mb) | m
            rs = self.rshift[i]
            rb = self.rbits - rs
            while nbits < rb:
                acc |= (raw[rpos] if rpos < len(raw) else 0) << nbits
                rpos += 1
                nbits += 8
            r = (acc & ((1 << rb) - 1)) << rs
            acc >>= rb
            nbits -= rb
            used += rb
            out.append((sym << p) | (r & ((1 << p) - 1)) | ((r >> p) << (p + c)))
        if x != L or pos != len(stream) or (used + 7) // 8 != len(raw):
            raise DecodeError("lane does not end cleanly")
        return out


# ------------------------------------------------------------------------- §18 field8

class Field8(Field):
    """§18: the model of ``field``; eight lanes interleaved by unit, 63-bit states, one 32-bit
    renormalisation per unit, one raw bit stream per chunk."""

    LANES = 8

    def decode_chunk(self, ci: int, chunk: bytes, n: int) -> list[int]:
        L8 = 1 << 31
        if len(chunk) < 68:
            raise DecodeError("chunk truncated")
        (slen,) = struct.unpack_from("<I", chunk, 0)
        x = list(struct.unpack_from("<8Q", chunk, 4))
        k0 = ci * self.chunk
        rows = [(k0 + t) // self.ncols for t in range(n)]
        nbits = sum(self.rbits - self.rshift[i] for i in rows)
        if slen % 4 or 68 + slen + (nbits + 7) // 8 != len(chunk):
            raise DecodeError("chunk lengths")
        words = chunk[68 : 68 + slen]
        raw = chunk[68 + slen :]
        wpos = 0
        p, c, mb = self.p, self.c, self.mb
        syms = [0] * n
        for g in range(0, n, 8):
            units = range(g, min(n, g + 8))
            es = {}
            for t in units:  # phase 1: exponents
                i, j = divmod(k0 + t, self.ncols)
                tab = self.etab[self.row_map[i] * self.kc + self.col_map[j]]
                if tab.empty:
                    raise DecodeError("symbol from an empty context")
                lane = t % 8
                slot = x[lane] & ((1 << tab.bits) - 1)
                e = tab.sym[slot]
                x[lane] = tab.freq[e] * (x[lane] >> tab.bits) + slot - tab.cum[e]
                es[t] = e
            for t in units:  # phase 2: mantissas
                m = 0
                if mb:
                    mt = self.mtab[es[t]]
                    if mt is None:
                        raise DecodeError("no mantissa table for this exponent")
                    lane = t % 8
                    slot = x[lane] & ((1 << mt.bits) - 1)
                    m = mt.sym[slot]
                    x[lane] = mt.freq[m] * (x[lane] >> mt.bits) + slot - mt.cum[m]
                syms[t] = (es[t] << mb) | m
            for t in units:  # phase 3: renormalisation
                lane = t % 8
                if x[lane] < L8:
                    if wpos + 4 > slen:
                        raise DecodeError("stream exhausted")
                    (w,) = struct.unpack_from("<I", words, wpos)
                    x[lane] = (x[lane] << 32) | w
                    wpos += 4
        if any(v != L8 for v in x) or wpos != slen:
            raise DecodeError("chunk does not end cleanly")
        out = []
        acc = nb = rpos = 0
        for t in range(n):
            rs = self.rshift[rows[t]]
            rb = self.rbits - rs
            while nb < rb:
                acc |= (raw[rpos] if rpos < len(raw) else 0) << nb
                rpos += 1
                nb += 8
            r = (acc & ((1 << rb) - 1)) << rs
            acc >>= rb
            nb -= rb
            out.append((syms[t] << p) | (r & ((1 << p) - 1)) | ((r >> p) << (p + c)))
        return out


# ------------------------------------------------------------------------- §19 fieldp

LMAX = 15


def code_lengths(weights: dict[int, int]) -> dict[int, int]:
    """§19.2: package-merge, literally (multisets as Counters), with the spec's tie rules."""
    items = sorted(weights.items(), key=lambda kv: (kv[1], kv[0]))
    n = len(items)
    if n <= 1:
        return {s: 0 for s, _ in items}
    leaves = [(w, Counter({s: 1})) for s, w in items]
    lst = leaves
    for _ in range(LMAX - 1):
        pkgs = [(lst[2 * i][0] + lst[2 * i + 1][0], lst[2 * i][1] + lst[2 * i + 1][1])
                for i in range(len(lst) // 2)]
        merged, a, b = [], 0, 0
        while a < len(leaves) or b < len(pkgs):
            if b >= len(pkgs) or (a < len(leaves) and leaves[a][0] <= pkgs[b][0]):
                merged.append(leaves[a])
                a += 1
            else:
                merged.append(pkgs[b])
                b += 1
        lst = merged
    lens: Counter[int] = Counter()
    for _, ms in lst[: 2 * n - 2]:
        lens.update(ms)
    return dict(lens)


def canonical(lens: dict[int, int]) -> dict[tuple[int, int], int]:
    """§19.2: (length, code) -> symbol of the canonical code."""
    table = {}
    code = prev = 0
    for ln, s in sorted((ln, s) for s, ln in lens.items() if ln > 0):
        code <<= ln - prev
        prev = ln
        table[(ln, code)] = s
        code += 1
    return table


class FieldP(Field):
    """§19: the model of ``field``; each unit's joint symbol prefix-coded, four lanes
    interleaved by unit, each lane one LSB-first bit stream of code then raw bits."""

    LANES = 4

    def __init__(self, params: dict[str, Any], unit: int, nbytes: int, head: bytes):
        super().__init__(params, unit, nbytes, head)
        if self.width > 32 or self.c > 12:
            raise DecodeError("fieldp params")
        self.codes: dict[int, tuple[int, dict[tuple[int, int], int], int]] = {}

    def _code(self, ctx: int) -> tuple[int, dict[tuple[int, int], int], int]:
        """(number of symbols, canonical table, the only symbol if there is one) of a context."""
        if ctx not in self.codes:
            et = self.etab[ctx]
            w = {}
            for e, f in enumerate(et.freq):
                if f == 0:
                    continue
                if self.mb == 0:
                    w[e] = f
                    continue
                mt = self.mtab[e]
                for m, g in enumerate(mt.freq if mt is not None else []):
                    if g:
                        w[(e << self.mb) | m] = f * g
            lens = code_lengths(w)
            self.codes[ctx] = (len(w), canonical(lens), next(iter(w)) if len(w) == 1 else -1)
        return self.codes[ctx]

    def decode_chunk(self, ci: int, chunk: bytes, n: int) -> list[int]:
        if len(chunk) < 16:
            raise DecodeError("chunk truncated")
        sizes = struct.unpack_from("<4I", chunk, 0)
        if 16 + sum(sizes) != len(chunk):
            raise DecodeError("chunk lengths")
        streams, pos = [], 16
        for sz in sizes:
            streams.append(chunk[pos : pos + sz])
            pos += sz
        bitpos = [0, 0, 0, 0]

        def bit(lane: int) -> int:
            b = bitpos[lane]
            if b >= 8 * len(streams[lane]):
                raise DecodeError("lane read past its stream")
            bitpos[lane] = b + 1
            return (streams[lane][b >> 3] >> (b & 7)) & 1

        k0 = ci * self.chunk
        p, c = self.p, self.c
        out = []
        for t in range(n):
            lane = t % 4
            i, j = divmod(k0 + t, self.ncols)
            nsym, table, only = self._code(self.row_map[i] * self.kc + self.col_map[j])
            if nsym == 0:
                raise DecodeError("symbol from an empty context")
            if nsym == 1:
                s = only
            else:
                v = ln = 0
                while (ln, v) not in table:
                    if ln == LMAX:
                        raise DecodeError("no code matches")
                    v = (v << 1) | bit(lane)
                    ln += 1
                s = table[(ln, v)]
            rs = self.rshift[i]
            r = 0
            for z in range(self.rbits - rs):
                r |= bit(lane) << z
            r <<= rs
            out.append((s << p) | (r & ((1 << p) - 1)) | ((r >> p) << (p + c)))
        for lane in range(4):
            if (bitpos[lane] + 7) // 8 != len(streams[lane]):
                raise DecodeError("lane does not end cleanly")
        return out


# ------------------------------------------------------------------------- §8 - §13 tensors

def tensor_bytes(buf: bytes, index: dict[str, Any], name: str, hops: int = 0,
                 base: dict[str, bytes] | None = None) -> bytes:
    by_name = {t["name"]: t for t in index["tensors"]}
    t = by_name[name]
    if t["codec"] == "ref":  # §9
        if hops >= 8:
            raise DecodeError("reference chain too long")
        data = tensor_bytes(buf, index, t["params"]["of"], hops + 1, base)
    elif t["codec"] in ("base", "delta"):  # §21: a patch's tensor, against its base
        data = _patch(buf, index, t, base)
    else:
        data = _decode(buf, t)
    begin, end = t["offsets"]
    if len(data) != end - begin:
        raise DecodeError(f"{name}: wrong size")
    if xxhash.xxh3_128_hexdigest(data) != t["xxh3"]:
        raise DecodeError(f"{name}: receipt mismatch")
    return data


def _decode(buf: bytes, t: dict[str, Any]) -> bytes:
    unit, _bits = DTYPES[t["dtype"]]
    begin, end = t["offsets"]
    nbytes = end - begin
    n_units = nbytes // unit
    params = t["params"]
    off, head_len, lens = t["blob"]
    blob = buf[off : off + head_len + sum(lens)] if head_len + sum(lens) else b""
    if len(blob) != head_len + sum(lens):
        raise DecodeError("blob outside the file")
    head = blob[:head_len]
    chunks, pos = [], head_len
    for n in lens:
        chunks.append(blob[pos : pos + n])
        pos += n
    codec = t["codec"]
    if codec == "const":  # §11
        value = bytes.fromhex(params["value"])
        if len(value) != unit:
            raise DecodeError("const width")
        return value * (nbytes // unit)
    if codec not in ("raw", "zstd", "lut", "field", "field8", "fieldp"):
        raise UnknownCodec(codec)
    per = int(params["chunk"])
    expected = 0 if n_units == 0 else -(-n_units // per)
    if len(chunks) != expected:
        raise DecodeError("chunk count")
    out = bytearray()
    state: Any = None
    if codec == "field":
        state = Field(params, unit, nbytes, head)
    elif codec == "field8":  # §18
        state = Field8(params, unit, nbytes, head)
    elif codec == "fieldp":  # §19
        state = FieldP(params, unit, nbytes, head)
    elif codec == "lut":  # §13
        ih = int(params["inner_head"])
        tbytes = head_len - ih
        if ih < 0 or tbytes <= 0 or tbytes % unit or tbytes // unit > 256:
            raise DecodeError("lut table")
        table = [head[q * unit : (q + 1) * unit] for q in range(tbytes // unit)]
        state = Field(params["inner"], 1, n_units, head[tbytes:])
        if state.chunk != per:
            raise DecodeError("lut inner chunk differs from the outer chunk")
    for ci, chunk in enumerate(chunks):
        b = min(ci * per * unit, nbytes)
        e = min((ci + 1) * per * unit, nbytes)
        m = (e - b) // unit
        if codec == "raw":  # §10
            if len(chunk) != e - b:
                raise DecodeError("raw chunk size")
            out += chunk
        elif codec == "zstd":  # §12
            planes = _zstd(chunk, e - b)
            if len(planes) != e - b:
                raise DecodeError("zstd chunk size")
            part = bytearray(e - b)
            for k in range(unit):
                part[k::unit] = planes[k * m : (k + 1) * m]
            out += part
        elif codec in ("field", "field8", "fieldp"):  # §14, §18, §19
            for v in state.decode_chunk(ci, chunk, m):
                out += v.to_bytes(unit, "little")
        else:  # lut
            for q in state.decode_chunk(ci, chunk, m):
                if q >= len(table):
                    raise DecodeError("lut index")
                out += table[q]
    return bytes(out)


# ------------------------------------------------------------------------- §21 patches

# dtype -> (exponent bits, mantissa bits) of the byte-aligned float dtypes (Appendix A)
FLOATS = {"F16": (5, 10), "BF16": (8, 7), "F32": (8, 23), "F64": (11, 52), "F8_E4M3": (4, 3),
          "F8_E5M2": (5, 2), "F8_E4M3FNUZ": (4, 3), "F8_E5M2FNUZ": (5, 2), "F8_E8M0": (8, 0)}


def _patch(buf: bytes, index: dict[str, Any], t: dict[str, Any], base: dict[str, bytes] | None) -> bytes:
    if base is None:
        raise DecodeError(f"{t['name']}: a patch's tensor needs the base")
    want = {r[0]: r for r in index["meta"]["base"]["tensors"]}
    of = t["params"]["of"]
    if of not in want or of not in base or xxhash.xxh3_128_hexdigest(base[of]) != want[of][3]:
        raise DecodeError(f"{t['name']}: base tensor {of!r} missing or not the recorded one")
    bdata = base[of]
    if t["codec"] == "base":
        return bdata
    unit, bits = DTYPES[t["dtype"]]
    if bits % 8:  # packed sub-byte dtypes: coded as bytes
        unit = 1
    w = unit * 8
    ebits, mbits = FLOATS.get(t["dtype"], (0, 0))
    kind = 2 if ebits else (1 if t["dtype"].startswith("I") else 0)
    top, mask = 1 << (w - 1), (1 << w) - 1
    shape = t["shape"]
    n = len(bdata) // unit
    cols = n // shape[0] if len(shape) >= 2 and shape[0] > 0 else max(n, 1)
    rows = n // cols if cols else 1
    off, head_len, lens = t["blob"]
    head = buf[off : off + head_len]
    # version 2: four states a chunk, PB 13; version 3: 32 states, PB 10 (§21.3)
    lanes = {(2, 13): 4, (3, 10): 32}.get((head[0], head[3]))
    if lanes is None:
        raise DecodeError("delta head")
    nk, nr, pb = head[1], head[2], head[3]
    elo = int.from_bytes(head[4:6], "little", signed=True)
    rlen = int.from_bytes(head[6:10], "little")
    rowctx = list(_zstd(head[10 : 10 + rlen], rows)) if nr > 1 else [0] * rows
    q, pos = unpack_rows(head, 10 + rlen, nk * nr, 2 * w)
    tables = [Table(normalize([q_weight(x) for x in row], pb), pb) for row in q]

    def mono(v: int) -> int:
        if kind == 2:
            return (~v & mask) if v & top else v | top
        return v ^ top if kind == 1 else v

    def unmono(m: int) -> int:
        if kind == 2:
            return m ^ top if m & top else ~m & mask
        return m ^ top if kind == 1 else m

    per = int(t["params"]["chunk"])
    out = bytearray()
    cpos = off + head_len
    for ci, clen in enumerate(lens):
        chunk = buf[cpos : cpos + clen]
        cpos += clen
        rbytes = int.from_bytes(chunk[0:4], "little")
        xs = [int.from_bytes(chunk[4 + 4 * j : 8 + 4 * j], "little") for j in range(lanes)]
        wpos, rpos, acc, nacc = 4 + 4 * lanes, 4 + rbytes, 0, 0
        for k in range(ci * per, min(n, (ci + 1) * per)):
            lane = (k - ci * per) % lanes  # interleaved states, one word stream
            b = int.from_bytes(bdata[k * unit : (k + 1) * unit], "little")
            ce = 0
            if kind == 2:
                ce = min(max(((b >> mbits) & ((1 << ebits) - 1)) - elo, 0), nk - 1)
            tab = tables[ce * nr + rowctx[k // cols]]
            x = xs[lane]
            slot = x & ((1 << pb) - 1)
            s = tab.sym[slot]
            x = tab.freq[s] * (x >> pb) + slot - tab.cum[s]
            if x < L:
                x = (x << 16) | int.from_bytes(chunk[wpos : wpos + 2], "little")
                wpos += 2
            xs[lane] = x
            if s <= 1:
                z = s
            else:
                nb = s // 2 + 1
                while nacc < nb - 2:
                    acc |= chunk[rpos] << nacc
                    rpos += 1
                    nacc += 8
                z = (1 << (nb - 1)) | ((s & 1) << (nb - 2)) | (acc & ((1 << (nb - 2)) - 1))
                acc >>= nb - 2
                nacc -= nb - 2
            d = (-((z >> 1) + 1)) & mask if z & 1 else z >> 1
            out += unmono((mono(b) + d) & mask).to_bytes(unit, "little")
        if any(x != L for x in xs) or wpos != 4 + rbytes or rpos != len(chunk):
            raise DecodeError(f"{t['name']}: delta chunk {ci} corrupt")
    return bytes(out)


# ------------------------------------------------------------------------- §7 files

def restore(buf: bytes, base: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """Every original file of a container: {relative path: bytes}, receipts checked.
    ``base``: a patch's base tensors by name (§21), checked against ``meta.base``."""
    _, index = read_container(buf)
    out = {}
    for fi, f in enumerate(index["files"]):
        if f["kind"] == "safetensors":
            data = bytearray(base64.b64decode(f["header"]))
            members = sorted((t for t in index["tensors"] if t["file"] == fi),
                             key=lambda t: (t["offsets"][0], t["offsets"][1]))
            pos = 0
            for t in members:
                if t["offsets"][0] != pos:
                    raise DecodeError("gap in the data region")
                data += tensor_bytes(buf, index, t["name"], 0, base)
                pos = t["offsets"][1]
            data = bytes(data)
        elif f["kind"] == "blob":
            off, n = f["blob"]
            data = _zstd(buf[off : off + n], max(f["size"], 1))
        else:
            raise DecodeError(f"unknown file kind {f['kind']!r}")
        if len(data) != f["size"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            raise DecodeError(f"{f['path']}: sha256 receipt mismatch")
        out[f["path"]] = data
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    files = restore(Path(argv[0]).read_bytes())
    for path, data in files.items():
        target = Path(argv[1]) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        print(f"{path}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
