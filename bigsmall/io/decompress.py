"""``decompress``: ``.bs`` -> the original file or folder, byte for byte.

Tensors are decoded one at a time in data order and written as they come, so memory stays at
about one tensor; each file's sha256 is rebuilt on the way and must equal its receipt before the
output is renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import attrs

from ..errors import IntegrityError
from . import progress as prog
from .atomic import atomic_dir, atomic_file, check_target
from .reader import BsFile


@attrs.frozen
class DecompressResult:
    src: str
    dst: str
    bytes_written: int
    files: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["mb_per_s"] = self.bytes_written / 1e6 / self.seconds if self.seconds else None
        return d


def default_output(src: Path, bs: BsFile) -> Path:
    """model.bs -> model.safetensors (the stored name) ; folder.bs -> folder"""
    meta = bs.container.meta
    if meta.get("root") == "folder":
        return src.parent / (src.name[:-3] if src.name.endswith(".bs") else src.name + ".out")
    name = str(meta.get("name") or bs.container.files[0].path)
    return src.parent / Path(name).name


def _write_member(bs: BsFile, index: int, fh: Any, bar: Any) -> int:
    f = bs.container.files[index]
    h = hashlib.sha256()
    size = 0
    if f.kind == "blob":
        data = bs.file_bytes(f)
        fh.write(data)
        h.update(data)
        size = len(data)
        bar.update(size)
    else:
        for part in bs.iter_file_chunks(index):
            fh.write(part)
            h.update(part)
            size += len(part)
            bar.update(len(part))
    if size != f.size or h.hexdigest() != f.receipt.digest:
        raise IntegrityError(f"{f.path}: rebuilt file does not match its sha256 receipt")
    return size


def decompress(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    threads: int | None = None,
    progress: bool | None = False,
) -> DecompressResult:
    """Restore the original ``.safetensors`` file (or model folder) from a ``.bs`` container."""
    t0 = time.perf_counter()
    src = Path(src)
    with BsFile(src, threads=threads) as bs:
        out = Path(dst) if dst is not None else default_output(src, bs)
        check_target(out, force)
        total = bs.original_size
        written = 0
        with prog.bar(total, f"decompress {src.name}", progress) as bar:
            if bs.container.meta.get("root") == "folder":
                with atomic_dir(out, force) as tmp:
                    for i, f in enumerate(bs.container.files):
                        target = tmp / f.path
                        if ".." in Path(f.path).parts or Path(f.path).is_absolute():
                            raise IntegrityError(f"refusing unsafe member path {f.path!r}")
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with open(target, "wb") as fh:
                            written += _write_member(bs, i, fh, bar)
            else:
                with atomic_file(out, force) as (_tmp, fh):
                    written += _write_member(bs, 0, fh, bar)
    return DecompressResult(str(src), str(out), written, len(bs.container.files),
                            time.perf_counter() - t0)
