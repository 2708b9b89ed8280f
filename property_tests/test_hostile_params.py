"""Hostile codec parameters never drive a kernel out of bounds (issue 22).

Runs ``property_tests/hostile_params.py`` in a fresh interpreter with numba's bounds checking on
and the generated kernels rebuilt with checked loads (see that module): a parameter set a
stranger's index could hold either gets a typed error from ``prepare``/``plan_decode`` or
decodes with every array access in bounds. A separate process, because the checks must be
compiled in from the start and must not share the production kernel cache, and because a
regression here could otherwise take the test process down with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_hostile_parameters_stay_in_bounds(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    proc = subprocess.run(
        [sys.executable, "-m", "property_tests.hostile_params", "2000", "22"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["cases"] == 2000 and counts["findings"] == 0
    # the sweep must reach both outcomes, or it tests nothing
    assert counts["typed"] > 100 and counts["decoded"] > 20, counts
