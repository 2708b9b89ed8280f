"""The sign coded with the exponent where its column or row predicts it (fp16).

Why these tests: the base layout leaves the sign raw (a fair coin in most weight matrices), and
the encoder widens the coded field to ``sign | exponent`` only where that pays. A column-biased
matrix must take the wide field, end smaller than with the sign raw, and still restore bit for
bit on every decode kernel; a symmetric matrix must keep the narrow field.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import bigsmall
from bigsmall.codecs import field


def _fp16_with_column_offsets(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, 0.03, size=(1, 384))
    w = rng.normal(0.0, 0.02, size=(2048, 384)) + offsets
    w = w.astype(np.float16)
    # arbitrary bit patterns ride along: NaN payloads, infinities, -0, subnormals
    flat = w.view(np.uint16).reshape(-1)
    flat[:6] = [0x7E01, 0xFC00, 0x7C00, 0x8000, 0x0001, 0x83FF]
    return w


def _layout(path: Path, name: str) -> list[int]:
    with bigsmall.open(path) as f:
        return list(f.entry(name).params["layout"])


@pytest.mark.parametrize("coder", ["auto", "rans", "prefix"])
def test_column_biased_sign_is_coded_and_restores(tmp_path: Path, coder: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "m.safetensors"
    save_file({"emb": _fp16_with_column_offsets(), "sym": np.random.default_rng(1).normal(
        0, 0.02, size=(1024, 256)).astype(np.float16)}, str(src))
    wide = bigsmall.compress(src, tmp_path / "wide.bs", coder=coder)
    assert _layout(tmp_path / "wide.bs", "emb")[2] == 6  # sign | 5 exponent bits
    assert _layout(tmp_path / "wide.bs", "sym")[2] == 5  # a fair-coin sign stays raw
    bigsmall.decompress(tmp_path / "wide.bs", tmp_path / "out.safetensors")
    assert (tmp_path / "out.safetensors").read_bytes() == src.read_bytes()

    monkeypatch.setattr(field, "_sign_pays", lambda *a, **k: False)
    narrow = bigsmall.compress(src, tmp_path / "narrow.bs", coder=coder)
    assert _layout(tmp_path / "narrow.bs", "emb")[2] == 5
    assert wide.compressed_bytes < narrow.compressed_bytes * 0.99


def test_fast_level_uses_only_a_global_sign_bias(tmp_path: Path) -> None:
    """``--level fast`` has one context per tensor: a column bias alone does not pay there."""
    src = tmp_path / "m.safetensors"
    rng = np.random.default_rng(2)
    offsets = rng.normal(0.0, 0.03, size=(1, 384))
    w = (rng.normal(0.0, 0.02, size=(2048, 384)) + offsets - offsets.mean()).astype(np.float16)
    save_file({"emb": w}, str(src))
    bigsmall.compress(src, tmp_path / "f.bs", level="fast")
    assert _layout(tmp_path / "f.bs", "emb")[2] == 5
    bigsmall.decompress(tmp_path / "f.bs", tmp_path / "out.safetensors")
    assert (tmp_path / "out.safetensors").read_bytes() == src.read_bytes()
