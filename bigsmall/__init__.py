"""bigsmall: lossless compression of neural-network weights.

The package face: ``compress``, ``decompress``, ``open``, ``load``. Imports are lazy so that
``import bigsmall`` (and the CLI's start) stays fast: numba kernels and torch load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["compress", "decompress", "open", "load", "from_pretrained", "StreamingLoader",
           "__version__"]

if TYPE_CHECKING:
    from .io.compress import compress
    from .io.decompress import decompress


def __getattr__(name: str) -> Any:
    if name == "compress":
        from .io.compress import compress

        return compress
    if name == "decompress":
        from .io.decompress import decompress

        return decompress
    if name == "load":
        from .torch.load import load

        return load
    if name == "from_pretrained":
        from .torch.pretrained import from_pretrained

        return from_pretrained
    if name == "StreamingLoader":
        from .torch.streaming import StreamingLoader

        return StreamingLoader
    if name == "errors":
        from . import errors

        return errors
    raise AttributeError(f"module 'bigsmall' has no attribute {name!r}")


def open(path: Any, threads: int | None = None) -> Any:  # noqa: A001 - mirrors builtins.open on purpose
    """Open a ``.bs`` container read-only: names, specs, ``read(name)``, ``verify()``."""
    from .io.reader import BsFile

    return BsFile(path, threads=threads)
