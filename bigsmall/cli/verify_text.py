"""``bigsmall verify``'s report: what was checked, how much of it is intact, every problem.

The counting happens in ``BsFile.verify`` (a full check that finds a file at fault checks
each of its tensors alone, so every bad tensor is named); this module only words it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ..io.reader import BsFile, VerifyReport


@attrs.frozen
class Detail:
    files: int  # files rebuilt and checked against their sha256 (full mode), else 0
    examined: int  # tensors decoded or inspected
    total: int  # tensors in the container
    intact: int  # of ``examined``, those whose check passed
    problems: tuple[str, ...]


def detail(bs: BsFile, rep: VerifyReport) -> Detail:
    """What ``rep`` checked: every tensor in ``fast`` and ``full`` mode (``full`` also every
    file), the sample in ``sample`` mode (one problem per bad tensor)."""
    total = rep.tensors_total
    examined = rep.tensors_checked + len(rep.problems) if rep.mode == "sample" else total
    files = len(bs.container.files) if rep.mode == "full" else 0
    return Detail(files, examined, total, rep.tensors_checked, rep.problems)


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
