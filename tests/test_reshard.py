"""``bigsmall reshard``: split along layers, merge back byte for byte, every reader accepts a
shard folder, and a hostile shard index or shard is a typed error."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigsmall
from bigsmall.cli import main
from bigsmall.errors import (
    BigsmallError,
    BigsmallIOError,
    FormatError,
    IntegrityError,
    InvalidOptionError,
    OutputExistsError,
    ShardError,
    TruncatedError,
)
from bigsmall.io.reshard import parse_size, reshard
from bigsmall.io.shards import SHARD_HEADER, ShardSource, pack_shard_header


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def minilm_bs(tmp_path_factory: pytest.TempPathFactory, minilm_fp32: Path) -> Path:
    out = tmp_path_factory.mktemp("reshard") / "model.bs"
    bigsmall.compress(minilm_fp32, out)
    return out


@pytest.fixture(scope="module")
def split(minilm_bs: Path) -> Path:
    out = minilm_bs.parent / "shards"
    reshard(minilm_bs, out, max_shard_size="20MB")
    return out


def index_doc(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "model.bs.index.json").read_text())


def test_split_along_layers(minilm_bs: Path, split: Path) -> None:
    doc = index_doc(split)
    names = sorted(os.listdir(split))
    shards = [s["path"] for s in doc["shards"]]
    assert names == sorted([*shards, "model.bs.index.json"])
    assert len(shards) >= 4 and shards[0] == f"model-00001-of-{len(shards):05d}.bs"
    with bigsmall.open(minilm_bs) as bs:
        c = bs.container
        starts = [s["start"] for s in doc["shards"]]
        # every stored tensor maps to the shard that holds its whole blob; no blob is split
        for t in c.tensors:
            assert t.name in doc["weight_map"]
            if t.length:
                k = max(i for i, s in enumerate(starts) if s <= t.offset)
                s = doc["shards"][k]
                assert t.offset + t.length <= s["start"] + s["length"]
                assert doc["weight_map"][t.name] == s["path"]
        # a layer is never split while it fits: each layer's tensors in one shard
        by_layer: dict[int, set[str]] = {}
        for t in c.tensors:
            if t.layer is not None and t.length:
                by_layer.setdefault(t.layer, set()).add(doc["weight_map"][t.name])
        assert by_layer and all(len(v) == 1 for v in by_layer.values())
    sizes = [(split / p).stat().st_size for p in shards]
    # only the 37 MB word embedding (alone) may exceed 20 MB
    assert sum(1 for s in sizes if s > 20_000_000) == 1
    assert sum(sizes) == minilm_bs.stat().st_size - 64 - len(base64.b64decode(doc["container"]["index"])) \
        + SHARD_HEADER * len(shards)


def test_merge_restores_the_container(minilm_bs: Path, split: Path, tmp_path: Path) -> None:
    merged = tmp_path / "merged.bs"
    r = reshard(split, merged)
    assert r.shards == 1 and sha(merged) == sha(minilm_bs)
    # resharding a shard folder to another size, then merging: the same bytes again
    two = tmp_path / "two"
    r = reshard(split, two, max_shard_size="50MB")
    assert r.shards == 2 and r.oversize == 0
    reshard(two, tmp_path / "again.bs")
    assert sha(tmp_path / "again.bs") == sha(minilm_bs)


def test_readers_accept_a_shard_folder(minilm_bs: Path, split: Path, minilm_fp32: Path,
                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with bigsmall.open(split) as a, bigsmall.open(minilm_bs) as b:
        assert a.names() == b.names()
        name = "encoder.layer.3.intermediate.dense.weight"
        assert np.array_equal(a.read(name), b.read(name))
        assert a.verify("full").ok
    out = tmp_path / "restored.safetensors"
    bigsmall.decompress(split, out)
    assert sha(out) == sha(minilm_fp32)
    for cmd in ("info", "stat", "verify"):
        assert main([cmd, str(split), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc
    assert main(["info", str(split), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tensors"] == 104


def test_small_limits_and_folder_containers(small_model: Path, tmp_path: Path) -> None:
    """A folder container (a config file's frame after the tensors) cut one tensor a shard."""
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(small_model, folder / "model.safetensors")
    (folder / "config.json").write_text('{"a": 1}')
    bs = tmp_path / "m.bs"
    bigsmall.compress(folder, bs)
    r = reshard(bs, tmp_path / "tiny", max_shard_size=1)
    assert r.shards >= 3 and r.oversize == r.shards  # every stored blob in a shard of its own
    bigsmall.decompress(tmp_path / "tiny", tmp_path / "restored")
    for name in ("model.safetensors", "config.json"):
        assert sha(tmp_path / "restored" / name) == sha(folder / name)
    reshard(tmp_path / "tiny", tmp_path / "back.bs")
    assert sha(tmp_path / "back.bs") == sha(bs)


def test_sizes() -> None:
    assert parse_size("2GB") == 2_000_000_000
    assert parse_size("500MiB") == 500 << 20
    assert parse_size("1048576") == 1 << 20
    assert parse_size("1.5 kb") == 1500
    for bad in ("", "2 GX", "-1", "0", "GB"):
        with pytest.raises(InvalidOptionError):
            parse_size(bad)


def test_outputs_are_atomic_and_never_overwritten(minilm_bs: Path, split: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(OutputExistsError):
        reshard(minilm_bs, out)
    assert os.listdir(out) == ["keep"]
    with pytest.raises(SystemExit) as usage:  # a usage error: exit 2, before any work
        main(["reshard", str(minilm_bs), "-o", str(out), "--max-shard-size", "3 parsecs"])
    assert usage.value.code == 2 and "--max-shard-size" in capsys.readouterr().err
    assert main(["reshard", str(minilm_bs), "-o", str(out), "-f", "--max-shard-size", "40MB",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["shards"] == len(index_doc(out)["shards"]) and "keep" not in os.listdir(out)


# --------------------------------------------------------------------------- hostile input

def _copy(split: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "hostile"
    shutil.copytree(split, dst)
    return dst


def _edit(folder: Path, fn: Any) -> Path:
    p = folder / "model.bs.index.json"
    doc = json.loads(p.read_text())
    fn(doc)
    p.write_text(json.dumps(doc))
    return folder


def _set(key: str, value: Any) -> Any:
    def fn(doc: dict[str, Any]) -> None:
        target: Any = doc
        parts = key.split("/")
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return fn


HOSTILE = {
    "wrong format": _set("format", "bigsmall"),
    "newer version": _set("version", 2),
    "shards not a list": _set("shards", {"a": 1}),
    "no shards": _set("shards", []),
    "path traversal": _set("shards/0/path", "../model-00001-of-00004.bs"),
    "absolute path": _set("shards/0/path", "/etc/passwd"),
    "start moved": _set("shards/1/start", 65),
    "negative length": _set("shards/0/length", -1),
    "length a string": _set("shards/0/length", "12"),
    "bool start": _set("shards/0/start", True),
    "bad digest": _set("shards/0/xxh3", "zz"),
    "header not base64": _set("container/header", "!!!"),
    "short header": _set("container/header", base64.b64encode(b"\x89BSM").decode()),
    "index bytes changed": lambda d: d["container"].__setitem__(
        "index", base64.b64encode(base64.b64decode(d["container"]["index"])[:-1] + b"\0").decode()),
    "weight map to a missing shard": _set("weight_map/embeddings.word_embeddings.weight", "x.bs"),
    "weight map to another shard": lambda d: d["weight_map"].__setitem__(
        "embeddings.word_embeddings.weight", d["shards"][-1]["path"]),
    "shard listed twice": lambda d: d["shards"].__setitem__(1, dict(d["shards"][0], start=d["shards"][1]["start"])),
    "tail path traversal": _set("tail", {"path": "../evil", "length": 1, "xxh3": "0" * 32}),
    "tail named like a shard": lambda d: d.__setitem__("tail", {
        "path": d["shards"][0]["path"], "length": 1, "xxh3": "0" * 32}),
    "not json": None,
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_index(split: Path, tmp_path: Path, case: str,
                       capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(split, tmp_path)
    if HOSTILE[case] is None:
        (folder / "model.bs.index.json").write_bytes(b"{\"format\": \"bigsmall-shards\", \x00")
    else:
        _edit(folder, HOSTILE[case])
    with pytest.raises(BigsmallError) as info:
        bigsmall.open(folder)
    assert isinstance(info.value, (ShardError, FormatError, IntegrityError))
    assert "\n" not in str(info.value)
    rc = main(["verify", str(folder)])
    assert rc == 1 and "Traceback" not in capsys.readouterr().err


def test_hostile_shards(split: Path, minilm_bs: Path, tmp_path: Path) -> None:
    folder = _copy(split, tmp_path)
    first, second = sorted(p for p in os.listdir(folder) if p.endswith(".bs"))[:2]
    data = (folder / second).read_bytes()
    # a shard swapped for another: its size or its header says so
    shutil.copy(folder / first, folder / second)
    with pytest.raises((ShardError, TruncatedError)):
        ShardSource(folder)
    # the same size, but the header of another shard (or another model's)
    (folder / second).write_bytes(pack_shard_header(1, 4, 64, len(data) - SHARD_HEADER)
                                  + data[SHARD_HEADER:])
    with pytest.raises(ShardError, match="not shard 2 of"):
        ShardSource(folder)
    # truncated
    (folder / second).write_bytes(data[:-10])
    with pytest.raises(TruncatedError):
        bigsmall.open(folder)
    # a flipped payload byte: verify names the damage, a merge refuses to copy it
    bad = bytearray(data)
    bad[SHARD_HEADER + len(bad) // 2] ^= 0x40
    (folder / second).write_bytes(bytes(bad))
    with bigsmall.open(folder) as f:
        assert not f.verify("full").ok
    with pytest.raises(IntegrityError):
        reshard(folder, tmp_path / "merged.bs")
    assert not (tmp_path / "merged.bs").exists()
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]
    # two indexes: which one is meant is unclear
    (folder / second).write_bytes(data)
    shutil.copy(folder / "model.bs.index.json", folder / "other.bs.index.json")
    with pytest.raises(ShardError):
        bigsmall.open(folder)
    # a folder that holds no index: what any folder given as a .bs gets
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BigsmallIOError, match="is a folder"):
        bigsmall.open(empty)


def test_tools_leave_no_cyclic_garbage(minilm_bs: Path, tmp_path: Path) -> None:
    """xray, scan and reshard run with the cyclic collector off in the CLI
    (``cli.NO_GC_COMMANDS``): second runs must leave no unreachable cycles behind (the
    shard index was once written with ``json.dumps(indent=...)``, whose encoder is cycles)."""
    import gc

    from bigsmall.cli import NO_GC_COMMANDS
    from bigsmall.io.scan import scan
    from bigsmall.io.xray import xray

    assert {"xray", "scan", "reshard"} <= NO_GC_COMMANDS
    src = minilm_bs.parent / "small.safetensors"
    rng = np.random.default_rng(0)
    x = (rng.standard_t(5, (256, 300)) * 0.02).astype(np.float32)
    from bigsmall.testing.synthetic import write_safetensors

    write_safetensors(src, {"model.layers.0.a.weight": ("F32", (256, 300), x.tobytes()),
                            "model.layers.1.a.weight": ("F32", (256, 300), (x * 2).tobytes())})

    def once() -> None:
        shutil.rmtree(tmp_path / "s", ignore_errors=True)
        reshard(minilm_bs, tmp_path / "s", max_shard_size="30MB")
        reshard(tmp_path / "s", tmp_path / "m.bs", force=True)
        xray(tmp_path / "s")
        scan(src)

    once()
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        once()
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()


def test_ecc_section_travels(small_model: Path, tmp_path: Path) -> None:
    """A file with `compress --ecc`'s parity after the container: the shards keep that
    section apart (NAME.bs.tail) and a merge gives the whole file back, parity included."""
    bs = tmp_path / "ecc.bs"
    bigsmall.compress(small_model, bs, ecc=2)
    with bigsmall.open(bs) as f:
        core = int(f.header["file_length"])
    assert bs.stat().st_size > core  # there is a section after the container
    reshard(bs, tmp_path / "s", max_shard_size="1KB")
    doc = json.loads((tmp_path / "s" / "ecc.bs.index.json").read_text())
    assert doc["tail"]["path"] == "ecc.bs.tail"
    assert doc["tail"]["length"] == bs.stat().st_size - core
    with bigsmall.open(tmp_path / "s") as f:
        assert f.verify("full").ok
    reshard(tmp_path / "s", tmp_path / "t")  # re-cut: the section follows
    reshard(tmp_path / "t", tmp_path / "back.bs")
    assert sha(tmp_path / "back.bs") == sha(bs)
    # a damaged section is refused by a merge, and a missing one is a typed error on open
    tail = tmp_path / "t" / "ecc.bs.tail"
    data = bytearray(tail.read_bytes())
    data[0] ^= 1
    tail.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        reshard(tmp_path / "t", tmp_path / "bad.bs")
    tail.unlink()
    with pytest.raises(BigsmallError):
        bigsmall.open(tmp_path / "t")


def test_load_from_a_shard_folder(minilm_bs: Path, split: Path) -> None:
    torch = pytest.importorskip("torch")
    a, b = bigsmall.load(split), bigsmall.load(minilm_bs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
