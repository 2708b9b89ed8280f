"""bigsmall: lossless compression of neural-network weights.

The package face: ``compress``, ``decompress``, ``open``, ``load``. Imports are lazy so that
``import bigsmall`` (and the CLI's start) stays fast: numba kernels and torch load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["compress", "decompress", "apply", "open", "load", "aload", "from_pretrained", "StreamingLoader",
           "StreamingModel", "install_hook", "uninstall_hook", "hooked", "warmup", "__version__"]

if TYPE_CHECKING:
    from .io.compress import compress
    from .io.decompress import decompress


_LAZY = {
    "compress": ("io.compress", "compress"),
    "decompress": ("io.decompress", "decompress"),
    "apply": ("io.delta", "apply"),
    "from_pretrained": ("torch.pretrained", "from_pretrained"),
    "StreamingLoader": ("torch.streaming", "StreamingLoader"),
    "StreamingModel": ("torch.executor", "StreamingModel"),
    "install_hook": ("torch.hook", "install_hook"),
    "uninstall_hook": ("torch.hook", "uninstall_hook"),
    "hooked": ("torch.hook", "hooked"),
    "warmup": ("io.warmup", "warmup"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    if name == "errors":
        from . import errors

        return errors
    raise AttributeError(f"module 'bigsmall' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What ``dir(bigsmall)`` and tab completion show: the module's own names plus the lazy
    public API, which ``__getattr__`` only materialises on first use (so a plain ``dir()`` would
    hide ``compress``, ``load`` and the rest until then)."""
    own = {n for n in globals() if n.startswith("__")}  # dunders, not the typing helpers
    return sorted(own | set(__all__) | set(_LAZY) | {"errors"})


def load(src: Any, *args: Any, mode: str = "exact", **kwargs: Any) -> dict[str, Any]:
    """Load the tensors of a ``.bs`` (``torch/load.py``) or of a dual-fidelity ``.bsd``
    (``torch/dual_load.py``) into torch: bit-exact, or with ``mode="fast"`` (``.bsd`` only)
    the LOSSY INT4 fast member alone, dequantized into each tensor's dtype."""
    from .io.source import is_dual_path

    if is_dual_path(src):
        from .torch.dual_load import load_dual

        return load_dual(src, *args, mode=mode, **kwargs)
    if mode != "exact":
        from .errors import InvalidOptionError

        raise InvalidOptionError(f"mode={mode!r} needs a dual-fidelity .bsd (`bigsmall dual`); "
                                 f"{src} is not one")
    from .torch.load import load as load_bs

    return load_bs(src, *args, **kwargs)


async def aload(src: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The async twin of ``load`` (a path, URL or ``hf://`` path): ``sd = await bigsmall.aload(url)``.

    Runs ``load`` in a worker thread (``anyio.to_thread``), so the event loop stays free while
    the blobs download and decode. Why not an async fetch: the download already runs on its own
    connection threads overlapping the decode (io/remote.py) and the decode is compiled code on
    a thread pool; an async client would be a second fetch path for the same bytes, with no
    speed to gain. A cancelled ``aload`` returns once the load in flight has finished (its
    threads are never left running behind the caller's back)."""
    import functools

    import anyio.to_thread

    return await anyio.to_thread.run_sync(functools.partial(load, src, *args, **kwargs))


def open(path: Any, threads: int | None = None, base: Any = None) -> Any:  # noqa: A001 - mirrors builtins.open on purpose
    """Open a ``.bs`` container read-only: names, specs, ``read(name)``, ``verify()``.
    ``path`` may also be an ``http(s)://`` URL or ``hf://org/repo[@revision]/file.bs`` (range
    requests: a tensor costs its own bytes only; docs/remote.md), or a folder of ``.bs`` shards
    (``bigsmall reshard``; docs/tools.md), read as the container it was cut from.
    ``base``: the base model of a patch (``compress(delta_from=...)``), checked on open."""
    from .io.reader import BsFile

    return BsFile(path, threads=threads, base=base)
