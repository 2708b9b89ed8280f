"""``bigsmall profile`` and ``bigsmall plan``: the autopilot's measuring and deciding halves.

``run --mode`` (in ``run_command``) uses the same steps, then executes: :func:`make_plan` here,
``announce`` (``plan.autopilot``) for the receipt, and the runner, which refuses a lossy plan
whose announcement was not emitted first.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..plan import autopilot as ap
from .core_commands import Emit

MODE_HELP = ("perfect: bit-exact, full load (streams if that does not fit, never lossy); "
             "stream: bit-exact, one layer at a time; fast: LOSSY INT4, announced; "
             "auto: the highest fidelity that fits (default)")


def _speed(p: ap.Profile) -> str:
    s = p.disk_read_bytes_per_s
    return f"{s / 1e6:.0f} MB/s" if s else "not measured"


def profile_text(p: ap.Profile, where: Path, measured: bool) -> str:
    gpus = "; ".join(f"cuda:{g.index} {g.name}, {g.free_bytes / 1e9:.1f} of {g.total_bytes / 1e9:.1f} GB free"
                     for g in p.gpus) or "none (no CUDA device through torch)"
    return "\n".join([
        f"cores: {p.cores}",
        f"RAM: {p.ram_available_bytes / 1e9:.1f} of {p.ram_total_bytes / 1e9:.1f} GB available",
        f"GPU: {gpus}",
        f"model cache read: {_speed(p)} ({p.disk_probe})",
        f"{'measured now, saved to' if measured else 'saved profile (measured ' + p.measured_at + '; --refresh to measure again):'} {where}",
    ])


def cmd_profile(args: argparse.Namespace, emit: Emit) -> int:
    from ..io import profile

    p, measured = profile.load_or_measure(refresh=args.refresh)
    where = profile.config_path()
    emit(args, {**p.to_json(), "path": str(where), "measured_now": measured},
         profile_text(p, where, measured))
    return 0


def current_profile(device: str) -> ap.Profile:
    """The saved profile with free memory read now; without a saved one, a quick measurement
    (no disk probe) that is not saved: planning needs only the memory figures."""
    from ..io import profile

    p = profile.cached()
    if p is None:
        import psutil

        vm = psutil.virtual_memory()
        p = ap.Profile(os.cpu_count() or 1, int(vm.total), int(vm.available), profile.gpus())
    return profile.refresh_free(p, device)


def read_summary(src: str | Path) -> ap.FileSummary:
    """The planner's view of a container: its index, nothing decoded."""
    from ..io.reader import BsFile
    from ..io.source import is_dual_path

    if is_dual_path(src):  # a .bsd file or folder: its fast indexes (io/dual.py, io/dual_folder.py)
        from ..io.dual_folder import open_dual

        with open_dual(src) as d:
            return d.summary()

    with BsFile(src) as bs:
        return ap.summarize(str(src), bs.container.tensors)


def make_plan(src: str | Path, mode: str, device: str) -> ap.Plan:
    return ap.plan(read_summary(src), current_profile(device), mode, device)


def cmd_plan(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.source import is_dual_path

    p = make_plan(args.src, args.mode, args.device)
    lines = ([p.announcement.sentence] if p.announcement else []) + [p.sentence]
    payload = p.to_json()
    if is_dual_path(args.src):  # a .bsd file or folder: what each mode reads from it
        from ..io.dual_folder import open_dual

        with open_dual(args.src) as d:
            info = d.info()
        payload.update(fast_member_bytes=info["fast_member_bytes"], exact_member_bytes=info["exact_member_bytes"])
        lines.append(f"stored: fast member(s) {info['fast_member_bytes'] / 1e6:.1f} MB (all --mode fast reads), "
                     f"exact member(s) {info['exact_member_bytes'] / 1e6:.1f} MB (read too by --mode perfect)")
    emit(args, payload, "\n".join(lines))
    return 0


def add_mode(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--mode", choices=ap.REQUESTS, default=default, help=MODE_HELP)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "profile", parents=[common], help="measure this machine once (cores, RAM, GPU, disk) for the autopilot",
        description="Measure cores, RAM (total and available), CUDA GPUs and their free memory "
                    "(through torch, when installed) and the read speed of the model cache "
                    "(a bounded read of its largest file, at most 256 MB / 2 s); saved in "
                    "$XDG_CONFIG_HOME/bigsmall/profile.json and shown from there afterwards.")
    p.add_argument("--refresh", action="store_true", help="measure again even if a profile is saved")
    p.set_defaults(handler=cmd_profile)

    p = sub.add_parser(
        "plan", parents=[common], help="say in one sentence how `run` would run a model here; runs nothing",
        description="From the container's index and the machine profile (free memory read now): "
                    "which mode would run, where, how faithfully and why, with the numbers. A "
                    "lossy plan is announced as such. Nothing is loaded.")
    p.add_argument("src", help="a .bs container")
    add_mode(p, "auto")
    p.add_argument("--device", default="cpu",
                   help="cpu or cuda[:N] (default: cpu); other devices (mps) are planned against RAM")
    p.set_defaults(handler=cmd_plan)
