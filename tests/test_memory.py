"""The resident-memory helpers that `bigsmall run` and the benchmarks rely on."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from bigsmall.io import memory

# Free a 20 MB block (glibc then raises its mmap threshold to 20 MB), allocate 60 x 1 MB with a
# small live object after each, free the big ones: what stays resident is printed in MB.
_CHURN = r"""
import sys
from bigsmall.io import memory
if sys.argv[1] == "steady":
    assert memory.steady_heap()
big = b"x" * (20 << 20); del big
base = memory.current_rss()
blocks, keep = [], []
for i in range(60):
    blocks.append(b"y" * (1 << 20)); keep.append(b"z" * 100 + bytes([i]))
del blocks
print((memory.current_rss() - base) / 1e6)
"""


def _retained(mode: str) -> float:
    r = subprocess.run([sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, check=True)
    return float(r.stdout.strip())


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="steady_heap is a glibc setting")
def test_steady_heap_returns_freed_blocks_to_the_os() -> None:
    # the control shows the test can fail: glibc's default keeps the freed 1 MB blocks
    assert _retained("dynamic") > 10
    assert _retained("steady") < 5


def test_peak_reset_and_readings() -> None:
    assert memory.current_rss() > 0
    if memory.reset_peak():
        before = memory.peak_rss()
        block = b"p" * (64 << 20)  # above glibc's largest mmap threshold: always fresh pages
        assert memory.peak_rss() >= before + (60 << 20)
        del block
