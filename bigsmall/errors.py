"""Every exception bigsmall raises, in one module.

Why one module: callers can ``except bigsmall.errors.BigsmallError`` for everything, or catch a
precise type. Each class also subclasses the standard exception a caller would already expect
(``ValueError`` for bad input, ``OSError`` for I/O trouble, ``FileExistsError`` for refusing to
overwrite), so existing ``except OSError`` code keeps working.
"""

from __future__ import annotations


class BigsmallError(Exception):
    """Base class of every error raised by bigsmall."""


class InvalidSafetensorsError(BigsmallError, ValueError):
    """The input is not a valid safetensors file (bad header, lying offsets, unknown dtype...)."""


class FormatError(BigsmallError, ValueError):
    """A ``.bs`` container is malformed: wrong magic, truncated, inconsistent index."""


class TruncatedError(FormatError):
    """The container ends before the byte ranges its header or index promise."""


class UnsupportedVersionError(FormatError):
    """The container was written by a newer format version than this bigsmall can read."""


class UnknownCodecError(FormatError):
    """The index names a codec id this version does not know (written by a newer bigsmall)."""


class IntegrityError(BigsmallError, ValueError):
    """Decoded bytes do not match the receipt (checksum) stored for them: corruption."""


class OutputExistsError(BigsmallError, FileExistsError):
    """The output path exists and ``force`` was not given; nothing was written."""


class BigsmallIOError(BigsmallError, OSError):
    """Reading or writing failed (disk full, permission...); partial outputs were removed."""


class TensorNotFoundError(BigsmallError, KeyError):
    """A tensor name asked for is not in the container."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "tensor not found"


class MissingDependencyError(BigsmallError, ImportError):
    """An optional dependency (torch, transformers, huggingface_hub) is needed but not installed."""


class InvalidOptionError(BigsmallError, ValueError):
    """An option has a value bigsmall does not accept (e.g. an unknown compression level)."""


class WarmupError(BigsmallError, RuntimeError):
    """``bigsmall warmup``: a kernel failed to compile, or a worker process died."""


class InsufficientMemoryError(BigsmallError, MemoryError):
    """A tensor needs more memory than the machine has available: refused before allocating
    (a crafted index can declare a terabyte-sized constant tensor in a few bytes)."""
