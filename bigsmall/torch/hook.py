"""``AutoModel.from_pretrained(folder)`` on compressed models: an explicit, reversible hook.

transformers has no plug-in point for a new weight-file format: its loader only knows
safetensors, pickle and a few quantisation formats, and the ``HfQuantizer`` route would announce a
quantised (lossy) model, which this is not. So the hook patches, and says so: ``install_hook()``
wraps ``PreTrainedModel.from_pretrained`` and every Auto class's ``from_pretrained``; when the path
is a ``.bs`` container, or a folder holding one and no uncompressed weights, the call goes to
:func:`bigsmall.from_pretrained` with the class asked for; every other call goes to transformers
untouched. ``uninstall_hook()`` puts the original methods back. Nothing is patched on import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..container.format import MAGIC
from ..errors import FormatError
from .skeleton import transformers_module

_ORIGINALS: dict[Any, Any] = {}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")
#: keyword arguments of transformers' loader that mean nothing for a local, lossless container
_IGNORED = {"low_cpu_mem_usage", "local_files_only", "revision", "trust_remote_code", "cache_dir",
            "force_download", "proxies", "token", "use_safetensors", "weights_only", "subfolder",
            "resume_download", "output_loading_info", "_from_auto", "mirror", "code_revision"}


def _is_container(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def bigsmall_source(path: Any) -> Path | None:
    """The ``.bs`` file a ``from_pretrained`` argument stands for, or None if it is not one."""
    if not isinstance(path, (str, os.PathLike)):
        return None
    p = Path(path)
    if p.is_file():
        return p if _is_container(p) else None
    if not p.is_dir():
        return None
    if any(f.suffix in _WEIGHT_SUFFIXES for f in p.iterdir() if f.is_file()):
        return None  # uncompressed weights are there: transformers' own business
    found = sorted(f for f in p.glob("*.bs") if f.is_file() and _is_container(f))
    if len(found) > 1:
        raise FormatError(f"{p}: {len(found)} .bs containers ({found[0].name}, {found[1].name}...); "
                          "pass the one to load")
    return found[0] if found else None


def _redirect(cls: Any, src: Path, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from .pretrained import from_pretrained

    if args:
        raise TypeError("bigsmall hook: pass from_pretrained options by keyword")
    device = kwargs.pop("device_map", None) or kwargs.pop("device", None) or "cpu"
    if isinstance(device, dict):
        raise FormatError("bigsmall hook: a device_map dict is not supported; give one device")
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    config = kwargs.pop("config", None)
    opts = {k: v for k, v in kwargs.items() if k not in _IGNORED}
    if config is not None and not isinstance(config, (str, os.PathLike)):
        opts.update({k: v for k, v in config.to_diff_dict().items() if not k.startswith("_")})
    return from_pretrained(src, model_class=cls, device=device, **opts)


def _wrap(owner: Any) -> None:
    original = owner.__dict__["from_pretrained"]
    func = original.__func__

    def from_pretrained(cls: Any, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        src = bigsmall_source(pretrained_model_name_or_path)
        if src is None:
            return func(cls, pretrained_model_name_or_path, *args, **kwargs)
        return _redirect(cls, src, args, kwargs)

    from_pretrained.__doc__ = func.__doc__
    from_pretrained.__wrapped__ = func  # type: ignore[attr-defined]
    _ORIGINALS[owner] = original
    owner.from_pretrained = classmethod(from_pretrained)


def _owners() -> list[Any]:
    transformers_module()
    from transformers.modeling_utils import PreTrainedModel
    from transformers.models.auto import modeling_auto
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    # each Auto class gets its own copy of from_pretrained (auto_class_update): patch every copy
    autos = [c for c in vars(modeling_auto).values()
             if isinstance(c, type) and issubclass(c, _BaseAutoModelClass) and c is not _BaseAutoModelClass
             and "from_pretrained" in c.__dict__]
    return [PreTrainedModel, _BaseAutoModelClass, *autos]


def install_hook() -> bool:
    """Route ``from_pretrained`` of transformers models to bigsmall for ``.bs`` sources.

    Returns False if it was already installed (calling twice is harmless).
    """
    if _ORIGINALS:
        return False
    for owner in _owners():
        _wrap(owner)
    return True


def uninstall_hook() -> bool:
    """Restore transformers' own ``from_pretrained``. Returns False if no hook was installed."""
    if not _ORIGINALS:
        return False
    for owner, original in _ORIGINALS.items():
        owner.from_pretrained = original
    _ORIGINALS.clear()
    return True


def hook_installed() -> bool:
    return bool(_ORIGINALS)


@contextmanager
def hooked() -> Iterator[None]:
    """``with bigsmall.hooked(): AutoModel.from_pretrained("model.bs")`` - installed for the block."""
    mine = install_hook()
    try:
        yield
    finally:
        if mine:
            uninstall_hook()
