"""Resident-memory readings of this process, for promises checked against measurements.

Linux gives the current (``VmRSS``) and peak (``VmHWM``) resident set in ``/proc/self/status``,
and lets a process reset its peak to the current value (writing ``5`` to
``/proc/self/clear_refs``), so a command can measure the peak of one phase, not of its imports.
Elsewhere the peak comes from ``getrusage`` and cannot be reset (``peak_resettable()`` says so).
"""

from __future__ import annotations

import resource
import sys


def _status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _ru_maxrss() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def current_rss() -> int:
    """Resident bytes now (the peak so far where the current value cannot be read)."""
    v = _status("VmRSS")
    return v if v is not None else _ru_maxrss()


def peak_rss() -> int:
    """Most resident bytes since the process started, or since the last ``reset_peak()``."""
    v = _status("VmHWM")
    return v if v is not None else _ru_maxrss()


def reset_peak() -> bool:
    """Make the peak the current value; False where the OS does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False



_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter number (malloc.h)


def steady_heap(threshold: int = 128 * 1024) -> bool:
    """Fix glibc's mmap threshold so freed large blocks go straight back to the OS.

    glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MB), after
    which blocks of that size come from the heap and stay resident once freed. A streamed run
    frees a layer's compressed blobs and the forward's activations every layer, so with the
    dynamic threshold its RSS creeps up pass after pass (measured on MiniLM fp32: the peak 50 MB
    higher after two passes). A fixed threshold (which also turns the dynamic one off) keeps the
    process flat. Process-wide, so only our own entry points (``bigsmall run``, the benchmarks)
    call it; library users may. False where the C library has no ``mallopt`` (not glibc).
    """
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))
