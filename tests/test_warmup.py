"""``bigsmall warmup``: compiles the common commands' kernels ahead of use, in parallel.

The end-to-end check is the one that matters: with numba's cache empty, ``warmup`` on two
processes, then the common commands on every dtype compile nothing (they load every kernel
from the cache). It also catches a stale ``kernels.json`` (rerun
``scripts/record_kernels.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bigsmall.cli import main
from bigsmall.errors import InvalidOptionError, WarmupError
from bigsmall.io import warmup

ROOT = Path(__file__).resolve().parent.parent

COUNT_COMPILES = r"""
import json, sys
from pathlib import Path
from numba.core import event as ev
seen = []

class Listener(ev.Listener):
    def on_start(self, e):
        f = e.data["dispatcher"].py_func
        if f.__module__.startswith("bigsmall."):
            seen.append(f"{f.__module__}.{f.__qualname__}")

    def on_end(self, e):
        pass

ev.register("numba:compile", Listener())
from bigsmall.testing import kernel_workload
kernel_workload.run(Path(sys.argv[1]))
print(json.dumps(seen))
"""


def test_manifest_entries_resolve_to_cached_kernels() -> None:
    kernels = warmup.load_manifest()
    assert len(kernels) >= 20
    for k in kernels:
        d = warmup.dispatcher(k)
        assert hasattr(d, "compile") and d.py_func.__name__ == k.name, k.label
        assert type(d._cache).__name__ == "FunctionCache", f"{k.label} is not cache=True"
        for s in k.sig:
            assert str(warmup.parse_type(s)) == s


@pytest.mark.parametrize("text", ["array(uint8, 1d, C)", "readonly array(uint16, 1d, A)",
                                  "unaligned readonly array(uint64, 2d, C)", "int64", "bool",
                                  "float64"])
def test_parse_type_round_trips(text: str) -> None:
    assert str(warmup.parse_type(text)) == text


@pytest.mark.parametrize("text", ["array(nope, 1d, C)", "Tuple(int64, int64)", "Array", ""])
def test_parse_type_refuses_what_it_cannot_build(text: str) -> None:
    with pytest.raises(ValueError):
        warmup.parse_type(text)


def test_a_kernel_that_does_not_compile_is_an_error(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    bad = warmup.Kernel("bigsmall.codecs.prefix", "canonical_codes", ("float64",))
    with pytest.raises(WarmupError, match="canonical_codes"):
        warmup.warmup(2, [bad])


def test_processes_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidOptionError):
        warmup.warmup(0, [])
    # on the command line, -j 0 is a usage error (exit 2), reported as JSON with --json
    with pytest.raises(SystemExit) as info:
        main(["warmup", "-j", "0", "--json"])
    assert info.value.code == 2
    cap = capsys.readouterr()
    err = json.loads(cap.out)
    assert err["type"] == "UsageError" and "-j/--processes" in err["error"]


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["warmup", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: bigsmall warmup")
    for flag in ("--json", "--debug", "--no-progress", "--processes"):
        assert flag in out


def test_after_warmup_the_common_commands_compile_nothing(tmp_path: Path) -> None:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-P", "-m", "bigsmall", "warmup", "-j", "2", "--json"],
                       env=env, capture_output=True, text=True, cwd=tmp_path, timeout=1200)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["kernels"] == len(warmup.needed(warmup.load_manifest()))
    assert rep["processes"] == max(1, min(2, rep["kernels"]))  # no more workers than kernels
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([sys.executable, "-P", "-c", COUNT_COMPILES, str(work)], env=env,
                       capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1]) == []  # every kernel came from the cache
    # and a cold cache does compile: the listener would have seen it
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "cold")
    r = subprocess.run([sys.executable, "-P", "-c", COUNT_COMPILES.replace(
        "kernel_workload.run(Path(sys.argv[1]))",
        "from bigsmall.codecs import prefix; import numpy as np; "
        "prefix.canonical_codes(np.zeros(4, np.int64))"), str(work)],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert json.loads(r.stdout.splitlines()[-1]) == ["bigsmall.codecs.prefix.canonical_codes"]


NEEDED = r"""
import json
from bigsmall.io import warmup
print(json.dumps([k.label for k in warmup.needed(warmup.load_manifest())]))
"""


def test_warmup_compiles_only_what_the_path_uses() -> None:
    """With the C kernels (the default where built), ``needed`` keeps the kernels the recording
    saw compiled on that path too, a strict subset (the clustering search, counting and table
    kernels have C ports); with ``BIGSMALL_NATIVE=0`` every kernel of the manifest."""
    from bigsmall import native

    every = [k.label for k in warmup.load_manifest()]
    runs = {}
    for mode in ("0", "1"):
        env = dict(os.environ, BIGSMALL_NATIVE=mode, PYTHONPATH=str(ROOT))
        r = subprocess.run([sys.executable, "-P", "-c", NEEDED], env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        runs[mode] = json.loads(r.stdout)
    assert runs["0"] == every
    if native.built() is None or native.enc_kernels() is None:
        pytest.skip("C kernels not in use (not built, or BIGSMALL_NATIVE=0): one list")
    assert set(runs["1"]) < set(every)
    assert not any(".lloyd." in k or ".numpy_exact." in k or ".counting." in k
                   for k in runs["1"])


def test_a_worker_that_dies_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker process that is gone (here: one that exits at once) fails the warm-up with a
    message; it must not pass as a warm-up that compiled nothing."""
    real = subprocess.Popen

    def exiting(argv: list[str], **kw: object) -> subprocess.Popen[str]:
        return real([sys.executable, "-c", "pass"], **kw)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(warmup.subprocess, "Popen", exiting)
    k = warmup.Kernel("bigsmall.codecs.prefix", "canonical_codes", ("array(int64, 1d, C)",))
    with pytest.raises(WarmupError, match="worker process died"):
        warmup.warmup(2, [k, k, k])
