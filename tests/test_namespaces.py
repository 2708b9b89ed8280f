"""Per-file namespaces: two member files of a folder container may hold the same tensor name.

The failure this guards: a sentence-transformers folder whose ``2_Dense`` and ``3_Dense`` both
hold ``linear.weight`` compressed fine, then every reader refused it ("listed twice in the
index"). Now a tensor is addressed by (file, name): ``"file::name"`` or ``file=``; a plain name
works where it is unique and is an :class:`AmbiguousTensorError` where it is not.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.errors import AmbiguousTensorError, FormatError, TensorNotFoundError
from bigsmall.testing.synthetic import write_safetensors

W2 = np.arange(32, dtype=np.float32).reshape(8, 4)
W3 = -np.arange(32, dtype=np.float32).reshape(4, 8)


def _folder(tmp_path: Path, same: bool = False) -> Path:
    """2_Dense and 3_Dense both holding linear.weight (equal bytes when ``same``: a dedup
    reference to a shared name), plus a root model file."""
    d = tmp_path / "m"
    for sub, w in (("2_Dense", W2), ("3_Dense", W2 if same else W3)):
        (d / sub).mkdir(parents=True)
        write_safetensors(d / sub / "model.safetensors", {
            "linear.weight": ("F32", w.shape, w.tobytes()),
            "linear.bias": ("F32", (w.shape[0],), np.full(w.shape[0], 0.5, np.float32).tobytes()),
        })
    write_safetensors(d / "model.safetensors", {"encoder.weight": ("F32", (3,), np.ones(3, np.float32).tobytes())})
    return d


@pytest.mark.parametrize("same", [False, True])
def test_shared_names_read_restore_and_address(tmp_path: Path, same: bool) -> None:
    src = _folder(tmp_path, same)
    bs = tmp_path / "m.bs"
    bigsmall.compress(src, bs)
    with bigsmall.open(bs) as f:
        names = f.names()
        assert "2_Dense/model.safetensors::linear.weight" in names
        assert "3_Dense/model.safetensors::linear.weight" in names
        assert "encoder.weight" in names  # unique: its plain name
        assert np.array_equal(f.read("2_Dense/model.safetensors::linear.weight"), W2)
        want3 = W2 if same else W3
        assert np.array_equal(f.read("3_Dense/model.safetensors::linear.weight"), want3)
        assert f.entry("linear.weight", file="3_Dense/model.safetensors").spec.shape == want3.shape
        assert f.read("encoder.weight").shape == (3,)
        with pytest.raises(AmbiguousTensorError, match="2_Dense/model.safetensors::linear.weight"):
            f.read("linear.weight")
        with pytest.raises(TensorNotFoundError):
            f.entry("linear.weight", file="9_Dense/model.safetensors")
        if same:  # the second copy is stored as a reference to the first, by its qualified key
            refs = [t for t in f.container.tensors if t.codec == "ref" and t.name == "linear.weight"]
            assert refs and refs[0].params["of"] == "2_Dense/model.safetensors::linear.weight"
        assert f.verify().ok
    out = tmp_path / "out"
    bigsmall.decompress(bs, out)
    for p in src.rglob("*.safetensors"):
        rel = p.relative_to(src)
        assert hashlib.sha256((out / rel).read_bytes()).digest() == hashlib.sha256(p.read_bytes()).digest()


def test_same_name_twice_in_one_file_is_still_refused() -> None:
    """Names are unique within a file: the index check keeps refusing a duplicate there."""
    from bigsmall.container.format import _check_refs
    from bigsmall.core.types import FileEntry, Receipt, TensorEntry, TensorSpec

    spec = TensorSpec("w", "F32", (1,), 0, 4, 0)
    e = TensorEntry(spec, "raw", {}, 0, 0, (4,), Receipt("xxh3_128", "0" * 32))
    files = [FileEntry("a.safetensors", "safetensors", 12, Receipt("sha256", "0" * 64))]
    with pytest.raises(FormatError, match="listed twice"):
        _check_refs(files, [e, e])
    ref = TensorEntry(TensorSpec("v", "F32", (1,), 4, 8, 0), "ref", {"of": "a.safetensors::w"}, 0, 0, (),
                      Receipt("xxh3_128", "0" * 32))
    _check_refs(files, [e, ref])  # a qualified reference resolves


def test_torch_load_keys_and_file_argument(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    bs = tmp_path / "m.bs"
    bigsmall.compress(_folder(tmp_path), bs)
    state = bigsmall.load(bs)
    assert set(state) == {"2_Dense/model.safetensors::linear.weight", "2_Dense/model.safetensors::linear.bias",
                          "3_Dense/model.safetensors::linear.weight", "3_Dense/model.safetensors::linear.bias",
                          "encoder.weight"}
    assert torch.equal(state["3_Dense/model.safetensors::linear.weight"], torch.from_numpy(W3))
    dense3 = bigsmall.load(bs, file="3_Dense/model.safetensors")
    assert set(dense3) == {"linear.weight", "linear.bias"}  # what the module's load_state_dict wants
    assert torch.equal(dense3["linear.weight"], torch.from_numpy(W3))
    with pytest.raises(TensorNotFoundError, match="no member file"):
        bigsmall.load(bs, file="4_Dense/model.safetensors")


def test_stat_lists_shared_names_by_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``bigsmall stat`` names a tensor the way every other API addresses it: ``file::name``
    where two files hold the name, the plain name where it is unique; ``--tensor`` matches that."""
    import json

    from bigsmall.cli import main

    bs = tmp_path / "m.bs"
    bigsmall.compress(_folder(tmp_path), bs)
    assert main(["stat", str(bs), "--json", "--sort", "name"]) == 0
    rows = json.loads(capsys.readouterr().out)["tensors"]
    assert [r["name"] for r in rows] == [
        "2_Dense/model.safetensors::linear.bias", "2_Dense/model.safetensors::linear.weight",
        "3_Dense/model.safetensors::linear.bias", "3_Dense/model.safetensors::linear.weight",
        "encoder.weight"]
    assert rows[3]["file"] == "3_Dense/model.safetensors" and rows[3]["shape"] == [4, 8]
    assert main(["stat", str(bs), "--tensor", "3_Dense/model.safetensors::"]) == 0
    text = capsys.readouterr().out
    assert "3_Dense/model.safetensors::linear.weight" in text and "2_Dense" not in text
