"""``bigsmall profile``: what this machine has to run a model with, measured once and saved.

Measured in a few seconds: cores, RAM total and available (psutil), each CUDA GPU and its free
memory (through torch, only when torch is installed), and the read speed of the model cache: a
bounded read (at most ``PROBE_BYTES``) of the largest existing file there, its pages dropped from
the page cache first so the figure is the disk's, not memory's; a temporary file when the cache
holds no large file. Saved as JSON in ``$XDG_CONFIG_HOME/bigsmall/profile.json`` (default
``~/.config``): the disk probe is not worth repeating on every ``plan``. Free memory changes from
minute to minute, so ``plan`` and ``run`` read it again (:func:`refresh_free`), keeping the rest.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

from ..plan.autopilot import Gpu, Profile
from .atomic import atomic_file

PROBE_BYTES = 256 << 20  # read at most this much of a file
PROBE_SECONDS = 2.0  # ... and for at most this long
PROBE_MIN_FILE = 16 << 20  # a smaller file says more about the page cache than the disk
TEMP_PROBE_BYTES = 64 << 20
_WALK_LIMIT = 5000  # files looked at when searching the cache for a large one


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bigsmall" / "profile.json"


def model_cache_dir() -> Path:
    """Where models usually lie: the Hugging Face hub cache when there is one, else the user
    cache directory (bigsmall's corpus conversions live there)."""
    hf = os.environ.get("HF_HUB_CACHE") or (
        str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME") else "")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for cand in (Path(hf) if hf else None, cache / "huggingface" / "hub", cache):
        if cand is not None and cand.is_dir():
            return cand
    return Path(tempfile.gettempdir())


def _largest_file(root: Path) -> Path | None:
    best: tuple[int, Path] | None = None
    seen = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            seen += 1
            p = Path(dirpath) / f
            try:
                if p.is_symlink() or not p.is_file():
                    continue
                size = p.stat().st_size
            except OSError:
                continue
            if size >= PROBE_MIN_FILE and (best is None or size > best[0]):
                best = (size, p)
        if seen >= _WALK_LIMIT:
            break
    return best[1] if best else None


def _timed_read(path: Path, limit: int) -> tuple[int, float]:
    fd = os.open(path, os.O_RDONLY)
    try:
        if hasattr(os, "posix_fadvise"):  # drop its clean cached pages: read from the disk
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        got, t0 = 0, time.perf_counter()
        while got < limit and time.perf_counter() - t0 < PROBE_SECONDS:
            chunk = os.read(fd, min(8 << 20, limit - got))
            if not chunk:
                break
            got += len(chunk)
        return got, time.perf_counter() - t0
    finally:
        os.close(fd)


def disk_probe(root: Path | None = None) -> tuple[float | None, str]:
    """(bytes per second, what was read) of a bounded read in the model cache."""
    root = root or model_cache_dir()
    try:
        target = _largest_file(root)
        if target is not None:
            n, s = _timed_read(target, PROBE_BYTES)
            return (n / s if s > 0 and n else None), f"{n / 1e6:.0f} MB of {target}"
        fd, name = tempfile.mkstemp(prefix=".bigsmall-probe-", dir=root)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.urandom(TEMP_PROBE_BYTES))
                fh.flush()
                os.fsync(fh.fileno())  # written out, so its pages can be dropped
            n, s = _timed_read(Path(name), TEMP_PROBE_BYTES)
            return (n / s if s > 0 and n else None), f"{n / 1e6:.0f} MB temporary file in {root}"
        finally:
            os.unlink(name)
    except OSError as exc:
        return None, f"no probe ({exc.strerror or exc})"


def gpus() -> tuple[Gpu, ...]:
    """CUDA GPUs and their free memory, through torch; none when torch is not installed."""
    if importlib.util.find_spec("torch") is None:
        return ()
    import torch

    if not torch.cuda.is_available():
        return ()
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        out.append(Gpu(i, torch.cuda.get_device_name(i), int(total), int(free)))
    return tuple(out)


def measure(probe_root: Path | None = None) -> Profile:
    import psutil

    vm = psutil.virtual_memory()
    speed, what = disk_probe(probe_root)
    return Profile(
        cores=os.cpu_count() or 1, ram_total_bytes=int(vm.total), ram_available_bytes=int(vm.available),
        gpus=gpus(), disk_read_bytes_per_s=speed, disk_probe=what,
        measured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def save(p: Profile, path: Path | None = None) -> Path:
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, force=True) as (_tmp, fh):
        fh.write((json.dumps(p.to_json(), indent=1) + "\n").encode())  # type: ignore[attr-defined]
    return path


def cached(path: Path | None = None) -> Profile | None:
    """The saved profile, or None when there is none (or it cannot be read: measured anew)."""
    path = path or config_path()
    try:
        return Profile.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def load_or_measure(refresh: bool = False, path: Path | None = None) -> tuple[Profile, bool]:
    """(profile, True when it was measured now). Measures and saves when none is saved."""
    if not refresh:
        p = cached(path)
        if p is not None:
            return p, False
    p = measure()
    save(p, path)
    return p, True


def refresh_free(p: Profile, device: str = "cpu") -> Profile:
    """The saved profile with free RAM (and, for a GPU device, free GPU memory) read now."""
    import attrs
    import psutil

    p = attrs.evolve(p, ram_available_bytes=int(psutil.virtual_memory().available))
    if device != "cpu":
        live = gpus()
        if live:
            p = attrs.evolve(p, gpus=live)
    return p
