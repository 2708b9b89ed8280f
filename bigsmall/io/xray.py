"""``bigsmall xray``: per-tensor statistics and warnings of a checkpoint, before it ships.

Reads a safetensors file, a model folder, a ``.bs`` container or a folder of ``.bs`` shards
tensor by tensor: a safetensors tensor is read through the file's memory map in row blocks
(``tensor_stats.BLOCK_ELEMS``) and its pages are released after, a ``.bs`` tensor is decoded
(pipelined, ``reader.AHEAD_BYTES`` ahead) and checked against its receipt; memory stays at
about one tensor plus the decode window. The statistics and findings themselves are pure
(``plan/tensor_stats.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import xxhash

from ..core.types import TensorSpec
from ..plan import tensor_stats as ts
from . import progress as prog


@attrs.frozen
class Item:
    """One tensor of a checkpoint: the member file it is in and its spec."""

    file: str
    spec: TensorSpec


class SafetensorsTensors:
    """The tensors of a safetensors file or model folder, read through memory maps."""

    kind = "safetensors"

    def __init__(self, src: Path):
        from .compress import _discover
        from .source import FileSource

        inputs, _root = _discover(src)
        self.inputs = [i for i in inputs if i.kind == "safetensors"]
        self.sources = [FileSource(i.path) for i in self.inputs]
        self.items = [Item(i.rel, s) for i in self.inputs for s in i.header.tensors]  # type: ignore[union-attr]
        self.files = {i.rel: k for k, i in enumerate(self.inputs)}
        self.total = sum(i.size for i in self.inputs)
        self._views: dict[tuple[str, str], np.ndarray] = {}

    def close(self) -> None:
        self._views.clear()
        for s in self.sources:
            s.close()

    def view(self, item: Item, begin: int = 0, end: int | None = None) -> np.ndarray:
        """Bytes [begin, end) of a tensor, zero-copy (a view of the file's map); a whole
        tensor's view is kept until ``release`` (``scan`` asks for it several times)."""
        whole = begin == 0 and end is None
        if whole and (item.file, item.spec.name) in self._views:
            return self._views[(item.file, item.spec.name)]
        k = self.files[item.file]
        hdr = self.inputs[k].header
        assert hdr is not None
        end = item.spec.nbytes if end is None else end
        start = hdr.data_start + item.spec.begin + begin
        src = self.sources[k]
        try:
            mv = src.view(start, end - begin)
        except Exception:  # noqa: BLE001 - a file that cannot be mapped: a copy
            mv = memoryview(src.read(start, end - begin))
        arr = np.frombuffer(mv, dtype=np.uint8)
        if whole:
            self._views[(item.file, item.spec.name)] = arr
        return arr

    def release(self, item: Item) -> None:
        self._views.pop((item.file, item.spec.name), None)
        k = self.files[item.file]
        hdr = self.inputs[k].header
        assert hdr is not None
        self.sources[k].release(hdr.data_start + item.spec.begin, item.spec.nbytes)

    def blocks(self, items: list[Item]) -> Iterator[tuple[Item, Iterator[np.ndarray], str | None]]:
        for it in items:
            yield it, self._rows(it), None
            self.release(it)

    def _rows(self, it: Item) -> Iterator[np.ndarray]:
        data = self.view(it)
        yield from row_blocks(data, it.spec)


class ContainerTensors:
    """The tensors of a ``.bs`` container (or a folder of shards), decoded and checked."""

    kind = "bs"

    def __init__(self, src: Path):
        from .shards import open_container

        self.bs = open_container(src)
        files = self.bs.container.files
        # the source files' order (a .bs stores layer by layer): the same report as theirs
        order = sorted(self.bs.container.tensors, key=lambda t: (t.spec.file, t.spec.begin, t.spec.end))
        self.items = [Item(files[t.spec.file].path, t.spec) for t in order]
        self.entries = {(files[t.spec.file].path, t.name): t for t in self.bs.container.tensors}
        self.total = self.bs.original_size

    def close(self) -> None:
        self.bs.close()

    def blocks(self, items: list[Item]) -> Iterator[tuple[Item, Iterator[np.ndarray], str | None]]:
        entries = [self.entries[(it.file, it.spec.name)] for it in items]
        for it, (entry, buf) in zip(items, self.bs.iter_decoded(entries), strict=True):
            yield it, row_blocks(buf, it.spec), entry.receipt.digest


def row_blocks(data: np.ndarray, spec: TensorSpec) -> Iterator[np.ndarray]:
    """A tensor's bytes in blocks of whole rows of about ``BLOCK_ELEMS`` elements."""
    info = spec.info
    if info.itemsize == 0 or spec.numel == 0:
        yield data
        return
    rows, cols = spec.matrix
    per = max(1, ts.BLOCK_ELEMS // max(cols, 1)) * cols * info.itemsize
    for lo in range(0, data.size, per):
        yield data[lo : lo + per]


def open_tensors(src: str | os.PathLike[str]) -> SafetensorsTensors | ContainerTensors:
    """The right reader for ``src``: a ``.bs`` file or shard folder, else safetensors."""
    from .shards import is_bigsmall

    p = Path(src)
    if is_bigsmall(p):
        return ContainerTensors(p)
    return SafetensorsTensors(p)


def xray(src: str | os.PathLike[str], progress: bool | None = False) -> dict[str, Any]:
    """Statistics of every tensor of ``src`` and the findings, most severe first."""
    reader = open_tensors(src)
    rows: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    by_digest: dict[tuple[str, tuple[int, ...], str], list[str]] = {}
    try:
        with prog.bar(reader.total, f"xray {Path(src).name}", progress) as bar:
            for it, blocks, digest in reader.blocks(reader.items):
                acc = ts.Accumulator(it.spec.dtype, it.spec.shape)
                h = xxhash.xxh3_128() if digest is None else None
                for b in blocks:
                    acc.add(b)
                    if h is not None:
                        h.update(b)
                st = acc.finish()
                d = digest if h is None else h.hexdigest()
                if it.spec.nbytes:
                    by_digest.setdefault((it.spec.dtype, it.spec.shape, d), []).append(it.spec.name)
                row = {"name": it.spec.name, "file": it.file, "dtype": it.spec.dtype,
                       "shape": list(it.spec.shape), **st}
                rows.append(row)
                found += ts.findings(it.spec.name, it.spec.shape, st)
                bar.update(it.spec.nbytes)
    finally:
        reader.close()
    numel = {r["name"]: r["numel"] for r in rows}
    found += ts.duplicate_findings([v for v in by_digest.values() if len(v) > 1], numel)
    found += ts.subnormal_findings(rows)
    order = {r["name"]: i for i, r in enumerate(rows)}
    found = ts.sort_findings(found, order)
    counts = {s: sum(1 for f in found if f["severity"] == s) for s in ts.SEVERITIES}
    return {"src": str(src), "kind": reader.kind, "tensors": len(rows),
            "original_bytes": reader.total, "findings": found, "counts": counts,
            "tensor_stats": rows}


def _g(v: Any) -> str:
    return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def render(r: dict[str, Any], all_tensors: bool = True) -> str:
    """The text report: a summary line, the findings by severity, then a table of tensors."""
    c = r["counts"]
    lines = [f"{r['src']}: {r['tensors']} tensors ({r['kind']}); {c['error']} error(s), "
             f"{c['warning']} warning(s), {c['info']} note(s)"]
    for f in r["findings"]:
        names = f["tensors"]
        who = names[0] if len(names) == 1 else ", ".join(names[:4]) + (" ..." if len(names) > 4 else "")
        lines.append(f"  {f['severity'].upper():7s} {f['code']:10s} {who}: {f['message']}")
    if all_tensors:
        lines.append(f"  {'dtype':5s} {'shape':>13s} {'min':>9s} {'max':>9s} {'mean':>9s} "
                     f"{'std':>9s} {'zeros':>6s} {'exp range':>9s}  name")
        for s in r["tensor_stats"]:
            e = s.get("exponent")
            er = f"{e['min']}..{e['max']}" if e and e["min"] is not None else "-"
            zeros = f"{s['zeros'] / s['numel']:.0%}" if s["numel"] else "-"
            shape = "x".join(map(str, s["shape"])) or "()"
            init = f"  [init: {s['init_match']}]" if s.get("init_match") else ""
            lines.append(f"  {s['dtype']:5s} {shape:>13s} {_g(s.get('min')):>9s} "
                         f"{_g(s.get('max')):>9s} {_g(s.get('mean')):>9s} {_g(s.get('std')):>9s} "
                         f"{zeros:>6s} {er:>9s}  {s['name']}{init}")
    return "\n".join(lines)
