"""Conversions to safetensors (CTranslate2 -> safetensors, bf16/fp16/fp8 casts) and how their
files are written: atomically, and byte-identical from one rebuild to the next.

``corpus.py`` caches the results; bump its ``_CACHE_VERSION`` when a conversion or cast here
changes, so every cached file built by older code is rebuilt. ``numpy`` and ``safetensors`` are
required; ``torch`` only for :func:`cast_safetensors`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .ct2 import Ct2Checkpoint, load_ct2
from .sources import CorpusUnavailable

#: Target names accepted by :func:`cast_safetensors`.
CAST_DTYPES = ("bf16", "fp16", "fp8_e4m3fn", "fp8_e5m2")


def atomic_write(dst: Path, write: Callable[[Path], object]) -> Path:
    """Run ``write(tmp)`` on a temporary file beside ``dst``, then rename it over ``dst``.

    Why: caches are shared by parallel test workers and interrupted runs; a reader must see either
    no file or a complete one, never a half-written checkpoint.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    # a unique name rather than mkstemp: mkstemp creates the file 0600, while the writers below
    # create it themselves with the usual umask-derived permissions
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst


def _sort_metadata(path: Path) -> None:
    """Rewrite a safetensors file written by ``safetensors`` with its ``__metadata__`` keys in
    sorted order (tensors, their order and bytes unchanged).

    Why: ``safetensors``' ``save_file`` writes the metadata in the order of a Rust hash map,
    random per process, so the same conversion gave files whose bytes (and sha256) differed
    from one cache rebuild to the next; a ``.bs`` made before a rebuild then restored the old
    header, not the rebuilt file. Sorted keys make every rebuild byte-identical."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n), object_pairs_hook=dict)
        data = fh.read()
    meta = header.get("__metadata__")
    if not meta:
        return
    header["__metadata__"] = dict(sorted(meta.items()))
    hb = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hb += b" " * (-len(hb) % 8)  # safetensors pads its header to 8 bytes with spaces
    with open(path, "wb") as fh:
        fh.write(len(hb).to_bytes(8, "little") + hb + data)


def _save_sorted(save_file: Callable[..., object], tensors: Any, dst: Path,
                 metadata: dict[str, str] | None) -> Path:
    """``save_file`` (safetensors' numpy or torch one) atomically, then the metadata keys
    sorted (``_sort_metadata``)."""

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata=metadata)
        _sort_metadata(tmp)

    return atomic_write(Path(dst), write)


def save_numpy(tensors: dict[str, np.ndarray], dst: Path, metadata: dict[str, str]) -> Path:
    from safetensors.numpy import save_file

    return _save_sorted(save_file, tensors, dst, metadata)


def ct2_checkpoint_to_safetensors(ckpt: Ct2Checkpoint, dst: Path) -> Path:
    bf16 = [name for name, dt in ckpt.dtypes.items() if dt == "bf16"]
    if bf16:
        raise ValueError(
            f"{len(bf16)} bf16 variables (e.g. {bf16[0]!r}): bf16 CTranslate2 models are not "
            "supported by this converter (numpy has no bfloat16 for safetensors.numpy)"
        )
    tensors: dict[str, np.ndarray] = {}
    for name, array in ckpt.variables.items():
        dotted = name.replace("/", ".")
        if dotted in tensors:
            raise ValueError(f"two variables map to the same safetensors name {dotted!r}")
        # not np.ascontiguousarray: it turns 0-d scalars into shape (1,)
        tensors[dotted] = array if array.flags.c_contiguous else array.copy(order="C")
    metadata = {
        "format": "ctranslate2",
        "ct2.spec_name": ckpt.spec_name,
        "ct2.revision": str(ckpt.revision),
        # tied weights are stored once (safetensors forbids shared storage); aliases kept here
        "ct2.aliases": json.dumps(
            {a.replace("/", "."): t.replace("/", ".") for a, t in ckpt.aliases.items()},
            sort_keys=True,
        ),
    }
    return save_numpy(tensors, dst, metadata)


def ct2_to_safetensors(src: Path, dst: Path) -> Path:
    """Convert a CTranslate2 v6 model to safetensors; returns ``dst``.

    Names keep their structure with ``/`` replaced by ``.`` (``encoder.layer_0.…``); dtypes are
    kept (f32/f16/int), so the result is a real checkpoint in its original precision. Aliases
    (tied weights) are not duplicated but recorded as JSON in the ``ct2.aliases`` metadata entry,
    next to ``ct2.spec_name`` and ``ct2.revision``. bf16 sources raise :class:`ValueError`. The
    file is written atomically.
    """
    return ct2_checkpoint_to_safetensors(load_ct2(src), Path(dst))


def cast_safetensors(src: Path, dst: Path, dtype: str) -> Path:
    """Cast every floating tensor of a safetensors file to ``dtype``; returns ``dst``.

    Why: no package ships a real bf16 or fp8 checkpoint, but real releases are made exactly this
    way from fp32 masters, so the result has the exponent statistics of a trained model.

    * ``"bf16"``/``"fp16"``: ``tensor.to(dtype)`` (round to nearest even, like ``torch`` releases).
    * ``"fp8_e4m3fn"``/``"fp8_e5m2"``: per-tensor scale ``s = amax / finfo.max`` (1 if the tensor
      is all zero), stored as an F32 scalar tensor ``<name>.scale``; the payload is
      ``clamp(t / s, ±finfo.max).to(fp8)`` computed in float32, so ``t ≈ payload * s``. This is the
      per-tensor scheme of fp8 releases; unlike many releases it casts *all* floating tensors
      (norms and embeddings too), which is what a codec test wants.

    Integer and bool tensors are copied unchanged; metadata is preserved as-is. Requires ``torch``.
    The file is written atomically.
    """
    try:
        import torch
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CorpusUnavailable(
            f"cast_safetensors needs torch ({exc}); run: pip install torch"
        ) from exc

    targets = {
        "bf16": torch.bfloat16,
        "fp16": torch.float16,
        "fp8_e4m3fn": torch.float8_e4m3fn,
        "fp8_e5m2": torch.float8_e5m2,
    }
    if dtype not in targets:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(targets)}")
    target = targets[dtype]
    is_fp8 = dtype.startswith("fp8")

    with safe_open(str(src), framework="pt") as fh:
        metadata = fh.metadata()
    tensors = load_file(str(src))
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            out[name] = tensor
            continue
        if not is_fp8:
            out[name] = tensor.to(target).contiguous()
            continue
        scale_name = f"{name}.scale"
        if scale_name in tensors:
            raise ValueError(f"cannot add scale {scale_name!r}: the name is already taken")
        t32 = tensor.to(torch.float32)
        fmax = float(torch.finfo(target).max)
        amax = float(t32.abs().max()) if t32.numel() else 0.0
        if not np.isfinite(amax):
            raise ValueError(f"tensor {name!r} has non-finite values; no fp8 scale exists")
        scale = torch.tensor(amax / fmax if amax > 0 else 1.0, dtype=torch.float32)
        out[name] = (t32 / scale).clamp(-fmax, fmax).to(target).contiguous()
        out[scale_name] = scale
    return _save_sorted(save_file, out, dst, metadata)
