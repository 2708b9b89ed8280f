"""A transformers model without weights, and the assignment of decoded tensors into it.

Why a skeleton: ``from_config`` on a real device allocates and random-initialises every weight,
only for the decoded tensors to replace them: wasted time and, for a model bigger than RAM, an
impossible allocation. Building under :func:`parameters_on_meta` puts the parameters on the
``meta`` device (no memory) while buffers stay real, so non-persistent buffers computed in
``__init__`` (``position_ids``, rotary ``inv_freq``) are right without being stored.

Assignment is by reference: a decoded tensor *becomes* the parameter (``nn.Parameter`` over the
same storage), no copy and no cast, so every parameter is the stored bit pattern. The same code
serves the full load (``from_pretrained``) and the streaming executor, which assigns one layer at
a time and puts it back on ``meta`` afterwards.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import FormatError, MissingDependencyError

CONFIG_FILES = ("config.json", "generation_config.json", "preprocessor_config.json")
#: tokenizer and processor files travel with the config (vocab.txt, tokenizer.json, merges.txt...)
SIDE_SUFFIXES = ("config.json", "tokenizer.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                 "merges.txt", "tokenizer.model", "added_tokens.json", "normalizer.json")
SIDE_FILE_MAX = 64 << 20


def transformers_module() -> Any:
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError(
            "this needs transformers: pip install transformers"
        ) from None
    return transformers


def sentence_modules(bs: Any) -> list[dict[str, Any]] | None:
    """The ``modules.json`` of a sentence-transformers folder container, or None.

    A malformed or oversized ``modules.json`` counts as none: the transformer still loads.
    """
    for f in bs.container.files:
        if f.path == "modules.json" and f.kind == "blob" and f.size <= SIDE_FILE_MAX:
            try:
                mods = json.loads(bs.file_bytes(f))
            except ValueError:
                return None
            ok = isinstance(mods, list) and all(
                isinstance(m, dict) and isinstance(m.get("path", ""), str)
                and isinstance(m.get("type", ""), str) for m in mods)
            return mods if ok else None
    return None


def transformer_dir(bs: Any) -> str:
    """Where the transformer of a folder container lives: ``""`` (the root), or the folder that
    ``modules.json`` names for its Transformer module (older sentence-transformers folders put
    it in ``0_Transformer/``)."""
    for m in sentence_modules(bs) or []:
        if str(m.get("type", "")).rsplit(".", 1)[-1] == "Transformer":
            return str(m.get("path", "")).strip("/")
    return ""


def model_files(bs: Any) -> list[str] | None:
    """The member safetensors files holding the transformer's weights: those in
    :func:`transformer_dir`, not a sentence-transformers folder's ``2_Dense/model.safetensors``
    (whose ``linear.weight`` is not the transformer's, and may share its name with
    ``3_Dense``'s). None, meaning every file, when that folder holds no safetensors file
    (a container of a lone file keeps its old behaviour)."""
    where = transformer_dir(bs)
    files = [f.path for f in bs.container.files
             if f.kind == "safetensors" and f.path.rpartition("/")[0] == where]
    return files or None


def write_side_files(bs: Any, src: str | os.PathLike[str], into: Path) -> None:
    """Config and tokenizer files of the model into ``into``: the small members of a folder
    container in the transformer's folder (the root, or a sentence-transformers folder's
    ``0_Transformer/``), else the files lying next to ``src``. Needs at least ``config.json``."""
    src = Path(src)
    found = False
    where = transformer_dir(bs)
    for f in bs.container.files:
        folder, _, name = f.path.rpartition("/")
        if (f.kind == "blob" and folder == where and f.size <= SIDE_FILE_MAX
                and (name in CONFIG_FILES or name.endswith(SIDE_SUFFIXES))):
            (into / name).write_bytes(bs.file_bytes(f))
            found = found or name == "config.json"
    if not found:
        for side in sorted(src.parent.iterdir()) if src.parent.is_dir() else []:
            if (side.is_file() and side.stat().st_size <= SIDE_FILE_MAX
                    and (side.name in CONFIG_FILES or side.name.endswith(SIDE_SUFFIXES))):
                (into / side.name).write_bytes(side.read_bytes())
                found = found or side.name == "config.json"
    if not found:
        raise FormatError(
            f"{src}: no config.json in the container or next to it; compress the model folder "
            "(with its config.json) or put config.json beside the .bs file"
        )


def read_config(bs: Any, src: str | os.PathLike[str]) -> Any:
    """The transformers config of the model in ``bs`` (an open ``BsFile`` of ``src``)."""
    transformers = transformers_module()
    with tempfile.TemporaryDirectory(prefix="bigsmall-config-") as d:
        write_side_files(bs, src, Path(d))
        return transformers.AutoConfig.from_pretrained(d)


def checkpoint_dtype(dtype_names: Iterable[str]) -> Any:
    """The torch dtype to build the model in: that of the first floating tensor stored."""
    import torch

    from .load import torch_dtype

    for name in dtype_names:
        if name in ("F16", "BF16", "F32", "F64"):
            return torch_dtype(name)
    return torch.float32


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Every parameter registered inside the block lands on ``meta``; buffers stay real.

    Why our own and not transformers': 4.x had ``init_empty_weights(include_buffers=False)``
    (from accelerate), 5.x removed it and builds everything, buffers included, under
    ``torch.device("meta")``, then recomputes buffers in its own loader. Non-persistent buffers
    computed in ``__init__`` (``position_ids``, rotary ``inv_freq``) must be real for a model we
    fill ourselves, so we patch ``nn.Module.register_parameter`` for the duration of the build:
    plain torch, identical under both majors. A parameter's CPU twin is created and dropped
    at once; it is never written (initialisation is off), so its pages are never touched.
    """
    import torch

    original = torch.nn.Module.register_parameter

    def register(module: Any, name: str, param: Any) -> None:
        original(module, name, param)
        if param is not None and param.device.type != "meta":
            cls = type(param)
            extra = param.__dict__
            module._parameters[name] = cls(param.to("meta"), requires_grad=param.requires_grad)
            module._parameters[name].__dict__.update(extra)

    torch.nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original  # type: ignore[method-assign]


def _no_init_weights() -> Any:
    """transformers' switch that skips weight initialisation (moved between 4.x and 5.x)."""
    try:
        from transformers.initialization import no_init_weights  # 5.x
    except ImportError:
        from transformers.modeling_utils import no_init_weights  # 4.x
    return no_init_weights()


def empty_model(config: Any, model_class: Any, dtype: Any) -> Any:
    """``model_class`` (default ``AutoModel``) built from ``config`` with parameters on ``meta``.

    ``model_class`` may be an Auto class (``from_config``) or a concrete ``PreTrainedModel``
    subclass (``_from_config``). Weight initialisation is skipped: nothing real to initialise.
    """
    transformers = transformers_module()
    cls = model_class or transformers.AutoModel
    build = getattr(cls, "from_config", None) or cls._from_config
    with parameters_on_meta(), _no_init_weights():
        try:
            model = build(config, dtype=dtype)
        except TypeError:  # transformers < 4.56 knows only torch_dtype
            model = build(config, torch_dtype=dtype)
    return model.eval()


def _owner(model: Any, name: str) -> tuple[Any, str]:
    path, _, attr = name.rpartition(".")
    return (model.get_submodule(path) if path else model), attr


def name_map(model: Any, names: Iterable[str]) -> dict[str, str]:
    """Stored name -> the model's name, allowing for the base-model prefix.

    A checkpoint of a bare encoder (``encoder.layer.0...``) loaded into a model with a head
    (``bert.encoder.layer.0...``) differs by ``base_model_prefix``; transformers' own loader
    bridges that too. Names the model does not have are left out (unused buffers such as a
    stored ``position_ids``).
    """
    own = set(model.state_dict(keep_vars=True).keys()) | {n for n, _ in model.named_buffers()}
    prefix = getattr(model, "base_model_prefix", "") or ""
    out: dict[str, str] = {}
    for n in names:
        if n in own:
            out[n] = n
        elif prefix and f"{prefix}.{n}" in own:
            out[n] = f"{prefix}.{n}"
        elif prefix and n.startswith(prefix + ".") and n[len(prefix) + 1:] in own:
            out[n] = n[len(prefix) + 1:]
    return out


def assign(model: Any, tensors: Mapping[str, Any], names: Mapping[str, str]) -> None:
    """Make each tensor the model's parameter (or buffer) of that name, sharing its storage.

    Shapes and dtypes must match the skeleton exactly: a cast or reshape would not be the stored
    bits, so a mismatch is a :class:`FormatError` naming the tensor.
    """
    import torch

    for stored, t in tensors.items():
        target = names.get(stored)
        if target is None:
            continue
        owner, attr = _owner(model, target)
        if attr in owner._parameters:
            old = owner._parameters[attr]
            kind = "parameter"
        else:
            old = owner._buffers.get(attr)
            kind = "buffer"
        if old is not None and (tuple(old.shape) != tuple(t.shape) or old.dtype != t.dtype):
            raise FormatError(
                f"tensor {stored!r} is {t.dtype} {tuple(t.shape)} but the model's {kind} {target!r} "
                f"is {old.dtype} {tuple(old.shape)}; wrong model_class or config"
            )
        if kind == "parameter":
            owner._parameters[attr] = torch.nn.Parameter(t, requires_grad=False)
        else:
            owner._buffers[attr] = t


def release(module: Any) -> None:
    """Put ``module``'s parameters back on ``meta``: drops every reference to their storage."""
    import torch

    for sub in module.modules():
        for attr, p in list(sub._parameters.items()):
            if p is not None and p.device.type != "meta":
                sub._parameters[attr] = torch.nn.Parameter(
                    torch.empty_like(p, device="meta"), requires_grad=False
                )


def meta_parameters(model: Any) -> list[str]:
    """Names of parameters still without data (nothing was assigned to them)."""
    return [n for n, p in model.named_parameters() if p.device.type == "meta"]
