"""Golden vectors (spec/vectors): every committed container decodes to its source, forever.

Also pins the encoder: compressing a committed source today must give the committed ``.bs`` byte
for byte, because any change to coded output is a format change (spec/FORMAT.md, section 16).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
import xxhash
import zstandard

import bigsmall
from bigsmall.container import format as fmt
from bigsmall.errors import UnknownCodecError, UnsupportedVersionError

SPEC = Path(__file__).resolve().parent.parent / "spec"
VECTORS = SPEC / "vectors"
MANIFEST: dict[str, Any] = json.loads((VECTORS / "MANIFEST.json").read_text())
NAMES = sorted(MANIFEST["vectors"])

REGENERATE = (
    "If this change to the coded output is intended, it is a FORMAT CHANGE: decide the version "
    "bump (spec/FORMAT.md, section 16: minor if every 1.0 reader still decodes the new output, "
    "major otherwise), keep the old vectors decoding, and regenerate deliberately with "
    "`python spec/make_vectors.py`. If it is not intended, the encoder changed by accident "
    "(also check the zstandard/libzstd and numpy versions: zstd levels and float code in the "
    "clustering are part of the pinned output)."
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def vec(name: str) -> dict[str, Any]:
    return MANIFEST["vectors"][name]


def tree_shas(root: Path) -> dict[str, str]:
    if root.is_file():
        return {root.name: sha256(root)}
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def base_of(v: dict[str, Any]) -> Path | None:
    """The base model of a patch vector (spec §21), None for the others."""
    return VECTORS / v["base"] if "base" in v else None


def base_tensors(path: Path) -> dict[str, bytes]:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    return {k: raw[8 + n + t["data_offsets"][0] : 8 + n + t["data_offsets"][1]]
            for k, t in header.items() if k != "__metadata__"}


def codecs_in(path: Path) -> set[str]:
    with bigsmall.open(path) as bs:
        return {t.codec for t in bs.container.tensors}


@pytest.mark.parametrize("name", NAMES)
def test_committed_files_match_manifest(name: str) -> None:
    v = vec(name)
    assert sha256(VECTORS / v["bs"]) == v["bs_sha256"], f"{v['bs']} changed: golden files are append-only"
    src = VECTORS / v["source"]
    assert tree_shas(src) == v["files"], f"source of vector {name} changed"
    if "base" in v:
        assert sha256(VECTORS / v["base"]) == v["base_sha256"], f"base of vector {name} changed"


@pytest.mark.parametrize("name", NAMES)
def test_vector_decodes_to_source(name: str, tmp_path: Path) -> None:
    v = vec(name)
    out = tmp_path / v["source"]
    bigsmall.decompress(VECTORS / v["bs"], out, base=base_of(v))
    assert tree_shas(out) == v["files"], f"{v['bs']} no longer decodes to its source"


@pytest.mark.parametrize("name", NAMES)
def test_vector_verifies_full(name: str) -> None:
    v = vec(name)
    with bigsmall.open(VECTORS / v["bs"], base=base_of(v)) as bs:
        rep = bs.verify("full")
        assert rep.ok, rep.problems
        assert rep.tensors_checked == rep.tensors_total
        assert rep.files_checked == len(v["files"])
        assert sorted({t.codec for t in bs.container.tensors}) == v["codecs"]
        assert tuple(bs.container.version) == tuple(v["format_version"])
        with open(VECTORS / v["bs"], "rb") as fh:
            h = fmt.parse_header(fh.read(64))
        assert (h["major"], h["minor"]) == tuple(v["format_version"])


@pytest.mark.parametrize("name", NAMES)
def test_reference_decoder_from_the_spec(name: str) -> None:
    """spec/reference_decoder.py (written from FORMAT.md alone) restores every vector."""
    sys.path.insert(0, str(SPEC))
    try:
        rd = importlib.import_module("reference_decoder")
    finally:
        sys.path.remove(str(SPEC))
    v = vec(name)
    base = base_of(v)
    files = rd.restore((VECTORS / v["bs"]).read_bytes(), None if base is None else base_tensors(base))
    assert {p: hashlib.sha256(d).hexdigest() for p, d in files.items()} == v["files"]


def test_every_codec_has_a_vector() -> None:
    from bigsmall.codecs import builtin  # noqa: F401  (registers the built-in codecs)
    from bigsmall.codecs.base import _REGISTRY

    used: set[str] = set()
    for name in NAMES:
        used |= codecs_in(VECTORS / vec(name)["bs"])
    missing = (set(_REGISTRY) | {"ref"}) - used
    assert not missing, (
        f"codec id(s) {sorted(missing)} appear in no golden vector: add a vector that exercises "
        "them to spec/make_vectors.py so that no codec ships untested"
    )


@pytest.mark.parametrize("codec", ["field", "field8", "fieldp"])
def test_vectors_cover_field_features(codec: str) -> None:
    """The field codecs' optional parts each appear in some vector (grid, mb, row shift, chunks)."""
    seen: dict[str, bool] = dict.fromkeys(
        ("grid_rows", "grid_cols", "mantissa", "row_shift", "multi_chunk", "fp8", "bytes", "lut"),
        False)
    for name in NAMES:
        with bigsmall.open(VECTORS / vec(name)["bs"]) as bs:
            for t in bs.container.tensors:
                if t.codec == "lut":
                    seen["lut"] = True
                if t.codec != codec:
                    continue
                width, p, eb, mb = t.params["layout"]
                kr, kc = t.params["grid"]
                seen["grid_rows"] |= kr > 1
                seen["grid_cols"] |= kc > 1
                seen["mantissa"] |= mb > 0
                seen["row_shift"] |= bool(t.params["row_shift"])
                seen["multi_chunk"] |= len(t.chunk_lens) > 1
                seen["fp8"] |= (width, p, eb, mb) == (8, 0, 4, 3)
                seen["bytes"] |= (width, p, eb, mb) == (8, 0, 8, 0)
    assert all(seen.values()), f"no {codec} vector exercises: {[k for k, v in seen.items() if not v]}"


def _index_doc(data: bytes) -> dict[str, Any]:
    h = fmt.parse_header(data[:64], len(data))
    stored = data[int(h["index_offset"]) : int(h["index_offset"]) + int(h["index_length"])]
    return json.loads(zstandard.ZstdDecompressor().decompress(stored))


def _explain(old: bytes, new: bytes) -> str:
    """Where two containers differ: header, which tensors' coding, or the index only."""
    first = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
    lines = [f"sizes {len(old)} (committed) vs {len(new)} (today); first difference at byte {first}"]
    try:
        a, b = _index_doc(old), _index_doc(new)
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        return "\n".join(lines + [f"(today's index unreadable: {exc})"])
    if a.get("meta") != b.get("meta"):
        lines.append(f"meta: {a.get('meta')} -> {b.get('meta')}")
    ta = {t["name"]: t for t in a["tensors"]}
    for t in b["tensors"]:
        o = ta.get(t["name"])
        if o is None:
            lines.append(f"new tensor {t['name']}")
            continue
        o_blob = old[o["blob"][0] : o["blob"][0] + o["blob"][1] + sum(o["blob"][2])]
        n_blob = new[t["blob"][0] : t["blob"][0] + t["blob"][1] + sum(t["blob"][2])]
        if (o["codec"], o["params"]) != (t["codec"], t["params"]):
            lines.append(f"{t['name']}: {o['codec']} {o['params']} -> {t['codec']} {t['params']}")
        elif o_blob != n_blob:
            lines.append(f"{t['name']}: same codec and params, different coded bytes")
    if [t["name"] for t in a["tensors"]] != [t["name"] for t in b["tensors"]]:
        lines.append("tensor (blob) order changed")
    return "\n  ".join(lines)


@pytest.mark.parametrize("name", NAMES)
def test_encoder_output_is_pinned(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compressing the committed source today gives the committed .bs, byte for byte."""
    v = vec(name)
    # the index records the writer's package version; pin it so a release bump alone is no change
    writer = str(MANIFEST["writer"])
    compress_mod = importlib.import_module("bigsmall.io.compress")
    monkeypatch.setattr(compress_mod, "__version__", writer.split(" ", 1)[1])
    out = tmp_path / v["bs"]
    kw: dict[str, Any] = {} if v["chunk_bytes"] is None else {"chunk_bytes": int(v["chunk_bytes"])}
    kw["format_version"] = ".".join(str(x) for x in v["format_version"])
    kw["coder"] = v.get("coder", "rans")
    if "base" in v:
        kw["delta_from"] = VECTORS / v["base"]
    bigsmall.compress(VECTORS / v["source"], out, progress=False, **kw)
    old = (VECTORS / v["bs"]).read_bytes()
    new = out.read_bytes()
    if new != old:
        pytest.fail(
            f"the encoder's output for golden vector {name!r} changed (spec/vectors/{v['bs']}):\n  "
            + _explain(old, new) + "\n" + REGENERATE,
            pytrace=False,
        )


# ----------------------------------------------------------------- versioning rules (FORMAT.md §16)

def _rebuild(data: bytes, doc: dict[str, Any] | None = None, major: int | None = None) -> bytes:
    """A copy of a container with a rewritten index and/or major version, checksums redone."""
    h = fmt.parse_header(data[:64], len(data))
    ioff = int(h["index_offset"])
    body = data[:ioff]
    index = data[ioff : ioff + int(h["index_length"])]
    if doc is not None:
        raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        index = zstandard.ZstdCompressor(level=9).compress(raw)
    flen = ioff + len(index)
    hdr = struct.pack("<8sHHIQQQ16s", fmt.MAGIC, major if major is not None else int(h["major"]),
                      int(h["minor"]), int(h["flags"]), ioff, len(index), flen,
                      xxhash.xxh3_128_digest(index))
    hdr += struct.pack("<Q", xxhash.xxh3_64_intdigest(hdr))
    return hdr + body[64:] + index


def test_newer_major_version_is_refused_by_name(tmp_path: Path) -> None:
    p = tmp_path / "future.bs"
    p.write_bytes(_rebuild((VECTORS / "tied.bs").read_bytes(), major=2))
    with pytest.raises(UnsupportedVersionError, match=r"2\.0"):
        bigsmall.open(p)


def test_unknown_codec_id_is_refused_by_name(tmp_path: Path) -> None:
    data = (VECTORS / "tied.bs").read_bytes()
    doc = _index_doc(data)
    target = next(t for t in doc["tensors"] if t["codec"] == "field")
    target["codec"] = "future-codec"
    p = tmp_path / "newcodec.bs"
    p.write_bytes(_rebuild(data, doc))
    with bigsmall.open(p) as bs:
        with pytest.raises(UnknownCodecError, match="future-codec"):
            bs.read(target["name"])
        # the tie resolves to the unknown codec too: it must fail the same way, never give bytes
        ref = next(t["name"] for t in doc["tensors"] if t["codec"] == "ref")
        with pytest.raises(UnknownCodecError):
            bs.read(ref)
        # verify may raise (the file is unreadable to this version) but must never say "ok"
        try:
            report = bs.verify("full")
        except UnknownCodecError:
            pass
        else:
            assert not report.ok
