"""``bigsmall.load``: a ``.bs`` container -> {name: torch.Tensor}.

Each tensor is decoded straight into the storage of a fresh torch tensor (no extra copy); for an
accelerator the bytes go to pinned host memory first, then to the device.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection
from typing import Any

from ..errors import MissingDependencyError, TensorNotFoundError


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


def member_keys(container: Any, files: Collection[str] | None = None) -> dict[Any, str]:
    """{entry: key} for the tensors of ``container`` (of the member ``files`` only, if given).

    Keys are tensor names; where several member files hold the same name (a sentence-transformers
    folder's ``2_Dense`` and ``3_Dense`` both hold ``linear.weight``) it is ``"file::name"``.
    With ``files``, a name unique among those files is its plain name: loading one module's file
    gives the names that module's ``load_state_dict`` expects.
    """
    from ..core.types import qualified_key

    paths = [f.path for f in container.files]
    wanted = set(paths if files is None else files)
    unknown = wanted - set(paths)
    if unknown:
        raise TensorNotFoundError(f"no member file {sorted(unknown)[0]!r} in the container "
                                  f"(it has {', '.join(paths[:4])}{'...' if len(paths) > 4 else ''})")
    entries = [t for t in container.tensors if paths[t.spec.file] in wanted]
    counts = Counter(t.name for t in entries)
    return {t: t.name if counts[t.name] == 1 else qualified_key(paths[t.spec.file], t.name)
            for t in entries}


def load(src: str | os.PathLike[str], device: str | Any = "cpu", threads: int | None = None,
         progress: Any = None, base: Any = None,
         file: str | Collection[str] | None = None) -> dict[str, Any]:
    """Load the tensors of a ``.bs`` container into torch, bit-exact, on ``device``.

    Keys are the tensor names, or ``"file::name"`` where two member files hold the same name.
    ``file``: only the tensors of that member file (or those files), e.g.
    ``load("st.bs", file="2_Dense/model.safetensors")`` -> ``{"linear.weight": ...}``.
    ``progress``: anything with ``update(nbytes)`` (a tqdm bar), told as each tensor lands.
    ``base``: the base model of a patch (``compress(delta_from=...)``), checked first.
    """
    _torch()
    from ..io.reader import BsFile

    torch = _torch()
    dev = torch.device(device)
    pin = dev.type == "cuda" and torch.cuda.is_available()
    storage: dict[str, Any] = {}
    out: dict[str, Any] = {}
    with BsFile(src, threads=threads, base=base) as bs:
        keys = member_keys(bs.container, [file] if isinstance(file, str) else file)

        def alloc(entry: Any) -> Any:
            buf = torch.empty(entry.spec.nbytes, dtype=torch.uint8, pin_memory=pin)
            storage[keys[entry]] = buf
            return buf.numpy()

        for entry, _ in bs.iter_decoded(list(keys), alloc=alloc):
            key = keys[entry]
            out[key] = _as_tensor(storage.pop(key), entry.spec, dev, pin)
            if progress is not None:
                progress.update(entry.spec.nbytes)
    return out
