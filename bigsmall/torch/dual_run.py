"""``bigsmall run`` of a ``.bsd`` folder: the exact members (``perfect``) or the fast members
alone (``fast``, LOSSY, announced first).

A ``.bsd`` folder (``io/dual_folder.py``) holds the model's config and tokenizer as plain files
and each safetensors file as a ``.bsd``. The input, the task and the sentence-transformers
modules after the transformer are those of :mod:`.runner` (the folder is shown to its helpers
through :class:`FolderFiles`, the few ``BsFile`` members they read); only the weights come from
here:

* ``perfect``: every tensor of the exact members, the stored bits (the same model, to the bit, as
  a full load of the folder's ``.bs``);
* ``fast``: the INT4 code read from the fast members (nothing of the exact members is read) and
  held resident, each matrix dequantized by a hook just before its module runs
  (:func:`.fast.hook_codes`, the same hooks and the same values as the on-the-fly fast mode of
  a ``.bs``: the stored code is the one that mode computes). Refused before a byte is read
  unless the plan's announcement was emitted (``require_announced``).

A ``.bsd`` is not streamed (the planner does not offer it), so ``auto`` is perfect when a full
load fits and fast (announced) otherwise.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from ..container import dual_manifest as mf
from ..errors import PlanError
from ..io import memory
from ..plan.autopilot import GROUP, Announced, Plan, require_announced
from .dual_load import _bytes
from .fast import FastStats, Int4, hook_codes
from .load import _as_tensor, torch_dtype
from .pretrained import tie_and_check
from .runner import RunResult, _model_class, _Task
from .sentence import pipeline_for_run
from .skeleton import (
    assign,
    checkpoint_dtype,
    empty_model,
    name_map,
    transformer_dir,
    transformers_module,
    write_side_files,
)


class FolderFiles:
    """A ``.bsd`` folder through the ``BsFile`` surface the side-file and sentence-transformers
    helpers use (``container.files``, ``file_bytes``, ``iter_file_chunks``, ``path``): copied
    files are blobs, ``.bsd`` files restore their safetensors file (exact, sha256-checked)."""

    def __init__(self, folder: Any):
        self.folder = folder
        self.path = folder.path
        self._members = list(folder.members)
        self.container = types.SimpleNamespace(files=[
            types.SimpleNamespace(path=m.path, kind="safetensors" if m.kind == "bsd" else "blob", size=m.size)
            for m in self._members])

    def _restored(self, m: mf.Member) -> bytes:
        sink = io.BytesIO()
        if m.kind == "bsd":
            with self.folder.open(m) as d:
                d.restore(sink)
        else:
            self.folder._check_copy(m, sink)
        return sink.getvalue()

    def file_bytes(self, f: Any) -> bytes:
        return self._restored(next(m for m in self._members if m.path == f.path))

    def iter_file_chunks(self, index: int) -> Iterator[bytes]:
        yield self._restored(self._members[index])


def _int4(blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], spec: Any, dev: Any) -> Int4:
    """A stored fast code (per block: codes (rows, cols), fp16 scales and minimums) as the
    fast mode's ``Int4``: nibbles packed two per byte over 128-wide groups (padding codes 0)."""
    import torch

    rows, cols = spec.shape
    groups = -(-cols // GROUP)
    q = np.concatenate([b[0] for b in blocks]) if len(blocks) > 1 else blocks[0][0]
    if groups * GROUP != cols:
        q = np.pad(q, ((0, 0), (0, groups * GROUP - cols)))
    q = q.reshape(rows, groups, GROUP)
    packed = np.ascontiguousarray(q[..., 0::2] | (q[..., 1::2] << 4))
    scale = np.ascontiguousarray(np.concatenate([b[1] for b in blocks]).astype(np.float16))
    minimum = np.ascontiguousarray(np.concatenate([b[2] for b in blocks]).astype(np.float16))
    return Int4(torch.from_numpy(packed).to(dev), torch.from_numpy(scale).to(dev),
                torch.from_numpy(minimum).to(dev), (rows, cols), torch_dtype(spec.dtype))


def _config(folder: Any, files: FolderFiles, side: Path) -> Any:
    """The transformers config of the folder, from its side files written into ``side``."""
    write_side_files(files, folder.path / mf.NAME, side)
    return transformers_module().AutoConfig.from_pretrained(str(side))


def dual_model(src: str | os.PathLike[str], plan: Plan, receipt: Announced | None, device: str = "cpu",
               model_class: Any = None, progress: Any = None) -> tuple[Any, dict[str, Any]]:
    """The transformers model of the ``.bsd`` folder ``src`` as ``plan`` says (``perfect``: the
    exact members; ``fast``: the stored INT4 code, hooked) and what it read: ``tensors``,
    ``weight_bytes`` and, in fast mode, ``fast`` (the held bytes and the bytes read).
    ``model_class``: a class, a transformers class name, or None (the config's architecture).
    Refuses a lossy plan whose announcement was not emitted, before reading anything."""
    require_announced(plan, receipt)  # a lossy plan: refused before a single byte is read
    if plan.mode not in ("perfect", "fast"):
        raise PlanError(f"{src}: a .bsd runs whole (--mode perfect) or from its fast members "
                        f"(--mode fast), not {plan.mode!r}")
    import torch

    from ..io.dual_folder import DualFolder, fast_codes

    folder = DualFolder(src)
    files = FolderFiles(folder)
    with tempfile.TemporaryDirectory(prefix="bigsmall-config-") as d:
        config = _config(folder, files, Path(d))
    where = transformer_dir(files)  # a sentence-transformers folder: the transformer's files only
    members = [m for m in folder.bsd_members if m.path.rpartition("/")[0] == where] or folder.bsd_members
    cls = model_class if model_class is None or not isinstance(model_class, str) else None
    cls = cls or _model_class(config, model_class)
    dev = torch.device(device)
    cpu = torch.device("cpu")
    with ExitStack() as stack:
        duals = [stack.enter_context(folder.open(m)) for m in members]
        specs = [s for dd in duals for s in dd.specs]
        weight_bytes = sum(s.nbytes for s in specs)
        model = empty_model(config, cls, checkpoint_dtype(s.dtype for s in specs))
        names = name_map(model, [s.name for s in specs])
        bar = progress(weight_bytes, "B") if progress else None
        info: dict[str, Any] = {"tensors": len(specs), "weight_bytes": weight_bytes, "fast": None}
        if plan.mode == "perfect":
            for dd in duals:
                for spec, data in dd.iter_exact():
                    assign(model, {spec.name: _as_tensor(_bytes(torch, data), spec, cpu, False)}, names)
                    if bar is not None:
                        bar.update(spec.nbytes)
            tie_and_check(model, src)
            model = model.to(dev)
        else:
            codes: dict[str, Int4] = {}
            n_exact = exact_bytes = 0
            for dd in duals:
                for spec, kind, data in fast_codes(dd):
                    target = names.get(spec.name)
                    if kind == "q" and target is not None:
                        codes[target] = _int4(data, spec, dev)
                    elif kind == "z":
                        assign(model, {spec.name: _as_tensor(_bytes(torch, data), spec, dev, False)}, names)
                        n_exact += 1
                        exact_bytes += spec.nbytes
                    if bar is not None:
                        bar.update(spec.nbytes)
            hook_codes(model, codes, dev, src)
            # the weight error needs the exact weights, which fast mode does not read: None here
            # (docs/dual.md gives it per model, measured by benchmarks/bench_dual_run.py)
            stats = FastStats(len(codes), n_exact, sum(c.nbytes for c in codes.values()), exact_bytes,
                              weight_bytes, None)  # type: ignore[arg-type]
            info["fast"] = {**stats.to_json(), "source": "fast member",
                            "bytes_read": sum(dd.bytes_read for dd in duals),
                            "fast_member_bytes": sum(dd.fast_member_bytes for dd in duals),
                            "exact_member_bytes": sum(dd.exact_member_bytes for dd in duals)}
        if bar is not None:
            bar.close()
    return model.eval(), info


def run_dual(src: str | os.PathLike[str], plan: Plan, receipt: Announced | None, device: str = "cpu",
             prompt: str | None = None, audio: str | None = None, model_class: str | None = None,
             progress: Any = None, announce: Callable[[str], None] | None = None) -> RunResult:
    """Run the model of the ``.bsd`` folder ``src`` as ``plan`` says (``perfect`` or ``fast``)
    on a real input (:func:`.runner.run`'s inputs and outputs). ``progress``: ``(total, unit)
    -> bar``."""
    require_announced(plan, receipt)  # a lossy plan: refused before a single byte is read
    import torch

    from ..io.dual_folder import DualFolder

    folder = DualFolder(src)
    files = FolderFiles(folder)
    with tempfile.TemporaryDirectory(prefix="bigsmall-run-") as d:
        side = Path(d)
        task = _Task(_config(folder, files, side), side, prompt, audio)
        task.post = pipeline_for_run(files, str(torch.device(device)), announce)
    memory.reset_peak()
    t0 = time.perf_counter()
    model, info = dual_model(src, plan, receipt, device, model_class, progress)
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    output = task(model, model)
    return RunResult("fast" if info["fast"] is not None else "load", str(src), type(model).__name__,
                     str(torch.device(device)), info["tensors"], info["weight_bytes"], load_s,
                     time.perf_counter() - t1, output, None, memory.peak_rss(), None, info["fast"])
