"""The one timing helper the benchmark scripts share (imported as ``from timing import ...``:
a script's own folder is on ``sys.path`` when it runs)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], repeat: int, warm: bool = False) -> float:
    """Median wall time of ``repeat`` calls of ``fn``; ``warm``: one untimed call first (kernels
    loaded, page cache filled)."""
    if warm:
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
