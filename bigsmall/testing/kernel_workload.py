"""What the common commands compile: the workload behind ``bigsmall warmup``'s kernel list.

``scripts/record_kernels.py`` runs it with numba's cache empty and records every kernel
compiled; ``tests/test_warmup.py`` runs its synthetic part and checks that the recorded list
still covers what it compiles. Common: ``compress`` at both levels with the default coder,
``verify`` and ``decompress``, on every dtype the codecs model (a model of small synthetic
tensors) and, with ``corpus``, on the reference models (real weights pick the layouts that
real weights need: a synthetic matrix need not choose the same mantissa bits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .synthetic import write_safetensors


def synthetic_model(path: Path) -> Path:
    """Every modelled dtype, matrices large enough for contexts and several chunks."""
    rng = np.random.default_rng(7)
    scale = np.where(np.arange(512) % 2 == 0, 1e-3, 1.0)[:, None]
    w = (rng.normal(0, 0.05, (512, 768)) * scale).astype(np.float32)
    tensors: dict[str, tuple[str, tuple[int, ...], bytes]] = {
        "bf16": ("BF16", (512, 768), (w.view(np.uint32) >> 16).astype(np.uint16).tobytes()),
        "f16": ("F16", (512, 768), w.astype(np.float16).tobytes()),
        "f32": ("F32", (256, 768), w[:256].tobytes()),
        "bias": ("BF16", (768,), (w[1].view(np.uint32) >> 16).astype(np.uint16).tobytes()),
        "e4m3": ("F8_E4M3", (512, 512), rng.integers(0, 120, (512, 512), np.uint8).tobytes()),
        "e5m2": ("F8_E5M2", (512, 512), rng.integers(40, 80, (512, 512), np.uint8).tobytes()),
        "i8": ("I8", (256, 512), rng.normal(0, 12, (256, 512)).astype(np.int8).tobytes()),
        "mask": ("BOOL", (64, 1024), (rng.random((64, 1024)) < 0.05).tobytes()),
        "ids": ("I64", (4096,), np.arange(4096, dtype=np.int64).tobytes()),
        "i32": ("I32", (2048,), rng.integers(0, 50, 2048, np.int32).tobytes()),
    }
    return write_safetensors(path, tensors)


def run(workdir: Path, corpus: bool = False) -> None:
    """Compress (default and fast level), verify and decompress the synthetic model and,
    with ``corpus``, the reference models."""
    import bigsmall

    srcs = [synthetic_model(workdir / "synthetic.safetensors")]
    if corpus:
        from .corpus import reference_models

        srcs += list(reference_models().values())
    for i, src in enumerate(srcs):
        for level in ("default", "fast"):
            bs = workdir / f"m{i}-{level}.bs"
            bigsmall.compress(src, bs, force=True, level=level)
            with bigsmall.open(bs) as f:
                f.verify("full")
            bigsmall.decompress(bs, workdir / f"m{i}-{level}.safetensors", force=True)
