"""``compress --resume``: a journal beside the temporary output, so that a killed compress
continues where it stopped and still writes the file an uninterrupted run writes.

How: a ``--resume`` run journals, next to its temporary ``.NAME.PID.XXXXXXXX.tmp``, the file
``<temporary>.journal``: a first line with the run's *fingerprint* (every input's name, size and
mtime, every option that changes the output, the bigsmall version), then one JSON line per
tensor blob once its bytes are written to the temporary (flushed to the OS first, so a
``kill -9`` never leaves a line for bytes the file lacks): the tensor's index entry, an xxh3-64
of its blob and where the blob ends. A later ``--resume`` run for the same output adopts a
temporary whose writer is gone (its ``flock`` is free) and whose journal has the same
fingerprint: it checks each journaled blob against its xxh3-64 (bytes lost in a power cut stop
the replay there), cuts the temporary after the last good one, and codes the remaining tensors
in the same order. Tensors are written in a fixed order, coded deterministically, and the index
is built from the same entries, so the result is byte-identical.

Why the sweeper keeps them: ``atomic.sweep_stale`` removes temporaries of killed runs; asked
with ``keep_resumable`` (a ``--resume`` run), it leaves the ones with a journal. A run without
``--resume`` sweeps them as before (and a journal whose temporary is gone).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

import attrs
import xxhash

from ..core.types import Receipt, TensorEntry, TensorSpec
from .atomic import JOURNAL_SUFFIX, is_locked

VERSION = 1


def journal_path(tmp: Path) -> Path:
    return tmp.with_name(tmp.name + JOURNAL_SUFFIX)


def fingerprint(inputs: list[tuple[str, Path, int]], options: dict[str, Any]) -> dict[str, Any]:
    """What must be equal for a journal to be reused: inputs (name, size, mtime) and options."""
    files = []
    for rel, path, size in inputs:
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            mtime = -1
        files.append([rel, size, mtime])
    return {"version": VERSION, "files": files, "options": options}


def _entry_json(e: TensorEntry, blob_digest: int, end: int) -> dict[str, Any]:
    s = e.spec
    return {"name": s.name, "file": s.file, "dtype": s.dtype, "shape": list(s.shape),
            "offsets": [s.begin, s.end], "layer": e.layer, "codec": e.codec, "params": e.params,
            "blob": [e.offset, e.head_len, list(e.chunk_lens)], "xxh3": e.receipt.digest,
            "bx": blob_digest, "end": end}


def _entry_from(d: dict[str, Any]) -> TensorEntry:
    off, head_len, lens = d["blob"]
    spec = TensorSpec(d["name"], d["dtype"], tuple(d["shape"]), d["offsets"][0], d["offsets"][1],
                      d["file"])
    return TensorEntry(spec, d["codec"], d["params"], off, head_len, tuple(lens),
                       Receipt("xxh3_128", d["xxh3"]), d["layer"])


class Journal:
    """The journal of one run (appended to, line by line). Continuing ``resumed``, it is first
    rewritten with the lines kept (a line after a rejected one would never be replayed)."""

    def __init__(self, path: Path, fp: dict[str, Any], resumed: Resumed | None):
        self.path = path
        lines = [json.dumps({"bigsmall_resume": fp})] + list(resumed.lines if resumed else ())
        with open(path, "w", encoding="utf-8") as fh:  # a kill mid-way loses progress, not truth
            fh.write("\n".join(lines) + "\n")
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def record(self, entry: TensorEntry, blob_digest: int, end: int) -> None:
        """One tensor written: call after its bytes were flushed to the temporary."""
        self._fh.write(json.dumps(_entry_json(entry, blob_digest, end), separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self, remove: bool) -> None:
        self._fh.close()
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink()


@attrs.frozen
class Resumed:
    """A temporary to adopt and what of it is kept."""

    tmp: Path
    entries: tuple[TensorEntry, ...]
    end: int  # bytes of the temporary kept (header placeholder + the journaled blobs)
    lines: tuple[str, ...] = ()  # the journal lines of ``entries``


def _load(tmp: Path, fp: dict[str, Any]) -> Resumed | None:
    """The kept part of ``tmp`` per its journal, or None if the journal is of another run."""
    try:
        with open(journal_path(tmp), encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        size = tmp.stat().st_size
    except (OSError, UnicodeDecodeError):
        return None
    try:
        if json.loads(lines[0]).get("bigsmall_resume") != fp:
            return None
    except (ValueError, AttributeError):
        return None
    entries: list[TensorEntry] = []
    kept: list[str] = []
    end = 64
    with open(tmp, "rb") as data:
        for line in lines[1:]:
            try:
                d = json.loads(line)
                e = _entry_from(d)
                blob_end = int(d["end"])
                start = e.offset if e.length else blob_end
                if not (end <= blob_end <= size and blob_end - start == e.length and start == end):
                    break
                data.seek(start)
                if xxhash.xxh3_64_intdigest(data.read(e.length)) != int(d["bx"]):
                    break  # bytes lost (a power cut): redo from here
            except (ValueError, KeyError, TypeError, IndexError):
                break  # the line a kill cut short
            entries.append(e)
            kept.append(line)
            end = blob_end
    return Resumed(tmp, tuple(entries), end, tuple(kept))


def find(dst: Path, fp: dict[str, Any]) -> Resumed | None:
    """The newest resumable temporary of ``dst`` whose journal matches ``fp`` and whose
    writer is gone; other unheld journaled temporaries of ``dst`` are removed (another run's
    state: it would never match again)."""
    parent = dst.parent if str(dst.parent) else Path(".")
    pat = re.compile(re.escape(f".{dst.name[:200]}.") + r"\d+\.[a-z0-9_]{8}\.tmp\Z")
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return None
    found: list[tuple[float, Path]] = []
    for name in names:
        tmp = parent / name
        if pat.match(name) and journal_path(tmp).is_file() and not is_locked(tmp):
            with contextlib.suppress(OSError):
                found.append((tmp.stat().st_mtime, tmp))
    best: Resumed | None = None
    for _mtime, tmp in sorted(found, reverse=True):
        got = _load(tmp, fp) if best is None else None
        if got is not None:
            best = got
            continue
        for p in (tmp, journal_path(tmp)):
            with contextlib.suppress(OSError):
                p.unlink()
    return best
