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


class AmbiguousTensorError(TensorNotFoundError):
    """A plain tensor name held by several files of a folder container: ask for
    ``"file::name"`` (or pass ``file=``)."""


class MissingDependencyError(BigsmallError, ImportError):
    """An optional dependency (torch, transformers, huggingface_hub) is needed but not installed."""


class InvalidOptionError(BigsmallError, ValueError):
    """An option has a value bigsmall does not accept (e.g. an unknown compression level)."""


class WarmupError(BigsmallError, RuntimeError):
    """``bigsmall warmup``: a kernel failed to compile, or a worker process died."""


class InsufficientMemoryError(BigsmallError, MemoryError):
    """A tensor needs more memory than the machine has available: refused before allocating
    (a crafted index can declare a terabyte-sized constant tensor in a few bytes)."""


class PlanError(BigsmallError, ValueError):
    """The autopilot cannot make the plan asked for: a mode the file or device cannot serve
    (``fast`` with nothing to quantize, a GPU the profile does not have)."""


class DoesNotFitError(PlanError, MemoryError):
    """No mode allowed by the request fits the free memory; the message gives the numbers.
    An explicit ``--mode perfect`` that neither loads nor streams fails with this, never lossy."""


class UnannouncedDowngradeError(BigsmallError, RuntimeError):
    """A lossy plan reached the executor without its announcement having been emitted first:
    the never-silent-downgrade rule, enforced before any weight is loaded."""


class RemoteError(BigsmallIOError):
    """Reading a container over HTTP(S) or from the Hugging Face Hub failed (after the
    bounded retries, where the fault was one that a retry can cure). The message names the
    URL, and for an ``hf://`` path the repository, revision and file."""


class RemoteNotFoundError(RemoteError, FileNotFoundError):
    """The server answered 404/410: no such file (or repository, or revision)."""


class RemoteAuthError(RemoteError, PermissionError):
    """The server answered 401/403: a token is missing, wrong, or lacks access (gated repo)."""


class RemoteChangedError(RemoteError):
    """The file changed on the server while it was read (its ETag or size changed): bytes of
    two versions must never be mixed, so the read stops and nothing is written."""


class RemoteOfflineError(RemoteError):
    """``HF_HUB_OFFLINE`` is set and the file is not in the local Hub cache."""


class NotRepairableError(IntegrityError):
    """``repair``: the file has no ECC section, or more damage than its parity can rebuild
    (more bad blocks in a stripe than it has parity blocks, or no intact ECC metadata)."""


class ShardError(FormatError):
    """A folder of ``.bs`` shards is malformed: its ``*.bs.index.json`` is missing, ambiguous
    or inconsistent, or a shard file does not match it (another model's shard, truncated)."""


class BaseRequiredError(BigsmallError, ValueError):
    """The container is a patch against a base model (``compress --delta-from``) and no base
    was given: decode it with ``base=`` (CLI: ``--base BASE`` or ``bigsmall apply``)."""


class BaseMismatchError(BigsmallError, ValueError):
    """The base given to a patch is not the base it was made from: a tensor it needs is missing,
    has another dtype or shape, or other bytes (its checksum differs). Nothing was written."""
