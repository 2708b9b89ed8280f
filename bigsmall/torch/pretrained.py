"""``bigsmall.from_pretrained``: a transformers model with the exact weights of a container.

The cleanest mechanism transformers offers without patching: build the model from the config
files stored in the container (or lying next to it) with ``from_config`` in the checkpoint's own
dtype, then ``load_state_dict(..., assign=True)`` so the decoded tensors *become* the parameters
(no copy, no cast): every parameter is the stored bit pattern. Missing parameters are an error,
not a silent random initialisation.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import FormatError, MissingDependencyError

CONFIG_FILES = ("config.json", "generation_config.json")


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError(
            "bigsmall.from_pretrained needs transformers: pip install transformers"
        ) from None
    return transformers


def _write_configs(bs: Any, src: Path, into: Path) -> None:
    """Config files of the model: members of a folder container, else files next to ``src``."""
    found = False
    for f in bs.container.files:
        if f.kind == "blob" and Path(f.path).name in CONFIG_FILES and "/" not in f.path:
            (into / f.path).write_bytes(bs.file_bytes(f))
            found = found or f.path == "config.json"
    if not found:
        for name in CONFIG_FILES:
            side = src.parent / name
            if side.is_file():
                (into / name).write_bytes(side.read_bytes())
                found = found or name == "config.json"
    if not found:
        raise FormatError(
            f"{src}: no config.json in the container or next to it; compress the model folder "
            "(with its config.json) or put config.json beside the .bs file"
        )


def from_pretrained(src: str | os.PathLike[str], model_class: Any = None, device: str | Any = "cpu",
                    threads: int | None = None, **kwargs: Any) -> Any:
    """Load a transformers model (``model_class`` or ``AutoModel``) with bit-exact weights."""
    transformers = _transformers()
    import torch

    from ..io.reader import BsFile
    from .load import load

    src = Path(src)
    with tempfile.TemporaryDirectory(prefix="bigsmall-config-") as d, BsFile(src) as bs:
        _write_configs(bs, src, Path(d))
        config = transformers.AutoConfig.from_pretrained(d)
    state = load(src, device="cpu", threads=threads)
    float_dtypes = [t.dtype for t in state.values() if t.is_floating_point()]
    dtype = kwargs.pop("torch_dtype", float_dtypes[0] if float_dtypes else torch.float32)
    cls = model_class or transformers.AutoModel
    model = cls.from_config(config, torch_dtype=dtype, **kwargs)
    result = model.load_state_dict(state, strict=False, assign=True)
    params = {n for n, _ in model.named_parameters()}
    missing = [k for k in result.missing_keys if k in params]
    if missing:
        raise FormatError(
            f"{src}: the container lacks {len(missing)} parameter(s) of {type(model).__name__}, "
            f"e.g. {missing[0]!r}; pass the matching model_class"
        )
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    return model.to(device).eval()
