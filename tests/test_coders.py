"""Entropy coders: ``prefix`` (codec ``fieldp``, format 1.2) next to the default ``rans``
(``field8``, format 1.1): same model, exact restores, the version and codec rules."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.cli import main
from bigsmall.container import format as fmt
from bigsmall.errors import InvalidOptionError
from bigsmall.io.reader import BsFile
from bigsmall.testing.synthetic import write_safetensors


def _model(tmp_path: Path) -> Path:
    rng = np.random.default_rng(11)
    w = (rng.standard_t(5, (192, 256)) * 0.02).astype(np.float32)
    bf = (w.view(np.uint32) >> 16).astype(np.uint16)
    bf[0, :6] = [0x7FC1, 0xFF80, 0x7F80, 0x8000, 0x0001, 0x807F]  # NaN payload, inf, -0, subnormal
    mask = (rng.random((64, 64)) < 0.05).astype(np.uint8)
    q = np.clip(np.rint(rng.normal(0, 1, (64, 512)) * np.array([2.0, 30.0])[np.arange(64) % 2][:, None]),
                -127, 127).astype(np.int8)
    return write_safetensors(tmp_path / "m.safetensors", {
        "model.layers.0.w": ("BF16", (192, 256), bf.tobytes()),
        "model.layers.0.h": ("F16", (33, 65), rng.normal(0, 1, (33, 65)).astype(np.float16).tobytes()),
        "model.layers.0.f": ("F32", (40, 70), rng.normal(0, 1, (40, 70)).astype(np.float32).tobytes()),
        "mask": ("BOOL", (64, 64), mask.tobytes()),
        "q": ("I8", (64, 512), q.tobytes()),
    })


def test_prefix_restores_bit_for_bit_and_is_labelled_1_2(tmp_path: Path) -> None:
    src = _model(tmp_path)
    p, r = tmp_path / "p.bs", tmp_path / "r.bs"
    rp = bigsmall.compress(src, p, coder="prefix", chunk_bytes=8192)
    rr = bigsmall.compress(src, r, chunk_bytes=8192)
    assert (rp.coder, rp.format_version, rr.coder, rr.format_version) == ("prefix", "1.2", "rans", "1.1")
    with BsFile(p) as f, BsFile(r) as g:
        assert tuple(f.container.version) == (1, 2) and tuple(g.container.version) == (1, 1)
        cp = {t.name: t.codec for t in f.container.tensors}
        cr = {t.name: t.codec for t in g.container.tensors}
        heads = {t.name: f.source.read(t.offset, t.head_len) for t in f.container.tensors}
        rheads = {t.name: g.source.read(t.offset, t.head_len) for t in g.container.tensors}
    for name in ("model.layers.0.w", "model.layers.0.h", "model.layers.0.f"):
        assert cp[name] == "fieldp" and cr[name] == "field8"
        assert heads[name] == rheads[name]  # same model, same side information
    # the skewed bool mask: a prefix code spends >= 1 bit a unit, rANS wins by far -> field8
    assert cp["mask"] == "field8"
    assert cp["q"] == "fieldp"  # a broad byte distribution: the prefix code is within the margin
    # whole-bit codes cost a little, 52 fewer bytes of chunk header (no rANS states) save a
    # little: on small chunks either may win; never by much
    assert abs(p.stat().st_size - r.stat().st_size) < r.stat().st_size * 0.02
    out = tmp_path / "out.safetensors"
    bigsmall.decompress(p, out)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    with bigsmall.open(p) as f:
        assert f.verify("full").ok


def test_bad_coder_options_are_refused_before_writing(tmp_path: Path) -> None:
    src = _model(tmp_path)
    dst = tmp_path / "x.bs"
    with pytest.raises(InvalidOptionError, match="unknown coder 'lz'"):
        bigsmall.compress(src, dst, coder="lz")
    with pytest.raises(InvalidOptionError, match="needs format 1.2"):
        bigsmall.compress(src, dst, coder="prefix", format_version="1.1")
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]
    assert fmt.FORMATS["1.2"] == (1, 2) == fmt.VERSION


def test_cli_coder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _model(tmp_path)
    dst = tmp_path / "cli.bs"
    assert main(["compress", str(src), "-o", str(dst), "--coder", "prefix", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["coder"], out["format_version"]) == ("prefix", "1.2")
    assert main(["verify", str(dst)]) == 0
    capsys.readouterr()
    assert main(["compress", str(src), "-o", str(tmp_path / "y.bs"), "--coder", "prefix",
                 "--format-version", "1.0"]) != 0
    assert "needs format 1.2" in capsys.readouterr().err
    assert not (tmp_path / "y.bs").exists()
