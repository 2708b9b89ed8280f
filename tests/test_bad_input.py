"""Bad input never crashes, never yields garbage, never leaves a partial output behind.

Every case checks: the typed exception from ``bigsmall.errors``, a one-line message naming the
tensor or offset at fault, an output folder without temporary files, and old outputs left
byte-identical unless ``force`` was given.
"""

from __future__ import annotations

import base64
import errno
import json
import math
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import xxhash
import zstandard

import bigsmall
import bigsmall.io.atomic as atomic_mod
import bigsmall.io.compress as compress_mod
import bigsmall.io.decompress as decompress_mod
import bigsmall.io.reader as reader_mod
import bigsmall.io.source as source_mod
from bigsmall.container import format as fmt
from bigsmall.errors import (
    BigsmallError,
    BigsmallIOError,
    FormatError,
    IntegrityError,
    InvalidSafetensorsError,
    OutputExistsError,
    TruncatedError,
    UnknownCodecError,
    UnsupportedVersionError,
)
from bigsmall.io.reader import BsFile
from bigsmall.testing import containers
from bigsmall.testing.synthetic import write_safetensors

OLD = b"old output: must survive every failed run\n"


# ---------------------------------------------------------------- helpers

def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def assert_clean(folder: Path, expected: set[str]) -> None:
    """The folder holds exactly ``expected``: no temporary file, no partial output."""
    names = listing(folder)
    assert not [n for n in names if n.endswith(".tmp") or ".tmp" in n or ".old-" in n], names
    assert set(names) == expected, names


def one_line(exc: BaseException, *needles: str) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def compressed(src: Path, name: str = "model.bs") -> Path:
    dst = src.parent / name
    bigsmall.compress(src, dst)
    return dst


def tweak(path: Path, fn: Callable[[bytearray], Any], name: str = "bad.bs") -> Path:
    data = bytearray(path.read_bytes())
    fn(data)
    out = path.parent / name
    out.write_bytes(bytes(data))
    return out


def reseal_header(data: bytearray) -> None:
    """Recompute the header checksum (bytes 56..64) after editing bytes 0..56."""
    struct.pack_into("<Q", data, 56, xxhash.xxh3_64_intdigest(bytes(data[:56])))


def with_index(bs: Path, index: bytes, name: str = "bad.bs") -> Path:
    """A copy of ``bs`` whose index is replaced by ``index`` (stored bytes) with a valid header."""
    return containers.with_index(bs, index, bs.parent / name)


index_doc = containers.index_doc


def stored_index(doc: Any) -> bytes:
    return zstandard.ZstdCompressor().compress(json.dumps(doc).encode())


def blob_of(bs: Path, name: str) -> tuple[int, int, int]:
    """(offset, head length, total length) of a tensor's blob."""
    with BsFile(bs) as f:
        e = f.entry(name)
        return e.offset, e.head_len, e.length


def read_all(bs: Path) -> None:
    with bigsmall.open(bs) as f:
        for name in f.names():
            f.read(name)


# ---------------------------------------------------------------- 1. bad safetensors input

def _st(header: Any, data: bytes = b"") -> bytes:
    hb = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(hb)) + hb + data


def _f32(name: str, shape: list[int], offsets: list[int], dtype: str = "F32") -> dict[str, Any]:
    return {name: {"dtype": dtype, "shape": shape, "data_offsets": offsets}}


_RNG = np.random.default_rng(1)

BAD_SAFETENSORS = {
    "empty": (b"", ["empty"]),
    "too_short": (b"\x01\x02\x03", ["3 bytes", "offset 0"]),
    "random_bytes": (_RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes(), ["offset 0"]),
    "text_file": (b"this is a README, not a model\n" * 20, ["offset 0"]),
    "header_past_end": (struct.pack("<Q", 4000) + b"{}", ["offset 0", "4008"]),
    "not_json": (_st(b"{not json at all}"), ["not valid JSON", "offset"]),
    "not_an_object": (_st([1, 2, 3]), ["must be an object", "offset 8"]),
    "offsets_past_end": (_st(_f32("w", [4], [0, 16]), b"\0" * 8), ["'w'", "end 16", "8 bytes"]),
    "overlap": (_st({**_f32("a", [4], [0, 16]), **_f32("b", [4], [8, 24])}, b"\0" * 24),
                ["'a'", "'b'", "overlaps", "data offset 8"]),
    "gap": (_st({**_f32("a", [4], [0, 16]), **_f32("b", [4], [20, 36])}, b"\0" * 36),
            ["'b'", "gap", "data offset 16"]),
    "begin_after_end": (_st(_f32("w", [4], [16, 0]), b"\0" * 16), ["'w'", "begin 16", "end 0"]),
    "unknown_dtype": (_st(_f32("w", [4], [0, 16], dtype="F33"), b"\0" * 16), ["'w'", "'F33'"]),
    "size_not_shape": (_st(_f32("w", [3], [0, 16]), b"\0" * 16), ["'w'", "16 bytes", "12 bytes"]),
    "trailing_data": (_st(_f32("w", [4], [0, 16]), b"\0" * 20), ["data offset 16", "20 bytes"]),
    "duplicate_key": (_st(b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                          b'"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
                      ["duplicate", "'w'"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SAFETENSORS))
def test_bad_safetensors(case: str, tmp_path: Path) -> None:
    blob, needles = BAD_SAFETENSORS[case]
    src = tmp_path / "model.safetensors"
    src.write_bytes(blob)
    with pytest.raises(InvalidSafetensorsError) as info:
        bigsmall.compress(src)
    one_line(info.value, "model.safetensors", *needles)
    assert_clean(tmp_path, {"model.safetensors"})
    # with force and an old output there: the old output survives the failed run
    old = tmp_path / "model.bs"
    old.write_bytes(OLD)
    with pytest.raises(InvalidSafetensorsError):
        bigsmall.compress(src, old, force=True)
    assert old.read_bytes() == OLD
    assert_clean(tmp_path, {"model.safetensors", "model.bs"})
    assert src.read_bytes() == blob


def test_bad_safetensors_in_folder(small_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    small_model.rename(folder / "model-00001.safetensors")
    (folder / "model-00002.safetensors").write_bytes(BAD_SAFETENSORS["overlap"][0])
    (folder / "config.json").write_text("{}")
    with pytest.raises(InvalidSafetensorsError) as info:
        bigsmall.compress(folder)
    one_line(info.value, "model-00002.safetensors", "'b'")
    assert_clean(tmp_path, {"repo"})


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(BigsmallIOError) as info:
        bigsmall.compress(tmp_path / "nope.safetensors", tmp_path / "out.bs")
    one_line(info.value, "nope.safetensors")
    assert_clean(tmp_path, set())


# ---------------------------------------------------------------- 2. bad containers

def _expect_everywhere(bs: Path, exc_type: type[BaseException] | tuple[type[BaseException], ...],
                       *needles: str) -> str:
    """open/read/verify and decompress all refuse ``bs`` with ``exc_type``; no output left."""
    folder = bs.parent
    before = set(listing(folder))
    with pytest.raises(exc_type) as info:
        read_all(bs)
    one_line(info.value, *needles)
    with pytest.raises(exc_type) as info:
        with bigsmall.open(bs) as f:
            f.verify("full")
    one_line(info.value, *needles)
    with pytest.raises(exc_type) as info:
        bigsmall.decompress(bs, folder / "restored.safetensors")
    msg = one_line(info.value, *needles)
    assert_clean(folder, before)
    return msg


def _cuts(bs: Path) -> dict[str, int]:
    size = bs.stat().st_size
    off, _, length = blob_of(bs, "embed.weight")
    with BsFile(bs) as f:
        ioff = int(f.header["index_offset"])
    return {"0": 0, "10": 10, "63": 63, "64": 64, "mid_blob": off + length // 2,
            "index_start": ioff, "mid_index": (ioff + size) // 2, "last_byte": size - 1}


@pytest.mark.parametrize("where", ["0", "10", "63", "64", "mid_blob", "index_start", "mid_index",
                                   "last_byte"])
def test_truncated_container(where: str, small_model: Path) -> None:
    bs = compressed(small_model)
    n = _cuts(bs)[where]
    bad = tweak(bs, lambda d: d.__delitem__(slice(n, None)))
    assert bad.stat().st_size == n
    if n == 0:
        _expect_everywhere(bad, FormatError, "empty")
    else:
        _expect_everywhere(bad, TruncatedError, "truncated", f"{n} bytes")


@pytest.mark.parametrize("tensor", ["embed.weight", "model.layers.0.attn.weight",
                                    "model.layers.1.attn.weight", "model.layers.1.idx", "fp8"])
def test_flipped_byte_in_blob(tensor: str, small_model: Path) -> None:
    bs = compressed(small_model)
    off, head, length = blob_of(bs, tensor)
    pos = off + head + (length - head) // 2  # inside the coded data, not the side information

    def flip(d: bytearray) -> None:
        d[pos] ^= 0x55

    bad = tweak(bs, flip)
    folder = bs.parent
    before = set(listing(folder))
    with bigsmall.open(bad) as f:
        with pytest.raises(IntegrityError) as info:
            f.read(tensor)
        one_line(info.value, repr(tensor))
        # the other tensors still read back exactly
        with bigsmall.open(bs) as good:
            for name in f.names():
                if name != tensor and f.entry(name).codec != "ref":
                    assert f.read_bytes(name).tobytes() == good.read_bytes(name).tobytes()
        for mode in ("full", "sample"):
            rep = f.verify(mode, fraction=1.0)
            assert not rep.ok, mode
            assert any(tensor in p for p in rep.problems), rep.problems
    with pytest.raises(IntegrityError) as info:
        bigsmall.decompress(bad, folder / "restored.safetensors")
    one_line(info.value, repr(tensor))
    assert_clean(folder, before)


def test_any_flipped_blob_byte_is_caught_or_harmless(small_model: Path) -> None:
    """Flip bytes all over the blob region: a read raises IntegrityError naming the tensor, or
    (side information the decoder does not need) returns the exact original bytes; never garbage."""
    bs = compressed(small_model)
    data = bs.read_bytes()
    with BsFile(bs) as f:
        stored = [e for e in f.container.tensors if e.length]
        want = {e.name: f.read_bytes(e.name).tobytes() for e in stored}
    caught = 0
    for e in stored:
        for pos in range(e.offset, e.offset + e.length, max(1, e.length // 40)):
            bad = bytearray(data)
            bad[pos] ^= 0xA5
            p = bs.with_name("sweep.bs")
            p.write_bytes(bytes(bad))
            with BsFile(p) as f:
                try:
                    got = f.read_bytes(e.name).tobytes()
                except IntegrityError as exc:
                    one_line(exc, repr(e.name))
                    caught += 1
                else:
                    assert got == want[e.name], (e.name, pos)
    assert caught > 0


def test_flipped_byte_in_index(small_model: Path) -> None:
    bs = compressed(small_model)
    with BsFile(bs) as f:
        ioff, ilen = int(f.header["index_offset"]), int(f.header["index_length"])
    for pos in (ioff, ioff + ilen // 2, ioff + ilen - 1):
        def flip(d: bytearray, pos: int = pos) -> None:
            d[pos] ^= 0x01

        bad = tweak(bs, flip)
        _expect_everywhere(bad, (IntegrityError, FormatError), "index")


@pytest.mark.parametrize("pos", [0, 7, 8, 9, 10, 12, 16, 23, 24, 32, 40, 55, 56, 63])
def test_flipped_byte_in_header(pos: int, small_model: Path) -> None:
    bs = compressed(small_model)

    def flip(d: bytearray) -> None:
        d[pos] ^= 0x01

    bad = tweak(bs, flip)
    if pos < 8:
        _expect_everywhere(bad, FormatError, "magic", "offset 0")
    elif pos < 10:  # the version is checked first (spec §3); the message admits corruption
        _expect_everywhere(bad, UnsupportedVersionError, "format", "corrupt")
    else:
        _expect_everywhere(bad, IntegrityError, "header", "checksum")


@pytest.mark.parametrize("content", [b"PK\x03\x04" + b"\0" * 200, b"hello\n", b"\x89BSM"])
def test_wrong_magic(content: bytes, tmp_path: Path) -> None:
    bad = tmp_path / "bad.bs"
    bad.write_bytes(content)
    _expect_everywhere(bad, FormatError, "not a bigsmall container")


def test_safetensors_is_not_a_container(small_model: Path) -> None:
    _expect_everywhere(small_model, FormatError, "not a bigsmall container", "bigsmall compress")


def test_folder_is_not_a_container(tmp_path: Path) -> None:
    (tmp_path / "dir.bs").mkdir()
    with pytest.raises(BigsmallIOError) as info:
        bigsmall.open(tmp_path / "dir.bs")
    one_line(info.value, "dir.bs")
    with pytest.raises(BigsmallIOError):
        bigsmall.decompress(tmp_path / "dir.bs", tmp_path / "out")
    assert_clean(tmp_path, {"dir.bs"})


@pytest.mark.parametrize("major", [0, 2, 300])
def test_unsupported_major_version(major: int, small_model: Path) -> None:
    bs = compressed(small_model)

    def bump(d: bytearray) -> None:
        struct.pack_into("<HH", d, 8, major, 3)
        reseal_header(d)

    bad = tweak(bs, bump)
    msg = _expect_everywhere(bad, UnsupportedVersionError, f"format {major}.3", "1.")
    assert "corrupt" not in msg
    if major > 1:
        assert "newer" in msg and f"{major}.x" in msg


def test_newer_minor_version_still_reads(small_model: Path) -> None:
    bs = compressed(small_model)

    def bump(d: bytearray) -> None:
        struct.pack_into("<H", d, 10, fmt.VERSION[1] + 1)
        reseal_header(d)

    newer = tweak(bs, bump)
    with bigsmall.open(newer) as f:
        assert f.verify("full").ok


def test_unknown_codec(small_model: Path) -> None:
    bs = compressed(small_model)
    data = bs.read_bytes()
    hdr = fmt.parse_header(data[: fmt.HEADER_SIZE], len(data))
    ioff, ilen = int(hdr["index_offset"]), int(hdr["index_length"])
    c = fmt.decode_index(data[ioff : ioff + ilen], hdr)
    tensors = tuple(attrs.evolve(t, codec="zz-future") if t.name == "model.layers.1.idx" else t
                    for t in c.tensors)
    bad = with_index(bs, fmt.encode_index(attrs.evolve(c, tensors=tensors)))
    folder = bs.parent
    before = set(listing(folder))
    with bigsmall.open(bad) as f:
        with pytest.raises(UnknownCodecError) as info:
            f.read("model.layers.1.idx")
        one_line(info.value, "'zz-future'", "'model.layers.1.idx'", "newer bigsmall")
        assert f.read("model.layers.1.attn.weight").shape == (5, 7)  # the rest still reads
        for mode in ("fast", "sample", "full"):  # not "corrupt": this bigsmall is too old
            with pytest.raises(UnknownCodecError):
                f.verify(mode, fraction=1.0)
    with pytest.raises(UnknownCodecError) as info:
        bigsmall.decompress(bad, folder / "restored.safetensors")
    one_line(info.value, "'zz-future'")
    assert_clean(folder, before)


def _doc_edits() -> dict[str, tuple[Callable[[dict[str, Any]], Any], list[str]]]:
    def tensor(doc: dict[str, Any], name: str) -> dict[str, Any]:
        return next(t for t in doc["tensors"] if t["name"] == name)

    def set_(name: str, key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
        def edit(doc: dict[str, Any]) -> Any:
            tensor(doc, name)[key] = value
            return doc
        return edit

    def drop_tensor_key(doc: dict[str, Any]) -> Any:
        del tensor(doc, "fp8")["blob"]
        return doc

    def duplicate(doc: dict[str, Any]) -> Any:
        doc["tensors"].append(dict(tensor(doc, "fp8")))
        return doc

    def ref_cycle(doc: dict[str, Any]) -> Any:
        e = tensor(doc, "embed.weight")
        e["codec"], e["params"] = "ref", {"of": "lm_head.weight"}
        return doc

    def field_tensor(doc: dict[str, Any]) -> dict[str, Any]:
        return next(t for t in doc["tensors"] if "layout" in t["params"])

    def neg_mantissa(doc: dict[str, Any]) -> Any:
        """Issue 22's segfault: a layout with mb < 0 and eb + mb still in range."""
        t = field_tensor(doc)
        w, p, eb, mb = t["params"]["layout"]
        t["params"]["layout"] = [w, p, eb, -1]
        return doc

    def neg_matrix(doc: dict[str, Any]) -> Any:
        t = field_tensor(doc)
        r, c = t["params"]["matrix"]
        t["params"]["matrix"] = [-r, -c]
        return doc

    def field_param(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
        def edit(doc: dict[str, Any]) -> Any:
            field_tensor(doc)["params"][key] = value
            return doc
        return edit

    def file_key(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
        def edit(doc: dict[str, Any]) -> Any:
            doc["files"][0][key] = value
            return doc
        return edit

    def meta_name(doc: dict[str, Any]) -> Any:
        doc["meta"]["name"] = "."
        return doc

    def shape_not_header(doc: dict[str, Any]) -> Any:
        tensor(doc, "fp8")["shape"] = [5, 8]  # same size, not what the stored header says
        return doc

    return {
        # issue 22: crafted indexes (checksums recomputed) that crashed or got untyped errors
        "chunk_as_list": (field_param("chunk", [16]), ["chunk"]),
        "chunk_as_string": (field_param("chunk", "16"), ["chunk"]),
        "layer_infinity": (set_("fp8", "layer", math.inf), ["Infinity"]),
        "layer_nan": (set_("fp8", "layer", math.nan), ["NaN"]),
        "layer_huge": (set_("fp8", "layer", 1 << 40), ["'fp8'", "layer"]),
        "offsets_float": (set_("fp8", "offsets", [0.0, 40.0]), ["'fp8'", "offsets"]),
        "size_2_63": (file_key("size", 1 << 63), ["files[0].size"]),
        "blob_4_items": (set_("fp8", "blob", [100, 0, [40], 1]), ["'fp8'", "blob"]),
        "blob_lens_not_list": (set_("fp8", "blob", [100, 0, 40]), ["'fp8'", "blob"]),
        "nul_in_path": (file_key("path", "model\x00.safetensors"), ["path"]),
        "dot_path": (file_key("path", "."), ["path"]),
        "dot_name": (meta_name, ["meta.name"]),
        "lone_surrogate": (set_("fp8", "name", "\ud800"), ["surrogate"]),
        "shape_not_header": (shape_not_header, ["header"]),
        "not_an_object": (lambda doc: [doc], ["index"]),
        "not_bigsmall": (lambda doc: {**doc, "format": "zip"}, ["index"]),
        "missing_key": (drop_tensor_key, ["index", "blob"]),
        "shape_not_list": (set_("fp8", "shape", 40), ["index"]),
        "blob_past_end": (set_("fp8", "blob", [10 ** 9, 0, [40]]), ["'fp8'", "1000000000"]),
        "blob_in_header": (set_("fp8", "blob", [3, 0, [40]]), ["'fp8'", "3+40"]),
        "negative_chunk": (set_("fp8", "blob", [100, 50, [-10]]), ["'fp8'", "negative"]),
        "bad_file_index": (set_("fp8", "file", 7), ["'fp8'", "file index 7"]),
        "unknown_dtype": (set_("fp8", "dtype", "F33"), ["'fp8'", "'F33'"]),
        "size_not_shape": (set_("fp8", "shape", [41]), ["'fp8'", "[41]"]),
        "begin_after_end": (set_("fp8", "offsets", [40, 0]), ["'fp8'", "[40, 0]"]),
        "duplicate_name": (duplicate, ["'fp8'", "twice"]),
        "dangling_ref": (set_("lm_head.weight", "params", {"of": "no.such.tensor"}),
                         ["'lm_head.weight'", "'no.such.tensor'"]),
        "self_ref": (set_("lm_head.weight", "params", {"of": "lm_head.weight"}),
                     ["'lm_head.weight'", "cycle"]),
        "ref_cycle": (ref_cycle, ["cycle"]),
        "ref_other_size": (set_("lm_head.weight", "params", {"of": "fp8"}),
                           ["'lm_head.weight'", "'fp8'", "size"]),
    }


def _param_edits() -> dict[str, Callable[[dict[str, Any]], Any]]:
    """Codec parameters a stranger's index may hold, checked by the codec before any kernel
    runs (issue 22: a negative mantissa width with ``eb + mb`` in range segfaulted ``fieldp``)."""
    def field_tensor(doc: dict[str, Any]) -> dict[str, Any]:
        return next(t for t in doc["tensors"] if "layout" in t["params"])

    def edit(key: str, fn: Callable[[list[int]], Any]) -> Callable[[dict[str, Any]], Any]:
        def apply(doc: dict[str, Any]) -> Any:
            t = field_tensor(doc)
            t["params"][key] = fn(t["params"][key])
            return doc
        return apply

    return {
        "neg_mantissa_width": edit("layout", lambda v: [v[0], v[1], v[2], -1]),
        "neg_exponent_width": edit("layout", lambda v: [v[0], v[1], -1, v[2] + v[3] + 1]),
        "neg_matrix": edit("matrix", lambda v: [-v[0], -v[1]]),
        "zero_rows": edit("matrix", lambda v: [0, v[0] * v[1]]),
        "layout_as_floats": edit("layout", lambda v: [float(x) for x in v]),
        "bool_lanes": edit("lanes", lambda v: True),
        "grid_zero": edit("grid", lambda v: [0, 1]),
    }


@pytest.mark.parametrize("case", sorted(_param_edits()))
def test_hostile_codec_parameters(case: str, small_model: Path) -> None:
    bs = compressed(small_model)
    bad = with_index(bs, stored_index(_param_edits()[case](index_doc(bs))))
    folder = bad.parent
    before = set(listing(folder))
    with pytest.raises(FormatError) as info:
        read_all(bad)
    one_line(info.value, "embed.weight", "parameter")
    with bigsmall.open(bad) as f:
        report = f.verify("full")
    assert not report.ok and "embed.weight" in report.problems[0]
    with pytest.raises(FormatError):
        bigsmall.decompress(bad, folder / "restored.safetensors")
    assert_clean(folder, before)


@pytest.mark.parametrize("case", sorted(_doc_edits()))
def test_malformed_index(case: str, small_model: Path) -> None:
    """An index whose checksum is right but whose content lies: FormatError at open, no crash."""
    bs = compressed(small_model)
    edit, needles = _doc_edits()[case]
    bad = with_index(bs, stored_index(edit(index_doc(bs))))
    _expect_everywhere(bad, FormatError, *needles)


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt"])
def test_unsafe_member_path(member: str, model_folder: Path, tmp_path: Path) -> None:
    bs = tmp_path / "repo.bs"
    bigsmall.compress(model_folder, bs)
    doc = index_doc(bs)
    next(f for f in doc["files"] if f["path"] == "config.json")["path"] = member
    bad = with_index(bs, stored_index(doc))
    out = tmp_path / "sub" / "out"
    out.parent.mkdir()
    with pytest.raises(FormatError) as info:  # refused when the index is read
        bigsmall.decompress(bad, out)
    one_line(info.value, repr(member))
    assert listing(out.parent) == []
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


# ---------------------------------------------------------------- 3. outputs that exist

def test_compress_output_exists(small_model: Path, tmp_path: Path) -> None:
    dst = tmp_path / "model.bs"
    dst.write_bytes(OLD)
    with pytest.raises(OutputExistsError) as info:
        bigsmall.compress(small_model, dst)
    one_line(info.value, str(dst), "force")
    assert dst.read_bytes() == OLD
    with pytest.raises(OutputExistsError):
        bigsmall.compress(small_model)  # the default output name is the same file
    assert dst.read_bytes() == OLD
    assert_clean(tmp_path, {"model.safetensors", "model.bs"})
    bigsmall.compress(small_model, dst, force=True)
    assert dst.read_bytes() != OLD
    with bigsmall.open(dst) as f:
        assert f.verify("full").ok
    assert_clean(tmp_path, {"model.safetensors", "model.bs"})


def test_compress_output_is_a_folder(small_model: Path, tmp_path: Path) -> None:
    dst = tmp_path / "model.bs"
    dst.mkdir()
    (dst / "keep").write_bytes(OLD)
    with pytest.raises(OutputExistsError):
        bigsmall.compress(small_model, dst)
    assert (dst / "keep").read_bytes() == OLD
    with pytest.raises(OutputExistsError) as info:  # a file never replaces a folder
        bigsmall.compress(small_model, dst, force=True)
    one_line(info.value, str(dst), "is a folder")
    assert (dst / "keep").read_bytes() == OLD
    assert_clean(tmp_path, {"model.safetensors", "model.bs"})


def test_decompress_output_exists(small_model: Path, tmp_path: Path) -> None:
    bs = compressed(small_model)
    original = small_model.read_bytes()
    dst = tmp_path / "restored.safetensors"
    dst.write_bytes(OLD)
    with pytest.raises(OutputExistsError) as info:
        bigsmall.decompress(bs, dst)
    one_line(info.value, str(dst), "force")
    assert dst.read_bytes() == OLD
    with pytest.raises(OutputExistsError):
        bigsmall.decompress(bs)  # default output: the stored name, model.safetensors
    assert small_model.read_bytes() == original
    assert_clean(tmp_path, {"model.safetensors", "model.bs", "restored.safetensors"})
    bigsmall.decompress(bs, dst, force=True)
    assert dst.read_bytes() == original
    assert_clean(tmp_path, {"model.safetensors", "model.bs", "restored.safetensors"})


@pytest.fixture
def model_folder(small_model: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    small_model.rename(folder / "model.safetensors")
    (folder / "config.json").write_text('{"hidden": 96}\n')
    (folder / "tok").mkdir()
    (folder / "tok" / "vocab.txt").write_text("a\nb\nc\n" * 100)
    return folder


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_decompress_folder_output_exists(model_folder: Path, tmp_path: Path) -> None:
    bs = tmp_path / "repo.bs"
    bigsmall.compress(model_folder, bs)
    want = _tree(model_folder)
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep").write_bytes(OLD)
    with pytest.raises(OutputExistsError):
        bigsmall.decompress(bs, dst)
    assert _tree(dst) == {"keep": OLD}
    with pytest.raises(OutputExistsError):
        bigsmall.decompress(bs)  # default output: repo/
    assert _tree(model_folder) == want
    assert_clean(tmp_path, {"repo", "repo.bs", "out"})
    bigsmall.decompress(bs, dst, force=True)
    assert _tree(dst) == want
    assert_clean(tmp_path, {"repo", "repo.bs", "out"})


def test_decompress_folder_over_a_file(model_folder: Path, tmp_path: Path) -> None:
    bs = tmp_path / "repo.bs"
    bigsmall.compress(model_folder, bs)
    dst = tmp_path / "out"
    dst.write_bytes(OLD)
    with pytest.raises(OutputExistsError):
        bigsmall.decompress(bs, dst)
    assert dst.read_bytes() == OLD
    bigsmall.decompress(bs, dst, force=True)
    assert _tree(dst) == _tree(model_folder)
    assert_clean(tmp_path, {"repo", "repo.bs", "out"})


def test_decompress_file_over_a_folder(small_model: Path, tmp_path: Path) -> None:
    bs = compressed(small_model)
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep").write_bytes(OLD)
    with pytest.raises(OutputExistsError):
        bigsmall.decompress(bs, dst)
    assert _tree(dst) == {"keep": OLD}
    with pytest.raises(OutputExistsError) as info:  # a file never replaces a folder
        bigsmall.decompress(bs, dst, force=True)
    one_line(info.value, str(dst), "is a folder")
    assert _tree(dst) == {"keep": OLD}
    assert_clean(tmp_path, {"model.safetensors", "model.bs", "out"})


# ---------------------------------------------------------------- 4. write errors (full disk)

class _FullDisk:
    """A file object that fails with ENOSPC once ``limit`` bytes were written."""

    def __init__(self, fh: Any, limit: int):
        self._fh = fh
        self._limit = limit
        self.written = 0

    def write(self, b: Any) -> int:
        n = memoryview(b).nbytes
        if self.written + n > self._limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.written += n
        return self._fh.write(b)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


class _OsWithFullDisk:
    """Stands in for ``os`` inside bigsmall.io.atomic: ``fdopen`` hands out a _FullDisk file."""

    def __init__(self, limit: int):
        self._limit = limit

    def fdopen(self, *args: Any, **kwargs: Any) -> _FullDisk:
        return _FullDisk(os.fdopen(*args, **kwargs), self._limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def _fail_fsync(fd: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


FULL_AT = [0, 64, 100, 5000, "fsync"]


def _full_disk(monkeypatch: pytest.MonkeyPatch, at: int | str) -> None:
    if at == "fsync":
        monkeypatch.setattr(atomic_mod.os, "fsync", _fail_fsync)
    else:
        monkeypatch.setattr(atomic_mod, "os", _OsWithFullDisk(int(at)))


@pytest.mark.parametrize("at", FULL_AT)
def test_compress_disk_full(at: int | str, small_model: Path, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    dst = tmp_path / "model.bs"
    with monkeypatch.context() as m:
        _full_disk(m, at)
        with pytest.raises(BigsmallIOError) as info:
            bigsmall.compress(small_model, dst)
    one_line(info.value, str(dst), "No space left")
    assert isinstance(info.value, OSError)
    assert_clean(tmp_path, {"model.safetensors"})
    # with force over an old output: the old output is still there, intact
    dst.write_bytes(OLD)
    with monkeypatch.context() as m:
        _full_disk(m, at)
        with pytest.raises(BigsmallIOError):
            bigsmall.compress(small_model, dst, force=True)
    assert dst.read_bytes() == OLD
    assert_clean(tmp_path, {"model.safetensors", "model.bs"})


@pytest.mark.parametrize("at", FULL_AT)
def test_decompress_disk_full(at: int | str, small_model: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    bs = compressed(small_model)
    dst = tmp_path / "restored.safetensors"
    for force in (False, True):
        with monkeypatch.context() as m:
            _full_disk(m, at)
            with pytest.raises(BigsmallIOError) as info:
                bigsmall.decompress(bs, dst, force=force)
        one_line(info.value, str(dst), "No space left")
        if force:
            assert dst.read_bytes() == OLD
            assert_clean(tmp_path, {"model.safetensors", "model.bs", "restored.safetensors"})
        else:
            assert_clean(tmp_path, {"model.safetensors", "model.bs"})
            dst.write_bytes(OLD)


@pytest.mark.parametrize("limit", [0, 1000, 20000])
def test_decompress_folder_disk_full(limit: int, model_folder: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bs = tmp_path / "repo.bs"
    bigsmall.compress(model_folder, bs)
    budget = {"left": limit}

    class _Shared(_FullDisk):  # one disk for every member file
        def write(self, b: Any) -> int:
            n = memoryview(b).nbytes
            if n > budget["left"]:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            budget["left"] -= n
            return self._fh.write(b)

    def full_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return _Shared(open(path, mode, *args, **kwargs), 0)

    dst = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setattr(decompress_mod, "open", full_open, raising=False)
        with pytest.raises(BigsmallIOError) as info:
            bigsmall.decompress(bs, dst)
    one_line(info.value, "No space left")
    assert_clean(tmp_path, {"repo", "repo.bs"})
    dst.mkdir()
    (dst / "keep").write_bytes(OLD)
    budget["left"] = limit
    with monkeypatch.context() as m:
        m.setattr(decompress_mod, "open", full_open, raising=False)
        with pytest.raises(BigsmallIOError):
            bigsmall.decompress(bs, dst, force=True)
    assert _tree(dst) == {"keep": OLD}
    assert_clean(tmp_path, {"repo", "repo.bs", "out"})


def test_output_folder_missing(small_model: Path, tmp_path: Path) -> None:
    with pytest.raises(BigsmallIOError) as info:
        bigsmall.compress(small_model, tmp_path / "no" / "such" / "model.bs")
    one_line(info.value, "does not exist")
    bs = compressed(small_model)
    with pytest.raises(BigsmallIOError):
        bigsmall.decompress(bs, tmp_path / "no" / "such" / "model.safetensors")
    assert_clean(tmp_path, {"model.safetensors", "model.bs"})


@pytest.mark.parametrize("err", [errno.EACCES, errno.ENOSPC, errno.EROFS])
def test_cannot_create_temp_output(err: int, small_model: Path, model_folder: Path,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bs = tmp_path / "repo.bs"
    bigsmall.compress(model_folder, bs)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(atomic_mod.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(atomic_mod.tempfile, "mkdtemp", refuse)
    with pytest.raises(BigsmallIOError) as info:
        bigsmall.compress(model_folder, tmp_path / "again.bs")
    one_line(info.value, str(tmp_path), os.strerror(err))
    with pytest.raises(BigsmallIOError) as info:
        bigsmall.decompress(bs, tmp_path / "out")
    one_line(info.value, str(tmp_path), os.strerror(err))
    assert_clean(tmp_path, {"repo", "repo.bs"})


def test_read_error_is_typed(small_model: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O error while reading a container (bad sector, lost network mount) is typed."""
    bs = compressed(small_model)

    def eio(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(source_mod.os, "pread", eio)
    with pytest.raises(BigsmallIOError) as info:
        bigsmall.open(bs)
    one_line(info.value, "model.bs", "offset 0", os.strerror(errno.EIO))
    with pytest.raises(BigsmallIOError):
        bigsmall.decompress(bs, tmp_path / "out.safetensors")
    assert_clean(tmp_path, {"model.safetensors", "model.bs"})


# ---------------------------------------------------------------- 5. interrupted runs

def _interrupt_after(n: int, real: Callable[..., Any]) -> Callable[..., Any]:
    lock = threading.Lock()
    calls = {"n": 0}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with lock:
            calls["n"] += 1
            hit = calls["n"] > n
        if hit:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("after", [0, 3])
def test_compress_interrupted(after: int, small_model: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    dst = tmp_path / "model.bs"
    with monkeypatch.context() as m:
        m.setattr(compress_mod, "plan_tensor", _interrupt_after(after, compress_mod.plan_tensor))
        with pytest.raises(KeyboardInterrupt):
            bigsmall.compress(small_model, dst, threads=2)
    assert_clean(tmp_path, {"model.safetensors"})
    dst.write_bytes(OLD)
    with monkeypatch.context() as m:
        m.setattr(compress_mod, "plan_tensor", _interrupt_after(after, compress_mod.plan_tensor))
        with pytest.raises(KeyboardInterrupt):
            bigsmall.compress(small_model, dst, force=True, threads=2)
    assert dst.read_bytes() == OLD
    assert_clean(tmp_path, {"model.safetensors", "model.bs"})


def test_decompress_interrupted(small_model: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    bs = compressed(small_model)
    dst = tmp_path / "restored.safetensors"
    with monkeypatch.context() as m:
        m.setattr(reader_mod, "plan_decode", _interrupt_after(2, reader_mod.plan_decode))
        with pytest.raises(KeyboardInterrupt):
            bigsmall.decompress(bs, dst)
    assert_clean(tmp_path, {"model.safetensors", "model.bs"})
    bigsmall.decompress(bs, dst)  # nothing stale in the way afterwards
    assert dst.read_bytes() == small_model.read_bytes()


def test_every_error_is_a_bigsmall_error() -> None:
    for exc in (InvalidSafetensorsError, FormatError, TruncatedError, UnsupportedVersionError,
                UnknownCodecError, IntegrityError, OutputExistsError, BigsmallIOError):
        assert issubclass(exc, BigsmallError)
    assert issubclass(OutputExistsError, FileExistsError)
    assert issubclass(BigsmallIOError, OSError)
    assert issubclass(TruncatedError, FormatError)


def test_write_safetensors_helper_is_valid(tmp_path: Path) -> None:
    """Sanity: the synthetic writer produces files the strict parser accepts."""
    p = write_safetensors(tmp_path / "ok.safetensors", {"w": ("F32", (2,), b"\0" * 8)}, pad=3)
    bs = compressed(p, "ok.bs")
    with bigsmall.open(bs) as f:
        assert f.read("w").tolist() == [0.0, 0.0]


def test_declared_terabyte_tensor_is_refused(tmp_path: Path) -> None:
    """A few bytes of index can declare a huge constant tensor (its stored header rewritten to
    agree): reading it is an InsufficientMemoryError before any allocation, never an OOM kill."""
    from bigsmall.errors import InsufficientMemoryError

    src = tmp_path / "z.safetensors"
    src.write_bytes(_st({"z": _f32("z", [1000], [0, 4000])["z"]}, bytes(4000)))
    bs = compressed(src)
    doc = index_doc(bs)
    (t,) = doc["tensors"]
    assert t["codec"] == "const"
    n = 1 << 40
    header = _st({"z": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}})
    t["shape"], t["offsets"] = [n], [0, 4 * n]
    doc["files"][0]["header"] = base64.b64encode(header).decode()
    doc["files"][0]["size"] = len(header) + 4 * n
    bad = with_index(bs, stored_index(doc))
    before = set(listing(tmp_path))
    with pytest.raises(InsufficientMemoryError) as info:
        read_all(bad)
    one_line(info.value, "'z'", str(4 * n))
    with pytest.raises(BigsmallError):
        bigsmall.decompress(bad, tmp_path / "restored.safetensors")
    assert_clean(tmp_path, before)
