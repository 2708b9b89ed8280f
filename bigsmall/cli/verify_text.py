"""``bigsmall verify``'s report: what was checked, how much of it is intact, every problem.

Why a second look at a corrupt container: ``BsFile.verify("full")`` rebuilds each file as one
stream (that is what checks its sha256), so the first bad tensor ends that file's check, and
the report said "CORRUPT (full: 0/104 tensors, 0 files checked)" of a file with one bad tensor
in 104: it neither said what was checked nor which other tensors are bad. Only when a full
check found problems, each tensor of the files at fault is decoded on its own (its xxh3
receipt checked); an intact container costs nothing more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ..errors import UnknownCodecError

if TYPE_CHECKING:
    from ..io.reader import BsFile, VerifyReport


@attrs.frozen
class Detail:
    files: int  # files rebuilt and checked against their sha256 (full mode), else 0
    examined: int  # tensors decoded or inspected
    total: int  # tensors in the container
    intact: int  # of ``examined``, those whose check passed
    problems: tuple[str, ...]


def _tensor_problem(name: str, exc: BaseException) -> str:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return msg if repr(name) in msg else f"{name}: {msg}"


def _tidy(problem: str) -> str:
    """``name: tensor 'name': ...`` (the reader's prefix on a message that names the tensor
    already) -> ``tensor 'name': ...``."""
    name, sep, rest = problem.partition(": ")
    return rest if sep and repr(name) in rest else problem


def _file_tensors(bs: BsFile, index: int, problems: list[str]) -> int:
    """Decode each tensor of file ``index`` alone; append a problem per bad one; return the
    number intact."""
    intact = 0
    for t in bs.file_tensors(index):
        try:
            bs.read_bytes(t.name)
            intact += 1
        except UnknownCodecError:
            raise  # not corruption: this bigsmall cannot check it (exit 1, not 3)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            problems.append(_tensor_problem(t.name, exc))
    return intact


def detail(bs: BsFile, rep: VerifyReport) -> Detail:
    """What ``rep`` checked, with each bad tensor named where a full check stopped early."""
    total = rep.tensors_total
    if rep.mode != "full":  # one problem per tensor already (fast: all; sample: the sample)
        examined = total if rep.mode == "fast" else rep.tensors_checked + len(rep.problems)
        return Detail(0, examined, total, rep.tensors_checked, tuple(map(_tidy, rep.problems)))
    files = bs.container.files
    if rep.ok:
        return Detail(len(files), total, total, rep.tensors_checked, ())
    problems: list[str] = []
    intact = 0
    claimed: set[str] = set()
    for i, f in enumerate(files):
        own = [p for p in rep.problems if p.startswith(f"{f.path}: ")]
        claimed.update(own)
        if f.kind != "safetensors":
            problems += own
            continue
        if not own:  # rebuilt and matched its sha256: every tensor of it is intact
            intact += len(bs.file_tensors(i))
            continue
        bad: list[str] = []
        intact += _file_tensors(bs, i, bad)
        problems += bad or own  # all tensors fine: the fault is elsewhere (header, sha256)
    problems += [p for p in rep.problems if p not in claimed]
    return Detail(len(files), total, total, intact, tuple(problems))


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def render(src: str, mode: str, d: Detail) -> str:
    """``src: OK (full: checked 1 file / 104 of 104 tensors)``, or ``src: CORRUPT (full:
    checked 1 file / 104 of 104 tensors, 101 intact; 3 problems)`` and a line per problem."""
    files = f"{_count(d.files, 'file')} / " if mode == "full" else ""
    checked = f"checked {files}{d.examined} of {d.total} tensors"
    if not d.problems:
        return f"{src}: OK ({mode}: {checked})"
    head = f"{src}: CORRUPT ({mode}: {checked}, {d.intact} intact; {_count(len(d.problems), 'problem')})"
    return "\n".join([head, *(f"  {p}" for p in d.problems)])
