"""A model folder as a ``.bsd`` folder: ``bigsmall dual FOLDER``, and reading one back.

``compress`` packs a folder into one ``.bs``; the ``.bsd`` format holds one safetensors file, so
a folder (config, tokenizer, one or several safetensors shards, a sentence-transformers
pipeline) becomes a folder of the same layout: every ``x.safetensors`` a ``x.bsd`` (its fast
member first, then its exact member), every other file copied as it is (the sharded index
``model.safetensors.index.json`` too: restored byte for byte, it must not change), and the
manifest ``bigsmall-dual.json`` (``container/dual_manifest.py``) naming each original file with
its size and sha256. The folder is written as a temporary sibling and renamed into place
(``atomic_dir``), so it is complete or absent; ``decompress`` rebuilds the original folder the
same way and checks every file's sha256 before the rename.

:class:`DualFolder` is the folder's reader with the same questions as ``DualFile`` (``info``,
``verify``, the planner's ``summary``); :func:`open_dual` opens either.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from ..container import dual_manifest as mf
from ..core.layers import assign_layers
from ..core.types import Receipt, TensorEntry, TensorSpec
from ..errors import (
    BigsmallIOError,
    FormatError,
    IntegrityError,
    InvalidOptionError,
    InvalidSafetensorsError,
)
from ..plan.autopilot import FileSummary, int4_bytes, summarize
from . import dual
from . import progress as prog
from .atomic import atomic_dir, atomic_file, check_target
from .decompress import _member_file, folder_mode
from .source import not_regular

COPY_BYTES = 1 << 20


@attrs.frozen
class FolderResult:
    """What ``bigsmall dual FOLDER`` wrote: the same fields as ``DualResult`` (summed over the
    ``.bsd`` files) and the copied files."""

    src: str
    dst: str
    original_bytes: int  # every file of the source folder
    fast_member_bytes: int  # sum over the .bsd files
    exact_member_bytes: int
    quantized: int
    exact_tensors: int
    seconds: float
    bsd_files: int
    copied_files: int
    copied_bytes: int
    manifest_bytes: int

    @property
    def file_bytes(self) -> int:
        """Bytes of the whole ``.bsd`` folder (every file in it)."""
        return self.fast_member_bytes + self.exact_member_bytes + self.copied_bytes + self.manifest_bytes

    def to_json(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "file_bytes": self.file_bytes, "folder": True}


def default_output(src: Path) -> Path:
    """``model/`` -> ``model.bsd/`` ; ``model.safetensors`` -> ``model.bsd``."""
    src = Path(src)
    return src.parent / (src.name + ".bsd") if src.is_dir() else src.with_suffix(".bsd")


def _sources(src: Path) -> list[tuple[Path, str]]:
    """The folder's regular files (symlinks followed, as ``compress`` does) with their paths."""
    try:
        paths = sorted(p for p in src.rglob("*") if p.is_file())
    except OSError as exc:
        raise BigsmallIOError(f"{src}: cannot list it ({exc.strerror or exc}: {exc.filename})") from None
    if not paths:
        raise BigsmallIOError(f"{src} is an empty folder: nothing to write")
    out = [(p, p.relative_to(src).as_posix()) for p in paths]
    rels = {r for _p, r in out}
    if mf.NAME in rels:
        raise InvalidOptionError(f"{src} holds a file named {mf.NAME}, the name of the .bsd folder's "
                                 "manifest; rename it first")
    weights = [r for r in rels if r.endswith(".safetensors")]
    if not weights:
        raise InvalidSafetensorsError(f"{src} holds no .safetensors file")
    for r in weights:
        if mf.stored_name(r) in rels:
            raise InvalidOptionError(f"{src} holds both {r} and {mf.stored_name(r)}; the .bsd of the "
                                     "first would take the second's name")
    return out


def _copy(src: Path, fh: Any, bar: Any) -> tuple[int, str]:
    sha, n = hashlib.sha256(), 0
    try:
        with open(src, "rb") as fin:
            while block := fin.read(COPY_BYTES):
                sha.update(block)
                fh.write(block)
                n += len(block)
                bar.update(len(block))
    except OSError as exc:
        raise BigsmallIOError(f"cannot read {src}: {exc.strerror or exc}") from None
    return n, sha.hexdigest()


def create_folder(src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None, *,
                  force: bool = False, durable: bool = True, progress: bool | None = False) -> FolderResult:
    """Write the ``.bsd`` folder of the model folder ``src`` (see the module's docstring)."""
    t0 = time.perf_counter()
    src = Path(src)
    if not src.is_dir():
        not_regular(src)
        raise BigsmallIOError(f"{src}: no such folder")
    out = Path(dst) if dst is not None else default_output(src)
    files = _sources(src)
    check_target(out, force, folder=True, inputs=[src])  # before a byte is coded
    total = sum(p.stat().st_size for p, _r in files)
    members: list[mf.Member] = []
    fast = exact = nq = nz = copied = copied_bytes = 0
    with prog.bar(total, f"dual {src.name}", progress) as bar, \
            atomic_dir(out, force, durable, inputs=[src]) as tmp:
        for path, rel in files:
            stored = mf.stored_name(rel)
            target = tmp / stored
            target.parent.mkdir(parents=True, exist_ok=True)
            if rel.endswith(".safetensors"):
                try:
                    r = dual.create(path, target, durable=durable, progress=bar)
                except InvalidSafetensorsError as exc:  # say which file of the folder
                    raise InvalidSafetensorsError(f"{path} is not a safetensors file: {exc}") from None
                with dual.DualFile(target) as d:
                    sha = d.doc["sha256"]
                members.append(mf.Member(rel, stored, "bsd", r.original_bytes, sha))
                fast, exact = fast + r.fast_member_bytes, exact + r.exact_member_bytes
                nq, nz = nq + r.quantized, nz + r.exact_tensors
            else:
                with atomic_file(target, durable=durable) as (_t, fh):
                    size, sha = _copy(path, fh, bar)
                members.append(mf.Member(rel, stored, "copy", size, sha))
                copied, copied_bytes = copied + 1, copied_bytes + size
        raw = mf.encode(members)
        mf.parse(raw)  # what is written must read back
        with atomic_file(tmp / mf.NAME, durable=durable) as (_t, fh):
            fh.write(raw)
    return FolderResult(str(src), str(out), sum(m.size for m in members), fast, exact, nq, nz,
                        time.perf_counter() - t0, len(members) - copied, copied, copied_bytes, len(raw))


class DualFolder:
    """A ``.bsd`` folder opened read-only: its manifest read and validated on open; each
    ``.bsd`` member is opened (header and fast index) when asked for."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        try:
            with open(self.path / mf.NAME, "rb") as fh:
                raw = fh.read(mf.MAX_BYTES + 1)
        except OSError as exc:
            raise BigsmallIOError(f"cannot read {self.path / mf.NAME}: {exc.strerror or exc}") from None
        try:
            self.members = mf.parse(raw)
        except FormatError as exc:
            raise type(exc)(f"{self.path}: {exc}") from None

    def __enter__(self) -> DualFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @property
    def bsd_members(self) -> list[mf.Member]:
        return [m for m in self.members if m.kind == "bsd"]

    @contextmanager
    def open(self, m: mf.Member) -> Iterator[dual.DualFile]:
        """The ``DualFile`` of one member, checked against the manifest's size and sha256."""
        with dual.DualFile(self.path / m.stored) as d:
            if d.doc["sha256"] != m.sha256 or d.doc["size"] != m.size:
                raise IntegrityError(f"{self.path}: {m.stored} is not the file the manifest names "
                                     f"for {m.path} (its sha256 differs)")
            yield d

    def _stored_size(self, m: mf.Member) -> int:
        try:
            return (self.path / m.stored).stat().st_size
        except OSError as exc:
            raise BigsmallIOError(f"cannot read {self.path / m.stored}: {exc.strerror or exc}") from None

    def info(self) -> dict[str, Any]:
        files, fast, exact, kinds = [], 0, 0, []
        for m in self.members:
            row: dict[str, Any] = {"path": m.path, "stored": m.stored, "kind": m.kind, "original_bytes": m.size,
                                   "stored_bytes": self._stored_size(m)}
            if m.kind == "bsd":
                with self.open(m) as d:
                    row.update(fast_member_bytes=d.fast_member_bytes, exact_member_bytes=d.exact_member_bytes)
                    fast, exact = fast + d.fast_member_bytes, exact + d.exact_member_bytes
                    kinds += [t["kind"] for t in d.doc["tensors"]]
            files.append(row)
        original = sum(m.size for m in self.members)
        stored = sum(f["stored_bytes"] for f in files) + self._manifest_bytes()
        return {"path": str(self.path), "format": "bsd-folder", "version": list(mf.VERSION),
                "file_bytes": stored, "original_bytes": original,
                "fast_member_bytes": fast, "exact_member_bytes": exact,
                "fast_member_pct": round(100 * fast / max(1, original), 2),
                "ratio_pct": round(100 * stored / max(1, original), 2),
                "tensors": len(kinds), "quantized": kinds.count("q"), "exact_tensors": kinds.count("z"),
                "bsd_files": len(self.bsd_members), "copied_files": len(self.members) - len(self.bsd_members),
                "files": files}

    def _manifest_bytes(self) -> int:
        return (self.path / mf.NAME).stat().st_size

    def _check_copy(self, m: mf.Member, sink: Any = None) -> int:
        class _Null:
            def write(self, _b: Any) -> None:
                pass

            def update(self, _n: int) -> None:
                pass

        n, sha = _copy(self.path / m.stored, sink or _Null(), _Null())
        if n != m.size or sha != m.sha256:
            raise IntegrityError(f"{self.path}: {m.stored} does not match its sha256 receipt (corrupt)")
        return n

    def verify(self) -> dict[str, Any]:
        """Both members of every ``.bsd`` decoded and checked, every copied file's sha256."""
        for m in self.members:
            if m.kind == "bsd":
                with self.open(m) as d:
                    d.verify()
            else:
                self._check_copy(m)
        return {"ok": True, "original_bytes": sum(m.size for m in self.members), "files": len(self.members),
                "tensors": self.info()["tensors"]}

    def summary(self) -> FileSummary:
        """The planner's view of the whole folder (every ``.bsd`` member's fast index; layers
        assigned over all names, since a layer may span two shards)."""
        specs: list[tuple[TensorSpec, dict[str, Any]]] = []
        for m in self.bsd_members:
            with self.open(m) as d:
                specs += list(zip(d.specs, d.doc["tensors"], strict=True))
        layer_of, _ = assign_layers(s.name for s, _t in specs)
        entries, fast = [], 0
        for s, t in specs:
            entries.append(TensorEntry(s, "bsd", {}, 0, 0, (), Receipt("xxh3_128", t["xxh3"]), layer_of.get(s.name)))
            fast += int4_bytes(s.shape) if t["kind"] == "q" else s.nbytes
        return summarize(str(self.path), entries, kind="bsd", fast_member_bytes=fast)

    def restore(self, dst: Path, force: bool = False, durable: bool = True, progress: bool | None = False,
                check: str = "sha256") -> int:
        """Rebuild the original folder at ``dst``, every file checked against its sha256
        (``check="receipts"``: the safetensors members by their tensors' receipts instead)."""
        mode = folder_mode(self.path.stat().st_mode & 0o777)
        written = 0
        with prog.bar(sum(m.size for m in self.members), f"decompress {self.path.name}", progress) as bar, \
                atomic_dir(dst, force, durable, mode=mode, inputs=[self.path]) as tmp:
            for m in self.members:
                fmode = (self.path / m.stored).stat().st_mode & 0o666
                with _member_file(tmp, tuple(m.path.split("/")), fmode) as fh:
                    if m.kind == "bsd":
                        with self.open(m) as d:
                            written += d.restore(fh, check_tensors=check == "receipts",
                                                 sha256=check == "sha256")
                    else:
                        written += self._check_copy(m, fh)
                    fh.flush()
                    if durable:
                        os.fsync(fh.fileno())
                bar.update(m.size)
        return written


def open_dual(src: str | os.PathLike[str]) -> dual.DualFile | DualFolder:
    """The reader of a ``.bsd`` file or a ``.bsd`` folder."""
    return DualFolder(src) if Path(src).is_dir() else dual.DualFile(src)


def decompress(src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None, *,
               force: bool = False, durable: bool = True, progress: bool | None = False,
               check: str = "sha256") -> dict[str, Any]:
    """Restore a ``.bsd`` file (``io/dual.py``) or folder: ``x.bsd/`` -> ``x/``, byte for byte."""
    src = Path(src)
    if not src.is_dir():
        return {**dual.decompress(src, dst, force=force, durable=durable, check=check), "files": 1}
    t0 = time.perf_counter()
    stem = src.name[:-4] if src.name.endswith(".bsd") and len(src.name) > 4 else src.name + ".out"
    out = Path(dst) if dst is not None else src.parent / stem
    if out == src:
        raise FormatError(f"{src}: pass an output path")
    folder = DualFolder(src)
    check_target(out, force, folder=True, inputs=[src])  # before anything is decoded
    n = folder.restore(out, force, durable, progress, check)
    return {"src": str(src), "dst": str(out), "bytes": n, "files": len(folder.members),
            "seconds": time.perf_counter() - t0}


def fast_codes(d: dual.DualFile) -> Iterator[tuple[TensorSpec, str, Any]]:
    """Per tensor of the fast member: ``(spec, "q", [(codes uint8 (rows, cols), scales fp16,
    minimums fp16), ...])`` per block for a quantized matrix (the INT4 code itself, for a runner
    that keeps it resident), or ``(spec, "z", exact bytes uint8)``. Reads the fast member only,
    through the reader's own chunk checks and decoder."""
    for spec, t in zip(d.specs, d.doc["tensors"], strict=True):
        if t["kind"] == "q":
            yield spec, "q", [d._decode_fast(d._chunk(c, spec.name), c[2], spec.shape[1]) for c in t["chunks"]]
        else:
            yield spec, "z", d._exact_bytes(spec, t, [])


def restore_member_to(folder: DualFolder, m: mf.Member, dst: Path) -> None:
    """One member file restored exactly at ``dst`` (a plain file, overwritten): what a runner
    needs of a small module (a sentence-transformers Dense layer) or a side file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "wb") as fh:
        if m.kind == "bsd":
            with folder.open(m) as d:
                d.restore(fh)
        else:
            folder._check_copy(m, fh)
