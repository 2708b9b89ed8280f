"""``bigsmall.load``: a ``.bs`` container -> {name: torch.Tensor}.

Each tensor is decoded straight into the storage of a fresh torch tensor (no extra copy); for an
accelerator the bytes go to pinned host memory first, then to the device.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import MissingDependencyError


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            "bigsmall.load needs torch: pip install 'bigsmall[torch]' (or pip install torch)"
        ) from None
    return torch


def torch_dtype(name: str) -> Any:
    torch = _torch()
    table = {
        "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16,
        "U16": getattr(torch, "uint16", torch.int16), "I32": torch.int32,
        "U32": getattr(torch, "uint32", torch.int32), "I64": torch.int64,
        "U64": getattr(torch, "uint64", torch.int64), "F16": torch.float16,
        "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64,
        "C64": torch.complex64,
        "F8_E4M3": getattr(torch, "float8_e4m3fn", torch.uint8),
        "F8_E5M2": getattr(torch, "float8_e5m2", torch.uint8),
        "F8_E4M3FNUZ": getattr(torch, "float8_e4m3fnuz", torch.uint8),
        "F8_E5M2FNUZ": getattr(torch, "float8_e5m2fnuz", torch.uint8),
        "F8_E8M0": getattr(torch, "float8_e8m0fnu", torch.uint8),
    }
    return table.get(name, torch.uint8)


def _as_tensor(buf: Any, spec: Any, dev: Any, pin: bool) -> Any:
    """View decoded bytes as the tensor's dtype and shape; move to ``dev`` if needed."""
    torch = _torch()
    dt = torch_dtype(spec.dtype)
    if spec.info.itemsize == 0 or dt == torch.uint8 and spec.dtype != "U8":
        t = buf  # packed sub-byte types: the packed bytes
    else:
        t = buf.view(dt).reshape(spec.shape)
    if dev.type != "cpu":
        t = t.to(dev, non_blocking=pin)
    return t


def load(src: str | os.PathLike[str], device: str | Any = "cpu", threads: int | None = None,
         progress: Any = None, base: Any = None) -> dict[str, Any]:
    """Load every tensor of a ``.bs`` container into torch, bit-exact, on ``device``.

    ``progress``: anything with ``update(nbytes)`` (a tqdm bar), told as each tensor lands.
    ``base``: the base model of a patch (``compress(delta_from=...)``), checked first.
    """
    _torch()
    from ..io.reader import BsFile

    torch = _torch()
    dev = torch.device(device)
    pin = dev.type == "cuda" and torch.cuda.is_available()
    storage: dict[str, Any] = {}

    def alloc(entry: Any) -> Any:
        buf = torch.empty(entry.spec.nbytes, dtype=torch.uint8, pin_memory=pin)
        storage[entry.name] = buf
        return buf.numpy()

    out: dict[str, Any] = {}
    with BsFile(src, threads=threads, base=base) as bs:
        for entry, _ in bs.iter_decoded(list(bs.container.tensors), alloc=alloc):
            out[entry.name] = _as_tensor(storage.pop(entry.name), entry.spec, dev, pin)
            if progress is not None:
                progress.update(entry.spec.nbytes)
    return out
