"""Compression levels: ``fast`` skips the context search, writes the same format, restores exactly."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.cli import main
from bigsmall.errors import InvalidOptionError
from bigsmall.io.reader import BsFile
from bigsmall.testing.synthetic import write_safetensors


def _striped_model(tmp_path: Path) -> Path:
    """A bf16 matrix whose rows come in two scales: a row context pays off, so the default
    level's search finds it and the fast level, which does not search, cannot."""
    rng = np.random.default_rng(3)
    scale = np.where(np.arange(256) % 2 == 0, 1e-3, 1.0)[:, None]
    w = (rng.normal(0, 1, (256, 512)) * scale).astype(np.float32)
    bf = (w.view(np.uint32) >> 16).astype(np.uint16)
    special = np.array([0x7FC1, 0xFF80, 0x7F80, 0x8000, 0x0001, 0x807F], np.uint16)  # NaN payload, -inf, inf, -0, subnormals
    bf[0, : special.size] = special
    return write_safetensors(tmp_path / "striped.safetensors", {
        "w": ("BF16", (256, 512), bf.tobytes()),
        "odd": ("F16", (7, 3), rng.normal(0, 1, 21).astype(np.float16).tobytes()),
    })


def _grid(bs: Path, name: str) -> list[int]:
    with BsFile(bs) as f:
        e = f.entry(name)
        assert e.codec in ("field", "field8", "fieldp")
        return list(e.params["grid"])


@pytest.mark.parametrize("level", ["fast", "default"])
def test_level_restores_bit_for_bit(small_model: Path, tmp_path: Path, level: str) -> None:
    bs = tmp_path / f"{level}.bs"
    r = bigsmall.compress(small_model, bs, level=level)
    assert r.level == level and r.to_json()["level"] == level
    out = tmp_path / f"{level}.safetensors"
    bigsmall.decompress(bs, out)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(small_model.read_bytes()).digest()


def test_fast_skips_the_context_search(tmp_path: Path) -> None:
    src = _striped_model(tmp_path)
    fast, default = tmp_path / "fast.bs", tmp_path / "default.bs"
    bigsmall.compress(src, fast, level="fast")
    bigsmall.compress(src, default)
    assert _grid(fast, "w") == [1, 1]
    assert _grid(default, "w") != [1, 1]  # the search found the row structure
    assert default.stat().st_size < fast.stat().st_size
    for bs in (fast, default):
        out = bs.with_suffix(".safetensors")
        bigsmall.decompress(bs, out)
        assert out.read_bytes() == src.read_bytes()


def test_unknown_level_is_refused_before_writing(small_model: Path, tmp_path: Path) -> None:
    dst = tmp_path / "x.bs"
    with pytest.raises(InvalidOptionError, match="unknown level 'turbo'"):
        bigsmall.compress(small_model, dst, level="turbo")
    assert not dst.exists()
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]


def test_cli_level(small_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "cli.bs"
    assert main(["compress", str(small_model), "-o", str(dst), "--level", "fast", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["level"] == "fast"
    assert main(["verify", str(dst)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["compress", str(small_model), "-o", str(tmp_path / "y.bs"), "--level", "turbo"])
    assert exc.value.code == 2
    assert not (tmp_path / "y.bs").exists()


def test_max_keeps_rans_where_default_takes_the_prefix_code(tmp_path: Path) -> None:
    """A plain normal bf16 matrix: the prefix code costs it ~0.35 % (between the two levels'
    margins, ``codecs.auto.MARGINS``), so the default level prefix-codes it (faster decode) and
    ``max`` keeps rANS (smaller); both restore bit for bit."""
    rng = np.random.default_rng(5)
    w = rng.normal(0, 1, (256, 512)).astype(np.float32)
    bf = (w.view(np.uint32) >> 16).astype(np.uint16)
    bf[0, :4] = [0x7FC1, 0xFF80, 0x8000, 0x0001]  # NaN payload, -inf, -0, a subnormal
    src = write_safetensors(tmp_path / "n.safetensors", {"w": ("BF16", (256, 512), bf.tobytes())})
    sizes = {}
    for level, codec in (("default", "fieldp"), ("max", "field8")):
        bs = tmp_path / f"{level}.bs"
        assert main(["compress", str(src), "-o", str(bs), "--level", level]) == 0
        with BsFile(bs) as f:
            assert f.entry("w").codec == codec
        out = tmp_path / f"{level}.safetensors"
        bigsmall.decompress(bs, out)
        assert out.read_bytes() == src.read_bytes()
        sizes[level] = bs.stat().st_size
    assert sizes["max"] < sizes["default"]
