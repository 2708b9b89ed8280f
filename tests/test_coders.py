"""Entropy coders: ``prefix`` (codec ``fieldp``, format 1.2), ``rans`` (``field8``, format 1.1)
and the default ``auto`` (either, per tensor, format 1.2): same model, exact restores, the
version and codec rules."""

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
    rr = bigsmall.compress(src, r, chunk_bytes=8192, coder="rans")
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


def _chunk_bytes(f: BsFile, name: str) -> int:
    e = f.entry(name)
    return e.length - e.head_len


def test_auto_picks_per_tensor_by_size_and_restores_bit_for_bit(tmp_path: Path) -> None:
    from bigsmall.codecs import auto

    src = _model(tmp_path)
    paths = {c: tmp_path / f"{c}.bs" for c in ("auto", "rans", "prefix")}
    res = {c: bigsmall.compress(src, p, coder=c, chunk_bytes=8192) for c, p in paths.items()}
    assert (res["auto"].coder, res["auto"].format_version) == ("auto", "1.2")
    with BsFile(paths["auto"]) as a, BsFile(paths["rans"]) as r, BsFile(paths["prefix"]) as p:
        assert tuple(a.container.version) == (1, 2)
        chosen = {t.name: t.codec for t in a.container.tensors}
        for t in a.container.tensors:
            if r.entry(t.name).codec != "field8" or p.entry(t.name).codec != "fieldp":
                continue
            assert t.codec in ("field8", "fieldp")
            other = p if t.codec == "fieldp" else r
            # the same model and side information, the very chunks of the forced coder
            assert a.source.read(t.offset, t.length) == other.source.read(
                other.entry(t.name).offset, other.entry(t.name).length)
            rb, pb = _chunk_bytes(r, t.name), _chunk_bytes(p, t.name)
            slack = 4 * len(t.chunk_lens) + 8  # padding bytes the estimate rounds over
            if t.codec == "fieldp":
                assert pb <= rb * (1 + auto.MARGINS["default"]) + slack
            else:
                assert pb >= rb * (1 + auto.MARGINS["default"]) - slack
    # the skewed bool mask keeps rANS (a prefix code spends >= 1 bit a unit); the broad fp32
    # tensor is within the margin
    assert chosen["mask"] == "field8" and chosen["model.layers.0.f"] == "fieldp"
    out = tmp_path / "out.safetensors"
    bigsmall.decompress(paths["auto"], out)
    assert out.read_bytes() == src.read_bytes()


def test_auto_estimate_matches_the_coded_sizes(tmp_path: Path) -> None:
    """``auto.estimate`` is what decides: it must be close to what each coder writes."""
    from bigsmall.codecs import auto
    from bigsmall.codecs.base import get_codec
    from bigsmall.core.types import TensorSpec
    from bigsmall.plan.planner import chunk_units_for

    rng = np.random.default_rng(5)
    w = (rng.standard_normal((96, 300)) * 0.05).astype(np.float32)
    for dtype, data in (("F32", w), ("F16", w.astype(np.float16)),
                        ("BF16", (w.view(np.uint32) >> 16).astype(np.uint16))):
        spec = TensorSpec("x", dtype, w.shape, 0, data.nbytes)
        raw = np.frombuffer(data.tobytes(), np.uint8)
        cu = chunk_units_for(spec, 8192)
        f8, fp = get_codec("field8"), get_codec("fieldp")
        m = f8.model(raw, spec)  # type: ignore[attr-defined]
        rans_est, prefix_est = auto.estimate(m, cu)
        rans_real = sum(len(c) for c in f8.plan(m, cu).chunks)  # type: ignore[attr-defined]
        prefix_real = sum(len(c) for c in fp.plan(m, cu).chunks)  # type: ignore[attr-defined]
        nch = -(-w.size // cu)
        assert abs(rans_est - rans_real) <= 0.001 * rans_real + 8 * nch, dtype
        assert abs(prefix_est - prefix_real) <= 4 * nch, dtype


def test_cli_default_coder_is_auto(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _model(tmp_path)
    assert main(["compress", str(src), "-o", str(tmp_path / "d.bs"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["coder"], out["format_version"]) == ("auto", "1.2")
    assert main(["compress", str(src), "-o", str(tmp_path / "e.bs"), "--coder", "auto",
                 "--format-version", "1.1"]) != 0
    assert "needs format 1.2" in capsys.readouterr().err
    assert not (tmp_path / "e.bs").exists()


def test_cli_benchmark_reports_the_codec_mix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``bigsmall benchmark``: a verified round trip, its figures, and which codecs the
    coder chose (by original tensor bytes) in JSON and in the text."""
    src = _model(tmp_path)
    assert main(["benchmark", str(src), "--repeat", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["verify_ok"] and r["coder"] == "auto" and 0 < r["ratio"] < 1
    by = r["tensor_bytes_by_codec"]
    with BsFile(_compressed(src, tmp_path)) as f:  # the same input, the same choices
        assert sum(by.values()) == sum(t.spec.nbytes for t in f.container.tensors)
        assert set(by) == {t.codec for t in f.container.tensors}
    assert main(["benchmark", str(src), "--repeat", "1", "--coder", "rans"]) == 0
    text = capsys.readouterr().out
    assert "tensor bytes by codec: field8" in text and "fieldp" not in text


def _compressed(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "probe.bs"
    bigsmall.compress(src, dst, force=True)
    return dst
