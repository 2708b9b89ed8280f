"""``bigsmall.from_pretrained``: a transformers model with the exact weights of a container.

The cleanest mechanism transformers offers without patching: build the model from the config
files stored in the container (or lying next to it) as an empty skeleton (parameters on ``meta``,
no random initialisation, see :mod:`.skeleton`), then make each decoded tensor the parameter it
belongs to (no copy, no cast): every parameter is the stored bit pattern. Missing parameters are
an error, not a silent random initialisation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import FormatError
from .skeleton import (
    assign,
    checkpoint_dtype,
    empty_model,
    meta_parameters,
    model_files,
    name_map,
    read_config,
    transformers_module,
)


def tie_and_check(model: Any, src: Path | str) -> None:
    """Re-tie shared weights (a tied head points at the embedding), then refuse an incomplete model."""
    if getattr(model.config, "tie_word_embeddings", False) or getattr(model, "_tied_weights_keys", None):
        model.tie_weights()
    missing = meta_parameters(model)
    if missing:
        raise FormatError(
            f"{src}: the container lacks {len(missing)} parameter(s) of {type(model).__name__}, "
            f"e.g. {missing[0]!r}; pass the matching model_class"
        )


def from_pretrained(src: str | os.PathLike[str], model_class: Any = None, device: str | Any = "cpu",
                    threads: int | None = None, progress: Any = None, **kwargs: Any) -> Any:
    """Load a transformers model (``model_class`` or ``AutoModel``) with bit-exact weights.

    ``kwargs`` go to the config (e.g. ``attn_implementation``); ``dtype``/``torch_dtype`` may only
    name the stored dtype, since a cast would not be the stored bits.
    """
    transformers_module()
    import torch

    from ..io.reader import BsFile
    from ..io.remote import is_remote
    from .load import load

    src = src if is_remote(src) else Path(src)  # a URL / hf:// path: read by range requests
    with BsFile(src) as bs:
        config = read_config(bs, src)
        files = model_files(bs)  # a sentence-transformers folder: the transformer's files only
        stored = checkpoint_dtype(t.spec.dtype for t in bs.container.tensors
                                  if files is None or bs.container.files[t.spec.file].path in files)
    dtype = kwargs.pop("dtype", None) or kwargs.pop("torch_dtype", None) or stored
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    if dtype not in ("auto", stored):
        raise FormatError(
            f"{src}: stored weights are {stored}; loading them as {dtype} would not be bit-exact "
            "(cast the model after loading if that is what you want)"
        )
    for key, value in kwargs.items():
        setattr(config, key, value)
    model = empty_model(config, model_class, stored)
    state = load(src, device="cpu", threads=threads, progress=progress, file=files)
    assign(model, state, name_map(model, state))
    tie_and_check(model, src)
    return model.to(device).eval()
