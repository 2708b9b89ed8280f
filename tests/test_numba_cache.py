"""The CLI's numba cache hook (``bigsmall.io.numba_cache``): a cached kernel loads through the
short path and gives the same result, and a cache miss is announced once (the first-use
compile notice), in fresh processes so the on-disk cache is really cold, then warm."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

KERNEL = textwrap.dedent("""
    from numba import njit

    @njit(cache=True)
    def f(x):
        return x * 3 + 1

    @njit(cache=True)
    def g(x):
        return f(x) - 2
""")

DRIVER = textwrap.dedent("""
    import sys
    from bigsmall.io import numba_cache

    numba_cache.install()
    numba_cache.on_first_compile(lambda: print("MISS"))
    sys.path.insert(0, sys.argv[1])
    import kmod

    print(kmod.f(4), kmod.g(5))
""")


def _run(tmp: Path) -> list[str]:
    r = subprocess.run([sys.executable, "-c", DRIVER, str(tmp)], capture_output=True, text=True,
                       timeout=300, check=True)
    return r.stdout.split()


def test_cold_cache_is_announced_once_then_loads_quietly(tmp_path: Path) -> None:
    (tmp_path / "kmod.py").write_text(KERNEL)
    assert _run(tmp_path) == ["MISS", "13", "14"]  # two kernels compiled, one notice
    assert list((tmp_path / "__pycache__").glob("kmod.f-*.nbi"))
    assert _run(tmp_path) == ["13", "14"]  # both from the cache: no notice, same results


def test_notice_text(capsys) -> None:
    from bigsmall import cli

    cli._compile_notice()
    err = capsys.readouterr().err
    assert err.startswith("bigsmall: compiling the kernels") and err.endswith("\n")


def test_cli_forgets_its_callback() -> None:
    """A command that compiled nothing must not leave its callback to fire in a later compile
    of the caller's process (tests call ``main`` in-process)."""
    from bigsmall.cli import main
    from bigsmall.io import numba_cache

    assert main(["info", "/nonexistent.bs"]) != 0
    assert numba_cache._on_miss == []
