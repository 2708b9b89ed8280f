"""``bigsmall.load`` of a dual-fidelity ``.bsd``: the exact tensors, or (``mode="fast"``) the
fast member alone, dequantized into the model's dtype (LOSSY for the quantized matrices).

Why a module of its own: the ``.bs`` loader decodes through ``BsFile``; a ``.bsd`` has its own
reader (``io/dual.py``), and its fast mode must not touch a byte of the exact member.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import InvalidOptionError
from .load import _as_tensor, _torch

MODES = ("exact", "fast")


def _bytes(torch: Any, data: Any) -> Any:
    """Decoded bytes as a fresh contiguous uint8 tensor (``from_numpy`` of an empty array has
    stride 0, which ``view(dtype)`` refuses)."""
    return torch.from_numpy(data) if data.size else torch.empty(0, dtype=torch.uint8)


def load_dual(src: str | os.PathLike[str], device: str | Any = "cpu", mode: str = "exact",
              progress: Any = None, report: dict[str, Any] | None = None) -> dict[str, Any]:
    """{name: tensor} of a ``.bsd``. ``mode="exact"``: bit-exact (both members read);
    ``"fast"``: reads the fast member only; quantized matrices come back as ``q * scale + min``
    cast to their dtype, every other tensor exact. ``report`` (a dict), if given, gets
    ``bytes_read``, ``fast_member_bytes`` and ``exact_member_bytes``."""
    if mode not in MODES:
        raise InvalidOptionError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    from ..io.dual import DualFile

    torch = _torch()
    dev = torch.device(device)
    if os.path.isdir(src):  # a .bsd folder: every .bsd member (io/dual_folder.py)
        return _load_folder(src, dev, mode, progress, report)
    with DualFile(src) as d:
        return _load_open(d, dev, mode, progress, report)


def _load_open(d: Any, dev: Any, mode: str, progress: Any, report: dict[str, Any] | None) -> dict[str, Any]:
    """``load_dual`` of an open ``DualFile``."""
    torch = _torch()
    out: dict[str, Any] = {}
    tensors = d.iter_fast() if mode == "fast" else ((spec, None, data) for spec, data in d.iter_exact())
    for spec, _kind, data in tensors:
        out[spec.name] = _as_tensor(_bytes(torch, data), spec, dev, False)
        if progress is not None:
            progress.update(spec.nbytes)
    if report is not None:
        report.update(bytes_read=d.bytes_read, fast_member_bytes=d.fast_member_bytes,
                      exact_member_bytes=d.exact_member_bytes)
    return out


def _load_folder(src: str | os.PathLike[str], dev: Any, mode: str, progress: Any,
                 report: dict[str, Any] | None) -> dict[str, Any]:
    """Every ``.bsd`` of a ``.bsd`` folder, keyed as ``load`` keys a folder ``.bs``: a tensor's
    plain name where it is unique, ``"path::name"`` (``qualified_key``) where two files share it
    (a sentence-transformers folder's ``2_Dense`` and ``3_Dense`` both hold ``linear.weight``)."""
    from ..core.types import qualified_key
    from ..io.dual_folder import DualFolder

    folder = DualFolder(src)
    parts: list[tuple[str, dict[str, Any]]] = []
    totals = {"bytes_read": 0, "fast_member_bytes": 0, "exact_member_bytes": 0}
    for m in folder.bsd_members:
        rep: dict[str, Any] = {}
        with folder.open(m) as d:  # checked against the manifest's sha256 first
            parts.append((m.path, _load_open(d, dev, mode, progress, rep)))
        for k in totals:
            totals[k] += rep[k]
    seen: dict[str, int] = {}
    for _path, tensors in parts:
        for name in tensors:
            seen[name] = seen.get(name, 0) + 1
    out = {(name if seen[name] == 1 else qualified_key(path, name)): t
           for path, tensors in parts for name, t in tensors.items()}
    if report is not None:
        report.update(totals)
    return out
