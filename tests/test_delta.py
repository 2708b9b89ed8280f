"""Fine-tune patches: compress --delta-from, apply, decompress --base, open/load with a base,
diff, and every way a base can be wrong (docs/delta.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.cli import main
from bigsmall.errors import BaseMismatchError, BaseRequiredError, FormatError
from bigsmall.io.reader import BsFile
from bigsmall.testing.finetune import finetune_pair
from bigsmall.testing.synthetic import write_safetensors


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main([*argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="session")
def pair() -> tuple[Path, Path]:
    """MiniLM bf16 and its 40-step AdamW fine-tune (cached: ~30 s to build once)."""
    return finetune_pair("bf16", 40)


@pytest.fixture(scope="session")
def patch(pair: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    base, ft = pair
    out = tmp_path_factory.mktemp("patch") / "ft.bs"
    bigsmall.compress(ft, out, delta_from=base)
    return out


def _tensors(path: Path) -> dict[str, tuple[str, list[int], bytes]]:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    return {k: (v["dtype"], v["shape"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}


def _rewrite(src: Path, dst: Path, change: dict[str, tuple[str, tuple[int, ...], bytes] | None]) -> Path:
    """``src`` with some tensors replaced (None: removed); the rest byte for byte."""
    t = {k: (d, tuple(s), b) for k, (d, s, b) in _tensors(src).items()}
    for k, v in change.items():
        if v is None:
            t.pop(k)
        else:
            t[k] = v
    return write_safetensors(dst, t, {"format": "pt"})


# ---------------------------------------------------------------- the MiniLM pair

def test_patch_size_and_cli_round_trip(pair: tuple[Path, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    base, ft = pair
    p = tmp_path / "p.bs"
    rc, out, _ = run(capsys, "compress", str(ft), "--delta-from", str(base), "-o", str(p), "--json")
    assert rc == 0
    r = json.loads(out)
    assert r["delta_from"] == str(base)
    size = ft.stat().st_size
    assert p.stat().st_size <= 0.085 * size, p.stat().st_size / size  # the target
    rc, _, _ = run(capsys, "apply", str(base), str(p), "-o", str(tmp_path / "a.safetensors"))
    assert rc == 0 and (tmp_path / "a.safetensors").read_bytes() == ft.read_bytes()
    rc, _, _ = run(capsys, "decompress", str(p), "--base", str(base), "-o", str(tmp_path / "d.safetensors"))
    assert rc == 0 and (tmp_path / "d.safetensors").read_bytes() == ft.read_bytes()
    rc, out, _ = run(capsys, "info", str(p), "--json")
    info = json.loads(out)
    assert info["base"]["name"] == base.name
    assert info["base"]["files"][0]["size"] == base.stat().st_size
    assert {"delta", "base"} <= set(info["codecs"])
    rc, out, _ = run(capsys, "info", str(p))
    assert f"needs base {base.name!r}" in out


def test_patch_is_smaller_than_standalone_and_xor_zstd(pair: tuple[Path, Path], patch: Path,
                                                       tmp_path: Path) -> None:
    import zstandard

    base, ft = pair
    standalone = bigsmall.compress(ft, tmp_path / "s.bs", level="fast")
    assert patch.stat().st_size < 0.2 * standalone.compressed_bytes
    a, b = _tensors(base), _tensors(ft)
    xor = sum(len(zstandard.ZstdCompressor(level=3).compress(
        (np.frombuffer(a[k][2], np.uint8) ^ np.frombuffer(b[k][2], np.uint8)).tobytes())) for k in a)
    assert patch.stat().st_size <= 0.75 * xor  # >= 25 % below XOR + zstd (level 3 here: fast)


def test_open_and_load_with_base(pair: tuple[Path, Path], patch: Path) -> None:
    base, ft = pair
    want = _tensors(ft)
    with bigsmall.open(patch, base=base) as bs:
        for name in ("embeddings.word_embeddings.weight", "encoder.layer.3.output.dense.weight",
                     "embeddings.position_ids"):
            assert bs.read_bytes(name).tobytes() == want[name][2]
        assert bs.verify("full").ok
    torch = pytest.importorskip("torch")
    sd = bigsmall.load(patch, base=base)
    w = sd["encoder.layer.0.attention.self.query.weight"]
    assert w.dtype == torch.bfloat16
    assert w.view(torch.uint8).numpy().tobytes() == want["encoder.layer.0.attention.self.query.weight"][2]


def test_streaming_with_base(pair: tuple[Path, Path], patch: Path, tmp_path: Path) -> None:
    """StreamingLoader(patch, base=) yields the fine-tune's tensors bit for bit, and
    StreamingModel(patch, base=) computes what the standalone container's StreamingModel does
    (a wrong base is refused on open, as by ``open``)."""
    import shutil

    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from bigsmall.testing.corpus import minilm_dir
    from bigsmall.torch.streaming import StreamingLoader

    base, ft = pair
    want = _tensors(ft)
    got: dict[str, object] = {}
    with StreamingLoader(patch, base=base) as sl:
        got.update(sl.load_non_layer_tensors())
        for _i, tensors in sl.iter_layers():
            got.update(tensors)
    assert set(got) == set(want)
    for name, t in got.items():
        assert t.contiguous().view(torch.uint8).numpy().tobytes() == want[name][2], name  # type: ignore[attr-defined]
    with pytest.raises(BaseMismatchError):
        StreamingLoader(patch, base=ft)
    folder = tmp_path / "ft"
    folder.mkdir()
    shutil.copy(minilm_dir() / "config.json", folder)
    shutil.copy(ft, folder / "model.safetensors")
    fpatch, alone = tmp_path / "folder.patch.bs", tmp_path / "folder.bs"
    bigsmall.compress(folder, fpatch, delta_from=base)
    bigsmall.compress(folder, alone)
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])
    with bigsmall.StreamingModel(alone) as sm:
        ref = sm(input_ids=ids).last_hidden_state
    with bigsmall.StreamingModel(fpatch, base=base) as sm:
        out = sm(input_ids=ids).last_hidden_state
    assert torch.equal(out, ref)


def test_base_from_a_bs(pair: tuple[Path, Path], patch: Path, tmp_path: Path) -> None:
    base, ft = pair
    bbs = tmp_path / "base.bs"
    bigsmall.compress(base, bbs, level="fast")
    bigsmall.apply(bbs, patch, tmp_path / "o.safetensors")
    assert (tmp_path / "o.safetensors").read_bytes() == ft.read_bytes()


# ---------------------------------------------------------------- wrong bases

def _flip_bit(src: Path, dst: Path, name: str) -> Path:
    t = _tensors(src)
    data = bytearray(t[name][2])
    data[len(data) // 2] ^= 0x04
    return _rewrite(src, dst, {name: (t[name][0], tuple(t[name][1]), bytes(data))})


def test_wrong_base_one_bit(pair: tuple[Path, Path], patch: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = pair
    bad = _flip_bit(base, tmp_path / "bad.safetensors", "encoder.layer.2.intermediate.dense.weight")
    out = tmp_path / "o.safetensors"
    with pytest.raises(BaseMismatchError, match="encoder.layer.2.intermediate.dense.weight"):
        bigsmall.apply(bad, patch, out)
    assert not out.exists()
    rc, _, err = run(capsys, "apply", str(bad), str(patch), "-o", str(out))
    assert rc == 1 and "encoder.layer.2.intermediate.dense.weight" in err and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.safetensors"]  # no temporary left


def test_wrong_base_missing_tensor_other_dtype_none(pair: tuple[Path, Path], patch: Path,
                                                    tmp_path: Path) -> None:
    base, _ = pair
    missing = _rewrite(base, tmp_path / "m.safetensors", {"encoder.layer.1.output.dense.bias": None})
    with pytest.raises(BaseMismatchError, match="encoder.layer.1.output.dense.bias"):
        bigsmall.open(patch, base=missing)
    from bigsmall.testing.corpus import minilm_safetensors

    with pytest.raises(BaseMismatchError, match="F32"):  # the fp32 model as the base of a bf16 patch
        bigsmall.decompress(patch, tmp_path / "o.safetensors", base=minilm_safetensors())
    with pytest.raises(BaseRequiredError):
        bigsmall.decompress(patch, tmp_path / "o.safetensors")
    with bigsmall.open(patch) as bs:  # without a base: the index reads, a delta tensor does not
        assert "embeddings.word_embeddings.weight" in bs.names()
        with pytest.raises(BaseRequiredError):
            bs.read_bytes("embeddings.word_embeddings.weight")
    assert not (tmp_path / "o.safetensors").exists()


# ---------------------------------------------------------------- identical, unrelated, changed layout

def _model(tmp_path: Path, name: str, seed: int, rows: int = 256) -> Path:
    rng = np.random.default_rng(seed)

    def bf16(*shape: int) -> bytes:
        return (rng.normal(0, 0.05, shape).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()

    t = {"emb.weight": ("BF16", (rows, 64), bf16(rows, 64)),
         "layers.0.w": ("BF16", (64, 64), bf16(64, 64)),
         "layers.0.b": ("F32", (64,), rng.normal(0, 1, 64).astype(np.float32).tobytes()),
         "layers.0.ids": ("I64", (8,), np.arange(8, dtype=np.int64).tobytes())}
    return write_safetensors(tmp_path / name, t, {"format": "pt"})


def test_base_by_url(tmp_path: Path) -> None:
    """A base given as a URL (safetensors or .bs, read by range requests on a 127.0.0.1 server
    this test starts): compress --delta-from, apply and open work as with the local file, and
    a wrong remote base is refused."""
    from bigsmall.testing.http_server import TestServer

    base = _model(tmp_path, "base.safetensors", 1)
    raw = bytearray(base.read_bytes())
    raw[-200] ^= 1  # a fine-tune: one value of the last tensor's data changed
    ft = tmp_path / "ft.safetensors"
    ft.write_bytes(bytes(raw))
    bigsmall.compress(base, tmp_path / "base.bs")
    wrong = _model(tmp_path, "wrong.safetensors", 2)
    with TestServer(tmp_path) as srv:
        for name in ("base.safetensors", "base.bs"):
            url = srv.file_url(name)
            patch = tmp_path / f"p-{name}.bs"
            bigsmall.compress(ft, patch, delta_from=url)
            out = tmp_path / f"o-{name}.safetensors"
            bigsmall.apply(url, patch, out)
            assert out.read_bytes() == ft.read_bytes()
            with bigsmall.open(patch, base=url) as bs:
                assert bs.container.meta["base"]["name"] == name
                assert bs.verify("full").ok
        with pytest.raises(BaseMismatchError):
            bigsmall.apply(srv.file_url("wrong.safetensors"), patch, tmp_path / "bad.safetensors")
    assert wrong.exists() and not (tmp_path / "bad.safetensors").exists()


def test_identical_models_cost_nothing(pair: tuple[Path, Path], tmp_path: Path) -> None:
    base, _ = pair
    r = bigsmall.compress(base, tmp_path / "same.bs", delta_from=base)
    assert r.compressed_bytes <= 0.001 * base.stat().st_size
    assert set(r.codecs) == {"base"}
    bigsmall.apply(base, tmp_path / "same.bs", tmp_path / "o.safetensors")
    assert (tmp_path / "o.safetensors").read_bytes() == base.read_bytes()


def test_unrelated_model_no_larger_than_standalone(tmp_path: Path) -> None:
    a = _model(tmp_path, "a.safetensors", 1, rows=2048)
    b = _model(tmp_path, "b.safetensors", 2, rows=2048)
    patch = bigsmall.compress(b, tmp_path / "p.bs", delta_from=a)
    alone = bigsmall.compress(b, tmp_path / "s.bs")
    assert patch.compressed_bytes <= alone.compressed_bytes * 1.001 + 512  # + the base's receipts
    bigsmall.apply(a, tmp_path / "p.bs", tmp_path / "o.safetensors")
    assert (tmp_path / "o.safetensors").read_bytes() == b.read_bytes()


def test_renamed_reshaped_added_removed(tmp_path: Path) -> None:
    base = _model(tmp_path, "base.safetensors", 3)
    t = _tensors(base)
    rng = np.random.default_rng(4)
    ft = _rewrite(base, tmp_path / "ft.safetensors", {
        "layers.0.w": None, "renamed.w": (t["layers.0.w"][0], (64, 64), t["layers.0.w"][2]),
        "emb.weight": ("BF16", (300, 64), t["emb.weight"][2] + bytes(44 * 64 * 2)),  # vocab grown
        "head.new": ("F16", (7, 3), rng.normal(0, 1, 21).astype(np.float16).tobytes()),
    })
    p = tmp_path / "p.bs"
    bigsmall.compress(ft, p, delta_from=base)
    with BsFile(p) as bs:
        codec = {t.name: (t.codec, t.params.get("of")) for t in bs.container.tensors}
    assert codec["renamed.w"] == ("base", "layers.0.w")  # matched by content
    assert codec["emb.weight"][0] not in ("base", "delta")  # reshaped: standalone
    assert codec["head.new"][0] not in ("base", "delta")
    assert codec["layers.0.ids"] == ("base", "layers.0.ids")
    bigsmall.apply(base, p, tmp_path / "o.safetensors")
    assert (tmp_path / "o.safetensors").read_bytes() == ft.read_bytes()


def test_delta_from_and_resume_refused(tmp_path: Path) -> None:
    from bigsmall.errors import InvalidOptionError

    m = _model(tmp_path, "m.safetensors", 5)
    with pytest.raises(InvalidOptionError):
        bigsmall.compress(m, tmp_path / "p.bs", delta_from=m, resume=True)


# ---------------------------------------------------------------- crafted patches

def _reindex(src: Path, dst: Path, edit: object) -> Path:
    """``src`` with its index JSON changed by ``edit(doc)`` (header and digest rewritten)."""
    import zstandard

    from bigsmall.container import format as fmt

    raw = src.read_bytes()
    h = fmt.parse_header(raw[:64])
    doc = json.loads(zstandard.ZstdDecompressor().decompress(raw[h["index_offset"]:h["index_offset"] + h["index_length"]]))
    edit(doc)  # type: ignore[operator]
    index = zstandard.ZstdCompressor().compress(json.dumps(doc).encode())
    body = raw[64:h["index_offset"]]
    flen = 64 + len(body) + len(index)
    hdr = fmt.pack_header(64 + len(body), len(index), flen, fmt.index_digest(index),
                          version=(h["major"], h["minor"]))
    dst.write_bytes(hdr + body + index)
    return dst


@pytest.mark.parametrize("edit", [
    lambda d: d["meta"]["base"].update(tensors=[["x", "BF16", [2], "zz"]]),
    lambda d: d["meta"]["base"].update(tensors=[["x", "NOPE", [2], "0" * 32]]),
    lambda d: d["meta"]["base"].update(files=[{"path": "a", "size": -1, "sha256": "0" * 64}]),
    lambda d: d["meta"].__setitem__("base", [1, 2]),
    lambda d: d["meta"].pop("base"),  # delta tensors in a container that names no base
    lambda d: [t["params"].__setitem__("of", 7) for t in d["tensors"] if t["codec"] == "delta"],
])
def test_crafted_index_is_a_format_error(tmp_path: Path, edit: object) -> None:
    base = _model(tmp_path, "base.safetensors", 6)
    t = _tensors(base)
    w = np.frombuffer(t["layers.0.w"][2], np.uint16).copy()
    w[::3] += 1
    ft = _rewrite(base, tmp_path / "ft.safetensors", {"layers.0.w": ("BF16", (64, 64), w.tobytes())})
    p = tmp_path / "p.bs"
    bigsmall.compress(ft, p, delta_from=base)
    with pytest.raises(FormatError):
        BsFile(_reindex(p, tmp_path / "bad.bs", edit)).close()


def test_corrupt_delta_blob_is_typed(tmp_path: Path) -> None:
    """Damage inside a delta blob (index intact): a typed error naming the tensor, never a
    crash or wrong bytes."""
    from bigsmall.errors import BigsmallError

    base = _model(tmp_path, "base.safetensors", 7)
    t = _tensors(base)
    w = np.frombuffer(t["layers.0.w"][2], np.uint16).copy()
    w[::2] += 1
    ft = _rewrite(base, tmp_path / "ft.safetensors", {"layers.0.w": ("BF16", (64, 64), w.tobytes())})
    p = tmp_path / "p.bs"
    bigsmall.compress(ft, p, delta_from=base)
    with BsFile(p) as bs:
        e = bs.entry("layers.0.w")
        assert e.codec == "delta"
    raw = bytearray(p.read_bytes())
    for k in range(e.offset, e.offset + e.length, max(1, e.length // 16)):
        bad = bytearray(raw)
        bad[k] ^= 0x5A
        (tmp_path / "bad.bs").write_bytes(bytes(bad))
        with pytest.raises(BigsmallError), BsFile(tmp_path / "bad.bs", base=base) as bs:
            bs.read_bytes("layers.0.w")


# ---------------------------------------------------------------- diff

def test_diff(pair: tuple[Path, Path], patch: Path, capsys: pytest.CaptureFixture[str],
              tmp_path: Path) -> None:
    base, ft = pair
    rc, out, _ = run(capsys, "diff", str(base), str(ft), "--json")
    assert rc == 0
    r = json.loads(out)
    assert 0.2 < r["fraction_changed"] < 0.4
    rows = {t["name"]: t for t in r["tensors"]}
    assert rows["embeddings.position_ids"]["status"] == "same"
    q = rows["encoder.layer.0.attention.self.query.weight"]
    assert q["status"] == "changed" and q["max_ulps"] >= 1 and 0 < q["rel_l2"] < 0.05
    fr = [t["fraction_changed"] for t in r["tensors"] if t["status"] in ("changed", "same")]
    assert fr == sorted(fr, reverse=True)  # most changed first
    rc, out, _ = run(capsys, "diff", str(base), str(ft))
    assert rc == 0 and out.strip().splitlines()[-1].startswith(f"{r['fraction_changed'] * 100:.2f} %")
    # a .bs on either side; added / removed / reshaped
    other = _rewrite(ft, tmp_path / "o.safetensors", {"pooler.dense.bias": None,
                                                     "new.x": ("F32", (2,), bytes(8))})
    bbs = tmp_path / "b.bs"
    bigsmall.compress(base, bbs, level="fast")
    from bigsmall.io.delta import diff

    r2 = diff(bbs, other)
    assert r2["counts"]["added"] == 1 and r2["counts"]["removed"] == 1
    assert r2["tensors"][0]["status"] == "added"


def test_whisper_decoder_only_fine_tune(tmp_path: Path) -> None:
    """Whisper tiny fp16, decoder fine-tuned, encoder frozen: every encoder tensor is a
    reference to the base (zero bytes), and the patch applies byte for byte."""
    from bigsmall.testing.finetune import whisper_pair

    base, ft = whisper_pair(3)  # cached; ~20 s to build once
    p = tmp_path / "w.bs"
    bigsmall.compress(ft, p, delta_from=base, level="fast")
    with BsFile(p) as bs:
        enc = [t for t in bs.container.tensors if t.name.startswith("encoder.")]
        assert enc and all(t.codec == "base" and t.length == 0 for t in enc)
        assert any(t.codec == "delta" for t in bs.container.tensors)
    bigsmall.apply(base, p, tmp_path / "o.safetensors")
    assert (tmp_path / "o.safetensors").read_bytes() == ft.read_bytes()


def test_verify_a_patch(pair: tuple[Path, Path], patch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without its base a patch is not 'corrupt': verify says the base is needed (exit 1);
    with it, OK; --fast checks the structure alone."""
    base, _ = pair
    rc, _, err = run(capsys, "verify", str(patch))
    assert rc == 1 and "patch against base" in err
    rc, out, _ = run(capsys, "verify", str(patch), "--base", str(base), "--json")
    assert rc == 0 and json.loads(out)["ok"]
    assert run(capsys, "verify", "--fast", str(patch))[0] == 0


def test_version_2_patch_still_decodes(tmp_path: Path) -> None:
    """The golden vector's patch as bigsmall wrote it before version 3 (four states a chunk,
    PB 13; kept in tests/delta_vectors) decodes to the fine-tune byte for byte, by the C
    decoder, by numba and by the spec's reference decoder; a patch written today is version 3."""
    import importlib
    import sys

    from bigsmall import native
    from bigsmall.codecs import delta as dcodec

    spec = Path(__file__).parent.parent / "spec"
    vectors = spec / "vectors"
    old = Path(__file__).parent / "delta_vectors" / "delta_v2.bs"
    base, want = vectors / "delta_base.safetensors", (vectors / "delta.safetensors").read_bytes()
    for switch in ("1", "0"):  # the C decoder where built, then the numba reference
        try:
            native.use(switch)
            bigsmall.apply(base, old, tmp_path / f"ft{switch}.safetensors")
        finally:
            native.use("1")
        assert (tmp_path / f"ft{switch}.safetensors").read_bytes() == want
    sys.path.insert(0, str(spec))
    try:
        rd = importlib.import_module("reference_decoder")
    finally:
        sys.path.remove(str(spec))
    with bigsmall.open(old) as f:
        heads = {t.name: f.source.read(t.offset, t.head_len) for t in f.container.tensors
                 if t.codec == dcodec.CODEC_ID}
    assert heads and all(h[0] == 2 for h in heads.values())
    from bigsmall.io.delta import BaseModel

    with BaseModel(base) as b:
        tensors = {n: bytes(b.data(n)) for n in b.specs}
    assert rd.restore(old.read_bytes(), tensors) == {"delta.safetensors": want}
    with bigsmall.open(vectors / "delta.bs") as f:
        assert all(f.source.read(t.offset, 1)[0] == dcodec.VERSION == 3
                   for t in f.container.tensors if t.codec == dcodec.CODEC_ID)
