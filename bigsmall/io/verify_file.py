"""Verification of a ``.bs`` container (``BsFile.verify``, ``bigsmall verify``).

Why a module of its own: the three modes are a policy over the reader's decode paths (side
information only, a sample of tensors, or every file rebuilt and hashed), not part of reading
itself; ``reader.py`` keeps the decode paths they use.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import UnknownCodecError
from .hasher import Sha256

if TYPE_CHECKING:
    from .reader import BsFile


@attrs.frozen
class VerifyReport:
    mode: str
    tensors_checked: int
    tensors_total: int
    files_checked: int
    bytes_decoded: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_container(bs: BsFile, mode: str = "full", fraction: float = 0.1, seed: int = 0,
                     progress: Any = None) -> VerifyReport:
    """'fast': structure and side information; 'sample': decode a fraction of the tensors;
    'full': decode everything and rebuild every file's sha256 (a file at fault has each of
    its tensors checked alone, so ``tensors_checked`` counts the intact ones and every bad
    tensor is a problem of its own)."""
    from .reader import _codec, _problem

    if mode != "fast" and "base" in bs.container.meta and bs.base is None:
        from .delta import require  # a patch without its base: not corruption

        require(None, bs.container)
    problems: list[str] = []
    tensors = list(bs.container.tensors)
    checked = decoded = files = 0
    if mode == "fast":
        plan = getattr(bs.source, "plan", None)
        if plan is not None:  # remote: every head fetched ahead, in parallel, not one by one
            heads = [(s.offset, s.head_len) for s in map(bs._safe_resolve, tensors) if s is not None]
            plan([h for h in heads if h[1] > 0])
        for t in tensors:
            try:
                src = bs._resolve(t)
                codec = _codec(src)
                if src.length:
                    codec.prepare(src.spec, src.params, bs._head(src, plan is not None))
                checked += 1
            except UnknownCodecError:
                raise  # not corruption: this bigsmall is too old to check the file
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                problems.append(_problem(t, exc))
        return VerifyReport(mode, checked, len(tensors), 0, 0, tuple(problems))
    if mode == "sample":
        k = max(1, round(len(tensors) * fraction)) if tensors else 0
        chosen = random.Random(seed).sample(tensors, min(k, len(tensors)))
        checked, decoded, problems = _decode_each(bs, chosen, progress)
        return VerifyReport(mode, checked, len(tensors), 0, decoded, tuple(problems))
    if mode != "full":
        raise ValueError(f"unknown verify mode {mode!r} (fast, sample, full)")
    for i, f in enumerate(bs.container.files):
        try:
            if f.kind == "blob":
                bs.file_bytes(f)
            else:
                h = Sha256.for_size(f.size)  # on its own thread for a large file
                size = 0
                try:
                    for part in bs.iter_file_chunks(i):
                        h.update(part)
                        size += len(part)
                        decoded += len(part)  # counted as it goes: a failure later keeps it
                        if progress is not None:
                            progress.update(len(part))
                except BaseException:
                    h.close(discard=True)
                    raise
                checked += len(bs.file_tensors(i))
                if size != f.size or h.hexdigest() != f.receipt.digest:
                    problems.append(f"{f.path}: rebuilt file sha256 does not match its receipt")
            files += 1
        except UnknownCodecError:
            raise
        except Exception as exc:  # noqa: BLE001
            if f.kind != "safetensors":
                problems.append(f"{f.path}: {exc}")
                continue
            # a file is checked as one stream, which stops at its first bad tensor: check
            # each of its tensors alone, so that the report counts the intact ones and
            # names every bad one (it said "0/104 tensors" of a file with one bad tensor)
            n, nbytes, bad = _decode_each(bs, bs.file_tensors(i))
            checked += n
            decoded += nbytes
            problems += bad or [f"{f.path}: {exc}"]  # all intact: the fault is elsewhere
    return VerifyReport(mode, checked, len(tensors), files, decoded, tuple(problems))


def _decode_each(bs: BsFile, tensors: list[Any], progress: Any = None) -> tuple[int, int, list[str]]:
    """Decode each tensor alone: (tensors intact, bytes decoded, one problem per bad tensor).
    A codec this bigsmall does not know is raised, not reported: that is not corruption."""
    from .reader import _problem

    checked = decoded = 0
    problems: list[str] = []
    for t in tensors:
        try:
            decoded += bs.read_bytes(t.name).size
            checked += 1
        except UnknownCodecError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            problems.append(_problem(t, exc))
        if progress is not None:
            progress.update(t.spec.nbytes)
    return checked, decoded, problems
