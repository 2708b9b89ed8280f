"""The autopilot's ``fast`` mode: a transformers model held in group-wise INT4, LOSSY.

What it is: every tensor the planner's rule picks (``plan.autopilot.fast_quantizes``: large 2-D
float matrices, linear layers and embedding tables) is coded asymmetrically in 4 bits, in groups
of 128 along the last (input) dimension, each group with an fp16 scale and an fp16 minimum:
``w ~ q * scale + minimum``, ``q`` in 0..15, two codes per byte. The rest (norms, biases,
convolutions, positional tables) stays exact. The INT4 code is what stays resident; a module's
weight is dequantized into the model's dtype by a forward pre-hook just before the module runs
and dropped by a forward hook after, so at most one dequantized matrix is alive at a time.

Why hooks and not an INT4 matmul kernel: it runs every transformers model on any torch device
with no extra dependency, and the memory is the INT4 code's; the price is a dequantization per
call. Entry point :func:`int4_model`: it takes the plan and the :class:`Announced` receipt and
refuses to start (``require_announced``) before reading anything, unless the announcement was
emitted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

from ..errors import FormatError
from ..plan.autopilot import (
    FAST_WORK_BYTES,
    GROUP,
    Announced,
    Plan,
    fast_quantizes,
    require_announced,
)
from .load import _as_tensor
from .skeleton import checkpoint_dtype, empty_model, name_map, read_config

CHUNK_ELEMENTS = FAST_WORK_BYTES // 16  # elements (de)quantized at once: float32 temporaries
#: (a few copies of 4 bytes each) stay within the planner's FAST_WORK_BYTES


def _row_block(cols: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(1, -(-cols // GROUP) * GROUP))


@attrs.frozen
class Int4:
    """One matrix in the fast code: packed nibbles (rows, groups, 64) uint8, scale and minimum
    (rows, groups) fp16, and the original shape and dtype."""

    packed: Any
    scale: Any
    minimum: Any
    shape: tuple[int, int]
    dtype: Any

    @property
    def nbytes(self) -> int:
        return sum(int(t.numel() * t.element_size()) for t in (self.packed, self.scale, self.minimum))


def quantize(w: Any) -> Int4 | None:
    """``w`` (2-D float) in INT4; None when it cannot be (non-finite values, or a range fp16
    cannot hold): such a tensor stays exact."""
    import torch

    rows, cols = w.shape
    groups = -(-cols // GROUP)
    pad = groups * GROUP - cols
    packed = torch.empty((rows, groups, GROUP // 2), dtype=torch.uint8, device=w.device)
    scale = torch.empty((rows, groups), dtype=torch.float16, device=w.device)
    minimum = torch.empty((rows, groups), dtype=torch.float16, device=w.device)
    block = _row_block(cols)
    for r0 in range(0, rows, block):
        x = w[r0:r0 + block].float()
        if pad:  # pad with the row's last value: it changes neither the minimum nor the maximum
            x = torch.cat([x, x[:, -1:].expand(-1, pad)], dim=1)
        x = x.reshape(x.shape[0], groups, GROUP)
        lo, hi = x.amin(-1), x.amax(-1)  # NaN propagates into both, inf shows in one
        if not float(torch.maximum(hi.abs().max(), lo.abs().max())) <= 6e4:
            return None
        lo16 = lo.to(torch.float16)
        s16 = ((hi - lo16.float()) / 15).to(torch.float16)
        s = s16.float()
        s = torch.where(s > 0, s, torch.ones_like(s))
        q = torch.clamp(torch.round((x - lo16.float().unsqueeze(-1)) / s.unsqueeze(-1)), 0, 15).to(torch.uint8)
        packed[r0:r0 + block] = q[..., 0::2] | (q[..., 1::2] << 4)
        scale[r0:r0 + block], minimum[r0:r0 + block] = s16, lo16
    return Int4(packed, scale, minimum, (rows, cols), w.dtype)


def dequantize(c: Int4) -> Any:
    """The INT4 code back in the model's dtype (an approximation of the original)."""
    import torch

    rows, cols = c.shape
    out = torch.empty((rows, cols), dtype=c.dtype, device=c.packed.device)
    block = _row_block(cols)
    for r0 in range(0, rows, block):
        p = c.packed[r0:r0 + block]
        x = torch.empty((*p.shape[:2], GROUP), dtype=torch.float32, device=p.device)
        x[..., 0::2], x[..., 1::2] = p & 15, p >> 4  # in place: half the time of stack + ops
        x.mul_(c.scale[r0:r0 + block].float().unsqueeze(-1))
        x.add_(c.minimum[r0:r0 + block].float().unsqueeze(-1))
        out[r0:r0 + block] = x.reshape(p.shape[0], -1)[:, :cols]
    return out


def _hook(module: Any, attr: str, code: Int4) -> None:
    import torch

    meta = module._parameters[attr]

    def before(mod: Any, _args: Any) -> None:
        mod._parameters[attr] = torch.nn.Parameter(dequantize(code), requires_grad=False)

    def after(mod: Any, _args: Any, _out: Any) -> None:
        mod._parameters[attr] = meta

    module.register_forward_pre_hook(before)
    module.register_forward_hook(after)


@attrs.frozen
class FastStats:
    quantized: int  # tensors held in INT4
    exact: int  # tensors kept exact
    int4_bytes: int  # resident bytes of the INT4 codes
    exact_bytes: int  # resident bytes of the exact tensors
    original_bytes: int  # what a full load holds
    #: how lossy, per file: RMS of (dequantized - original) over RMS of the original, over every
    #: quantized weight (0.0: nothing quantized)
    weight_error: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def squared_error(w: Any, code: Int4) -> tuple[float, float]:
    """(sum of squared errors of the code, sum of squared weights), in float64, slice by slice."""
    err = ref = 0.0
    d = dequantize(code)
    block = _row_block(code.shape[1])
    for r0 in range(0, code.shape[0], block):
        x = w[r0:r0 + block].double()
        err += float(((d[r0:r0 + block].double() - x) ** 2).sum())
        ref += float((x * x).sum())
    return err, ref


def int4_model(src: str | os.PathLike[str], plan: Plan, receipt: Announced | None,
               model_class: Any = None, device: str = "cpu", threads: int | None = None,
               progress: Any = None) -> tuple[Any, FastStats]:
    """The model of ``src`` in the fast mode, and what it holds. Refuses (before reading any
    weight) a plan whose announcement was not emitted: ``require_announced``."""
    require_announced(plan, receipt)
    if plan.mode != "fast":
        raise FormatError(f"{src}: int4_model runs a fast plan, not {plan.mode!r}")
    import torch

    from ..io.reader import BsFile
    from ..io.remote import is_remote
    from .skeleton import assign

    src = src if is_remote(src) else Path(src)  # a URL / hf:// path: read by range requests
    dev = torch.device(device)
    codes: dict[str, Int4] = {}
    n_exact = exact_bytes = original = 0
    sq_err = sq_ref = 0.0
    with BsFile(src, threads=threads) as bs:
        config = read_config(bs, src)
        entries = list(bs.container.tensors)
        model = empty_model(config, model_class, checkpoint_dtype(t.spec.dtype for t in entries))
        names = name_map(model, [t.name for t in entries])
        storage: dict[str, Any] = {}

        def alloc(entry: Any) -> Any:
            buf = torch.empty(entry.spec.nbytes, dtype=torch.uint8)
            storage[entry.name] = buf
            return buf.numpy()

        for entry, _ in bs.iter_decoded(entries, alloc=alloc, ahead_bytes=0):
            t = _as_tensor(storage.pop(entry.name), entry.spec, dev, False)
            original += entry.spec.nbytes
            target = names.get(entry.name)
            code = (quantize(t) if target is not None
                    and fast_quantizes(entry.spec.dtype, entry.spec.shape, entry.name) else None)
            if code is not None and target is not None:
                codes[target] = code
                e, r = squared_error(t, code)
                sq_err, sq_ref = sq_err + e, sq_ref + r
            else:
                assign(model, {entry.name: t}, names)
                n_exact += 1
                exact_bytes += entry.spec.nbytes
            del t
            if progress is not None:
                progress.update(entry.spec.nbytes)
    hook_codes(model, codes, dev, src)
    stats = FastStats(len(codes), n_exact, sum(c.nbytes for c in codes.values()), exact_bytes, original,
                      (sq_err / sq_ref) ** 0.5 if sq_ref > 0 else 0.0)
    return model.eval(), stats


def hook_codes(model: Any, codes: dict[str, Int4], dev: Any, src: Any) -> None:
    """Finish a fast-mode model whose exact tensors are assigned: each INT4 code (by the model's
    parameter name) dequantized by hooks around its module, shared weights re-tied, buffers on
    ``dev``; a parameter left without data is an error. Shared by the on-the-fly quantizer
    above and the ``.bsd`` runner (``dual_run.py``), which reads the stored code instead."""
    metas = {id(_param(model, n)): code for n, code in codes.items()}
    if getattr(model.config, "tie_word_embeddings", False) or getattr(model, "_tied_weights_keys", None):
        model.tie_weights()  # a tied head shares the embedding's (meta) parameter: hooked below
    for mod in model.modules():
        for attr, p in list(mod._parameters.items()):
            if p is not None and id(p) in metas:
                _hook(mod, attr, metas[id(p)])
    hooked = set(metas)
    missing = [n for n, p in model.named_parameters() if p.device.type == "meta" and id(p) not in hooked]
    if missing:
        raise FormatError(f"{src}: the container lacks {len(missing)} parameter(s) of "
                          f"{type(model).__name__}, e.g. {missing[0]!r}; pass the matching model_class")
    for mod in model.modules():  # buffers made in __init__ (position ids) follow the weights
        for k, b in list(mod._buffers.items()):
            if b is not None and b.device != dev:
                mod._buffers[k] = b.to(dev)


def _param(model: Any, name: str) -> Any:
    path, _, attr = name.rpartition(".")
    return (model.get_submodule(path) if path else model)._parameters[attr]
