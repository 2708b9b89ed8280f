"""Shared fixtures: real corpus weights (cached conversions) and small synthetic models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bigsmall.testing import corpus
from bigsmall.testing.synthetic import write_safetensors


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Conversions are cached across runs in the user cache (or BIGSMALL_CORPUS_CACHE)."""
    return corpus.default_cache_dir()


@pytest.fixture(scope="session")
def minilm_fp32() -> Path:
    return corpus.minilm_safetensors()


@pytest.fixture(scope="session")
def minilm_bf16(corpus_cache: Path) -> Path:
    return corpus.minilm_bf16(corpus_cache)


@pytest.fixture(scope="session")
def whisper_fp16(corpus_cache: Path) -> Path:
    return corpus.whisper_tiny_safetensors(corpus_cache)


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    """A small mixed-dtype model with layers, a tied duplicate, constants and odd sizes."""
    rng = np.random.default_rng(0)
    w = (rng.normal(0, 0.02, (64, 96)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    t = {
        "embed.weight": ("BF16", (64, 96), w.tobytes()),
        "lm_head.weight": ("BF16", (64, 96), w.tobytes()),  # tied: stored once
        "model.layers.0.attn.weight": ("F16", (33, 17), rng.normal(0, 0.1, (33, 17)).astype(np.float16).tobytes()),
        "model.layers.0.norm.weight": ("F32", (17,), np.ones(17, np.float32).tobytes()),
        "model.layers.1.attn.weight": ("F32", (5, 7), rng.normal(0, 1, (5, 7)).astype(np.float32).tobytes()),
        "model.layers.1.mask": ("BOOL", (3, 3), np.eye(3, dtype=bool).tobytes()),
        "model.layers.1.idx": ("I64", (10,), np.arange(10, dtype=np.int64).tobytes()),
        "scalar": ("F32", (), np.float32(3.5).tobytes()),
        "empty": ("F16", (0, 4), b""),
        "fp8": ("F8_E4M3", (40,), rng.integers(0, 256, 40, dtype=np.uint8).tobytes()),
    }
    return write_safetensors(tmp_path / "model.safetensors", t, {"format": "pt"}, pad=5)


def _compressed(tmp_path_factory: pytest.TempPathFactory, folder: Path, name: str) -> Path:
    import bigsmall

    out = tmp_path_factory.mktemp("bs") / name
    bigsmall.compress(folder, out)
    return out


@pytest.fixture(scope="session")
def minilm_folder_bs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2's folder (fp32 weights, config, tokenizer) as one container."""
    return _compressed(tmp_path_factory, corpus.minilm_dir(), "minilm.bs")


@pytest.fixture(scope="session")
def minilm_bf16_folder_bs(tmp_path_factory: pytest.TempPathFactory, corpus_cache: Path) -> Path:
    return _compressed(tmp_path_factory, corpus.minilm_bf16_dir(corpus_cache), "minilm-bf16.bs")


@pytest.fixture(scope="session")
def whisper_folder_bs(tmp_path_factory: pytest.TempPathFactory, corpus_cache: Path) -> Path:
    """Whisper tiny.en (fp16) in transformers names with its config and tokenizer."""
    return _compressed(tmp_path_factory, corpus.whisper_tiny_hf_dir(corpus_cache), "whisper.bs")
