"""Fine-tune patches: the base model's tensors, its identity, and coding/decoding against it.

A patch (``compress(ft, delta_from=BASE)``) is an ordinary ``.bs`` whose tensors may be coded
``base`` (equal to a base tensor: zero bytes) or ``delta`` (``codecs/delta.py``: the change from
a base tensor), next to standalone ones. ``meta.base`` records what the patch needs: the base's
name, its files' sizes and sha256 (shown by ``info``) and, for every base tensor used, its dtype,
shape and xxh3-128 receipt. ``attach`` checks a given base against every such receipt before a
byte is decoded: a wrong base (one flipped bit in a used tensor), a missing tensor or another
dtype is a ``BaseMismatchError`` naming the first mismatch, and nothing is written.

Why per-tensor receipts rather than the files' sha256: the same base may come as a
safetensors file, a sharded folder or a ``.bs``; the tensors are what the patch depends on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from ..codecs import delta as dcodec
from ..core import safetensors_header as sth
from ..core.types import Container, TensorEntry, TensorPlan, TensorSpec
from ..errors import BaseMismatchError, BaseRequiredError, BigsmallError, BigsmallIOError
from .source import FileSource

DELTA_CODECS = (dcodec.CODEC_ID, dcodec.BASE_ID)


class BaseModel:
    """A base model's tensors by name, from a safetensors file, a folder of them, or a ``.bs``.

    ``data(name)`` is a uint8 view (safetensors: of the file's memory map) or the decoded bytes
    (``.bs``: checked against its receipt as every read is); ``digest(name)`` its xxh3-128."""

    def __init__(self, path: str | os.PathLike[str]):
        from ..container.format import MAGIC
        from .remote import is_remote, open_source, remote_name

        # a URL or hf:// path (remote.py, as ``bigsmall.open`` reads them) stays a str
        remote = is_remote(path)
        local = Path(path)
        self.path: Any = str(path) if remote else local
        self.name: str = remote_name(str(path)) if remote else local.name
        self._bs: Any = None
        self._sources: list[Any] = []
        self.specs: dict[str, tuple[TensorSpec, int, int]] = {}  # name -> spec, source, data start
        self.files: list[dict[str, Any]] = []
        self._digests: dict[str, str] = {}
        if remote:  # a .bs or a safetensors file, read by range requests
            src = open_source(self.path)
            try:
                magic = src.read(0, min(8, src.size))
            except BaseException:
                src.close()
                raise
            if magic == MAGIC:
                self._open_bs(src)
            else:
                self._add_safetensors(src, self.name)
        elif local.is_dir():
            paths = sorted(p for p in local.rglob("*.safetensors") if p.is_file())
            if not paths:
                raise BigsmallIOError(f"{local}: the base folder holds no .safetensors file")
            for p in paths:
                self._add_safetensors(FileSource(p), p.relative_to(local).as_posix())
        elif not local.exists():
            raise BigsmallIOError(f"{local}: no such base file or folder")
        else:
            with open(local, "rb") as fh:
                magic = fh.read(8)
            if magic == MAGIC:
                self._open_bs(None)
            else:
                self._add_safetensors(FileSource(local), local.name)

    def _open_bs(self, source: Any) -> None:
        from .reader import BsFile

        self._bs = BsFile(self.path, source=source)
        for t in self._bs.container.tensors:
            self.specs.setdefault(t.name, (t.spec, -1, 0))
            self._digests[t.name] = t.receipt.digest
        self.files = [{"path": f.path, "size": f.size, "sha256": f.receipt.digest}
                      for f in self._bs.container.files if f.kind == "safetensors"]

    def _add_safetensors(self, src: Any, rel: str) -> None:
        self._sources.append(src)
        path = src.path
        try:
            first = src.read(0, min(8, src.size))
            header = sth.parse_header(src.read(0, sth.header_length(first, src.size)), src.size)
        except BigsmallError as exc:
            raise BaseMismatchError(f"base {path}: not a safetensors file ({exc})") from None
        for t in header.tensors:
            self.specs.setdefault(t.name, (t, len(self._sources) - 1, header.data_start))
        self.files.append({"path": rel, "size": src.size, "sha256": None, "_src": src})

    def close(self) -> None:
        if self._bs is not None:
            self._bs.close()
        for s in self._sources:
            s.close()

    def __enter__(self) -> BaseModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def data(self, name: str) -> np.ndarray:
        spec, si, start = self.specs[name]
        if self._bs is not None:
            return self._bs.read_bytes(name)
        src = self._sources[si]
        try:
            raw: Any = src.view(start + spec.begin, spec.nbytes)
        except BigsmallIOError:
            raw = src.read(start + spec.begin, spec.nbytes)
        return np.frombuffer(raw, np.uint8)

    def digest(self, name: str) -> str:
        d = self._digests.get(name)
        if d is None:
            d = self._digests[name] = xxhash.xxh3_128_hexdigest(self.data(name).data)
        return d

    def identity(self, used: set[str]) -> dict[str, Any]:
        """``meta.base`` of a patch that uses the base tensors ``used``."""
        files = []
        for f in self.files:
            sha = f["sha256"]
            if sha is None:
                h = hashlib.sha256()
                src = f["_src"]
                for off in range(0, src.size, 8 << 20):
                    h.update(src.read(off, min(8 << 20, src.size - off)))
                sha = h.hexdigest()
            files.append({"path": f["path"], "size": f["size"], "sha256": sha})
        tensors = [[n, self.specs[n][0].dtype, list(self.specs[n][0].shape), self.digest(n)]
                   for n in sorted(used)]
        return {"name": self.name, "files": files, "tensors": tensors}


def open_base(base: str | os.PathLike[str] | BaseModel) -> BaseModel:
    return base if isinstance(base, BaseModel) else BaseModel(base)


def is_patch(container: Container) -> bool:
    return "base" in container.meta


def attach(base: BaseModel, container: Container) -> BaseModel:
    """Check ``base`` against the patch's ``meta.base`` receipts (every base tensor the patch
    uses: present, same dtype and shape, same xxh3-128); the first mismatch is a
    ``BaseMismatchError`` naming the tensor."""
    want = container.meta.get("base")
    if not isinstance(want, dict):
        return base
    for name, dtype, shape, digest in want["tensors"]:
        have = base.specs.get(name)
        if have is None:
            raise BaseMismatchError(f"wrong base: {base.path} has no tensor {name!r}, which the "
                                    f"patch needs (made against {want.get('name')!r})")
        spec = have[0]
        if spec.dtype != dtype or list(spec.shape) != list(shape):
            raise BaseMismatchError(
                f"wrong base: tensor {name!r} is {spec.dtype} {list(spec.shape)} in {base.path}, "
                f"the patch needs {dtype} {list(shape)}")
        if base.digest(name) != digest:
            raise BaseMismatchError(f"wrong base: tensor {name!r} of {base.path} differs from the "
                                    f"base the patch was made against ({want.get('name')!r})")
    return base


def require(base: BaseModel | None, container: Container) -> BaseModel:
    if base is None:
        b = container.meta.get("base", {})
        raise BaseRequiredError(f"this file is a patch against base {b.get('name')!r}: give the "
                                "base (bigsmall apply BASE PATCH, or --base BASE / base=...)")
    return base


def parts(base: BaseModel | None, container: Container, src: TensorEntry,
          blob: bytes | memoryview) -> list[tuple[Callable[[np.ndarray], None], int, int]]:
    """A ``base`` or ``delta`` tensor's decoding as (task, output byte begin, end), in order:
    each task fills its range of the whole tensor's ``out`` (the receipt is checked by the
    caller). A delta tensor has a task per chunk, so the pool decodes them in parallel."""
    base = require(base, container)
    of = src.params.get("of")
    if not isinstance(of, str) or of not in base.specs:
        raise BaseMismatchError(f"tensor {src.name!r}: base tensor {of!r} is missing")
    bdata = base.data(of)
    if bdata.size != src.spec.nbytes:
        raise BaseMismatchError(f"tensor {src.name!r}: base tensor {of!r} has another size")
    if src.codec == dcodec.BASE_ID:
        def copy(out: np.ndarray) -> None:
            out[:] = bdata
        return [(copy, 0, bdata.size)]
    from ..plan.decode import split_blob

    head, chunks = split_blob(blob, src.head_len, src.chunk_lens)
    state = dcodec.prepare(src.spec, src.params, head)
    out_parts: list[tuple[Callable[[np.ndarray], None], int, int]] = []
    for i, (lo, hi) in enumerate(dcodec.chunk_ranges(state, src.spec, len(chunks))):
        def task(out: np.ndarray, i: int = i, lo: int = lo, hi: int = hi) -> None:
            dcodec.decode_chunk(state, src.spec, i, chunks[i], bdata[lo:hi], out[lo:hi])
        out_parts.append((task, lo, hi))
    return out_parts


def match(base: BaseModel, spec: TensorSpec, data: np.ndarray, digest: str,
          by_digest: dict[tuple[str, str, int], str]) -> tuple[str, str] | None:
    """How a fine-tune tensor relates to the base: ("base", name) when equal to a base tensor
    (same name, else same bytes under another name: renamed or re-ordered), ("delta", name)
    when the same name has the same dtype and shape, else None (coded standalone). Equal
    checksums are confirmed on the bytes."""
    have = base.specs.get(spec.name)
    if have is not None and have[0].dtype == spec.dtype and have[0].shape == spec.shape:
        if base.digest(spec.name) == digest and np.array_equal(base.data(spec.name), data):
            return "base", spec.name
        return "delta", spec.name
    other = by_digest.get((spec.dtype, digest, spec.nbytes))
    if other is not None and spec.nbytes and np.array_equal(base.data(other), data):
        return "base", other
    return None


def digest_index(base: BaseModel) -> dict[tuple[str, str, int], str]:
    """Base tensors by (dtype, xxh3-128, size): finds renamed or re-ordered tensors."""
    out: dict[tuple[str, str, int], str] = {}
    for name, (spec, _si, _st) in base.specs.items():
        if spec.nbytes:
            out.setdefault((spec.dtype, base.digest(name), spec.nbytes), name)
    return out


FAST_MARGIN = 0.95
"""The delta coding is kept without coding the tensor standalone at the asked level when it is
below this share of the standalone coding at level ``fast``: the default level's search gains
0.2-1.6 points of size over ``fast`` on the corpus (a few % of the coded size), never 5 %, and
skipping it halves the time of a patch whose tensors all changed a little."""


def encode_delta(data: np.ndarray, bdata: np.ndarray, spec: TensorSpec, of: str,
                 standalone: Callable[[str], TensorPlan], level: str, verify: bool) -> TensorPlan:
    """The smaller of the standalone coding (``standalone(level)``) and the delta coding
    against ``bdata``; the delta coding is decoded again and dropped on any mismatch when
    ``verify``. The standalone coding is measured at level ``fast`` first (``FAST_MARGIN``)."""
    plan = dcodec.encode(bdata, data, spec)
    alone = standalone("fast")
    if plan is None or plan.coded_size >= alone.coded_size * FAST_MARGIN:
        if level != "fast":
            alone = standalone(level)
        if plan is None or plan.coded_size >= alone.coded_size:
            return alone
    plan = TensorPlan(plan.codec, {**plan.params, "of": of}, plan.head, plan.chunks)
    if verify:
        out = np.empty(data.size, np.uint8)
        try:
            state = dcodec.prepare(spec, plan.params, plan.head)
            dcodec.decode(state, spec, bdata, [memoryview(c) for c in plan.chunks], out)
            if not np.array_equal(out, data):
                return alone
        except BigsmallError:
            return alone
    return plan


def apply(base: str | os.PathLike[str], patch: str | os.PathLike[str],
          dst: str | os.PathLike[str] | None = None, **kwargs: Any) -> Any:
    """Rebuild the fine-tune from ``base`` and ``patch`` (``decompress(patch, dst, base=base)``):
    the base is checked first; a wrong one raises ``BaseMismatchError`` and writes nothing."""
    from .decompress import decompress

    return decompress(patch, dst, base=base, **kwargs)


# ---------------------------------------------------------------- diff

def _mono_ints(words: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Words (uint) -> ordered integers (int64; 64-bit words wrap): one unit in the last place
    apart is 1 apart (floats: sign-magnitude made monotone; signed ints: their value)."""
    bits = words.dtype.itemsize * 8
    w = words.astype(np.uint64)
    top = np.uint64(1) << np.uint64(bits - 1)
    mask = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
    kind = dcodec._kind(spec)
    if kind == 2:
        w = np.where(w & top, ~w & mask, w | top)
    elif kind == 1:
        w = w ^ top
    return w.view(np.int64) if bits == 64 else w.astype(np.int64)


def _as_float(words: np.ndarray, dtype: str) -> np.ndarray | None:
    if dtype == "BF16":
        return (words.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    view = {"F16": np.float16, "F32": np.float32, "F64": np.float64}.get(dtype)
    return None if view is None else words.view(view).astype(np.float64)


def tensor_diff(name: str, spec: TensorSpec, a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """One row of ``diff``: fraction of values changed, max and mean change in units in the
    last place (over the changed values), relative L2 of the change (floats)."""
    wb = dcodec.word_width(spec)
    dt = dcodec._WORDS[wb]
    wa, wbv = a.view(dt), b.view(dt)
    changed = wa != wbv
    n = int(changed.sum())
    row: dict[str, Any] = {"name": name, "status": "changed" if n else "same", "dtype": spec.dtype,
                           "shape": list(spec.shape), "numel": int(wa.size),
                           "fraction_changed": n / wa.size if wa.size else 0.0,
                           "max_ulps": 0, "mean_ulps": 0.0, "rel_l2": 0.0 if n else 0.0}
    if n:
        d = np.abs(_mono_ints(wbv[changed], spec) - _mono_ints(wa[changed], spec))
        row["max_ulps"] = int(d.max())
        row["mean_ulps"] = float(d.astype(np.float64).mean())
        fa, fb = _as_float(wa, spec.dtype), _as_float(wbv, spec.dtype)
        if fa is not None and fb is not None:
            with np.errstate(all="ignore"):
                ok = np.isfinite(fa) & np.isfinite(fb)
                den = float(np.sqrt((fa[ok] ** 2).sum()))
                num = float(np.sqrt(((fb[ok] - fa[ok]) ** 2).sum()))
            row["rel_l2"] = num / den if den else (0.0 if num == 0 else float("inf"))
        else:
            row["rel_l2"] = None
    return row


def diff(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> dict[str, Any]:
    """Compare two models (safetensors file or folder, or ``.bs``) tensor by tensor: rows
    sorted by change (most changed first), then added/removed/reshaped, and a summary."""
    rows: list[dict[str, Any]] = []
    with BaseModel(a) as ma, BaseModel(b) as mb:
        for name, (sb, _s, _o) in mb.specs.items():
            have = ma.specs.get(name)
            if have is None:
                rows.append({"name": name, "status": "added", "dtype": sb.dtype, "shape": list(sb.shape)})
                continue
            sa = have[0]
            if sa.dtype != sb.dtype or sa.shape != sb.shape:
                rows.append({"name": name, "status": "reshaped" if sa.dtype == sb.dtype else "retyped",
                             "dtype": sb.dtype, "shape": list(sb.shape),
                             "was": [sa.dtype, list(sa.shape)]})
                continue
            rows.append(tensor_diff(name, sb, ma.data(name), mb.data(name)))
        for name, (sa, _s, _o) in ma.specs.items():
            if name not in mb.specs:
                rows.append({"name": name, "status": "removed", "dtype": sa.dtype, "shape": list(sa.shape)})
    order = {"added": 0, "removed": 1, "reshaped": 2, "retyped": 2, "changed": 3, "same": 4}
    rows.sort(key=lambda r: (order[r["status"]], -r.get("fraction_changed", 0.0),
                             -(r.get("mean_ulps") or 0.0), r["name"]))
    counts = {k: sum(r["status"] == k for r in rows) for k in ("same", "changed", "added", "removed")}
    counts["reshaped"] = sum(r["status"] in ("reshaped", "retyped") for r in rows)
    both = [r for r in rows if r["status"] in ("same", "changed")]
    numel = sum(r["numel"] for r in both)
    values_changed = sum(round(r["fraction_changed"] * r["numel"]) for r in both)
    return {"a": str(a), "b": str(b), "tensors": rows, "counts": counts,
            "values_compared": numel, "values_changed": values_changed,
            "fraction_changed": values_changed / numel if numel else 0.0}
