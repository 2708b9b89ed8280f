"""compress -> decompress restores byte-identical files; open/read/load give the exact tensors."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.io.reader import BsFile
from bigsmall.testing.synthetic import write_safetensors


def load_file(p: Path) -> dict[str, np.ndarray]:
    """Reference tensors as raw bytes viewed as numpy (bf16/fp8 as bit patterns), via torch."""
    import torch
    from safetensors.torch import load_file as tload

    out = {}
    for k, t in tload(p).items():
        flat = t.reshape(-1)
        b = flat.view(torch.uint8) if t.element_size() > 1 or t.dtype != torch.uint8 else flat
        if t.dtype == torch.bool:
            b = flat.to(torch.uint8)
        out[k] = np.frombuffer(b.numpy().tobytes(), np.uint8).reshape(-1)
        out[k] = _shaped(out[k], tuple(t.shape))
    return out


class _shaped(np.ndarray):  # noqa: N801 - tiny carrier of (bytes, shape)
    def __new__(cls, data: np.ndarray, shape: tuple[int, ...]) -> _shaped:
        obj = np.asarray(data).view(cls)
        obj.ref_shape = shape
        return obj


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def roundtrip(src: Path, tmp: Path) -> tuple[Path, Path]:
    bs = tmp / (src.stem + ".bs")
    bigsmall.compress(src, bs)
    out = tmp / ("restored-" + src.name)
    bigsmall.decompress(bs, out)
    return bs, out


def test_small_model_roundtrip(small_model: Path, tmp_path: Path) -> None:
    bs, out = roundtrip(small_model, tmp_path)
    assert sha(out) == sha(small_model)
    with BsFile(bs) as f:
        names = f.names()
        assert set(names) == set(load_file(small_model)) | {"fp8"}
        codecs = {t.name: t.codec for t in f.container.tensors}
        assert codecs["lm_head.weight"] == "ref"  # tied weights stored once
        assert codecs["model.layers.0.norm.weight"] == "const"
        # non-layer tensors first, then layer 0, then layer 1
        layers = [t.layer for t in f.container.tensors]
        first_layer = next(i for i, layer in enumerate(layers) if layer is not None)
        assert all(layer is None for layer in layers[:first_layer])
        assert [x for x in layers if x is not None] == sorted(x for x in layers if x is not None)
        ref = load_file(small_model)
        for name, arr in ref.items():
            got = f.read(name)
            assert got.shape == arr.ref_shape
            assert got.tobytes() == arr.tobytes(), name
        assert f.verify("full").ok
        assert f.verify("fast").ok
        assert f.verify("sample", fraction=0.5).ok


def test_default_output_names(small_model: Path, tmp_path: Path) -> None:
    r = bigsmall.compress(small_model)
    assert Path(r.dst) == small_model.with_suffix(".bs")
    small_model.rename(tmp_path / "orig.safetensors")
    d = bigsmall.decompress(r.dst)
    assert Path(d.dst) == small_model
    assert sha(small_model) == sha(tmp_path / "orig.safetensors")


def test_folder_roundtrip_sharded(tmp_path: Path, small_model: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(small_model, folder / "model-00001-of-00002.safetensors")
    write_safetensors(folder / "model-00002-of-00002.safetensors",
                      {"model.layers.2.w": ("F32", (4, 4), np.arange(16, dtype=np.float32).tobytes())})
    (folder / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    (folder / "config.json").write_text('{"model_type": "test"}')
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    r = bigsmall.compress(folder)
    assert Path(r.dst) == tmp_path / "model.bs"
    out = tmp_path / "restored"
    bigsmall.decompress(r.dst, out)
    for p in folder.rglob("*"):
        if p.is_file():
            q = out / p.relative_to(folder)
            assert q.is_file() and sha(q) == sha(p), p


def test_load_into_torch(small_model: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file as tload

    bs, _ = roundtrip(small_model, tmp_path)
    got = bigsmall.load(bs)
    ref = tload(small_model)
    for name, t in ref.items():
        g = got[name]
        assert g.dtype == t.dtype and g.shape == t.shape, name
        assert torch.equal(g.view(torch.uint8) if g.dtype == torch.bool else g.reshape(-1).view(torch.uint8),
                           t.view(torch.uint8) if t.dtype == torch.bool else t.reshape(-1).view(torch.uint8)), name


@pytest.mark.parametrize("model", ["minilm_fp32", "minilm_bf16", "whisper_fp16"])
def test_real_models_restore_byte_identical(model: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    src: Path = request.getfixturevalue(model)
    bs, out = roundtrip(src, tmp_path)
    assert sha(out) == sha(src)
    assert bs.stat().st_size < src.stat().st_size * 0.9  # it actually compresses
    with BsFile(bs) as f:
        assert f.verify("full").ok


def test_checksum_collision_is_not_deduplicated(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Dedupe compares bytes, not just checksums: with every checksum forced equal, only the
    genuinely identical tensors become references (and the wrong receipts are then caught)."""
    import xxhash

    from bigsmall.errors import IntegrityError

    rng = np.random.default_rng(3)
    a, b = (rng.normal(size=64).astype(np.float32).tobytes() for _ in range(2))
    src = write_safetensors(tmp_path / "m.safetensors", {
        "a": ("F32", (64,), a), "b": ("F32", (64,), b), "a_again": ("F32", (64,), a)})
    bs = tmp_path / "c.bs"
    with monkeypatch.context() as m:
        m.setattr(xxhash, "xxh3_128_hexdigest", lambda b: "0" * 32)
        bigsmall.compress(src, bs)
    with BsFile(bs) as f:
        refs = {t.name: t.params["of"] for t in f.container.tensors if t.codec == "ref"}
    assert refs == {"a_again": "a"}  # "b" has the same (forced) checksum but other bytes
    with BsFile(bs) as f, pytest.raises(IntegrityError):
        f.read("b")  # its (forced) receipt is wrong: a read checks it
    # a restore checks the file's sha256 (not each tensor's receipt again): the bytes are right
    out = bigsmall.decompress(bs, tmp_path / "out.safetensors")
    assert Path(out.dst).read_bytes() == src.read_bytes()


def test_outputs_get_the_usual_file_mode(small_model: Path, tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        r = bigsmall.compress(small_model, tmp_path / "m.bs")
    finally:
        os.umask(old)
    assert (Path(r.dst).stat().st_mode & 0o777) == 0o644


@pytest.mark.parametrize("window", [0, 1 << 40])
@pytest.mark.parametrize("threads", [1, 3])
def test_container_bytes_do_not_depend_on_the_window(small_model: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     window: int, threads: int) -> None:
    """The writer's in-flight bound (tensors and bytes) only changes when it waits, never what it
    writes: the container is the same bytes for any window and thread count."""
    import bigsmall.io.compress as compress_mod

    ref = tmp_path / "ref.bs"
    bigsmall.compress(small_model, ref, threads=1)
    monkeypatch.setattr(compress_mod, "WINDOW_BYTES", window)
    out = tmp_path / "w.bs"
    bigsmall.compress(small_model, out, threads=threads)
    assert out.read_bytes() == ref.read_bytes()
