"""``compress --resume`` (bigsmall/io/resume.py): a compress killed with SIGKILL at random
points and resumed writes the file an uninterrupted run writes, byte for byte."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.io import atomic, resume
from bigsmall.testing.synthetic import write_safetensors


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two shards of 20 layers (some tensors tied: 'ref' entries) and a config file."""
    d = tmp_path_factory.mktemp("resume") / "model"
    d.mkdir()
    rng = np.random.default_rng(1)
    for s in range(2):
        t = {}
        for i in range(20):
            w = rng.normal(0, 0.02, (128, 256)).astype(np.float32)
            t[f"model.layers.{s * 20 + i}.w"] = ("F32", w.shape, w.tobytes())
            if i % 7 == 0:
                t[f"model.layers.{s * 20 + i}.tied"] = ("F32", w.shape, w.tobytes())
            b = (w.view(np.uint32) >> 16).astype(np.uint16)[:32]
            t[f"model.layers.{s * 20 + i}.b"] = ("BF16", b.shape, b.tobytes())
        write_safetensors(d / f"model-0000{s + 1}-of-00002.safetensors", t)
    (d / "config.json").write_text('{"layers": 40}')
    return d


@pytest.fixture(scope="module")
def reference(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("ref") / "ref.bs"
    bigsmall.compress(folder, out, level="fast")
    return out.read_bytes()


def _cmd(folder: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bigsmall", "compress", str(folder), "-o", str(out), "--level",
            "fast", "--no-progress", *extra]


def _journals(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*.tmp{atomic.JOURNAL_SUFFIX}"))


def _kill_after(cmd: list[str], out: Path, lines: int, extra_s: float) -> None:
    """Start ``cmd``; SIGKILL it once its journal has ``lines`` lines (then ``extra_s`` more
    seconds), or when it ends by itself."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while p.poll() is None and time.monotonic() < deadline:
            js = _journals(out)
            if js and len(js[-1].read_bytes().splitlines()) >= lines:
                time.sleep(extra_s)
                break
            time.sleep(0.003)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_killed_and_resumed_is_byte_identical(folder: Path, reference: bytes, tmp_path: Path,
                                              seed: int) -> None:
    rnd = random.Random(seed)
    out = tmp_path / "model.bs"
    kills = 2 if seed == 3 else 1  # once: killed twice before it finishes
    for _ in range(kills):
        _kill_after(_cmd(folder, out, "--resume"), out, rnd.randrange(1, 50), rnd.random() * 0.05)
    if not out.exists():  # killed before the end (the usual case): a journaled temporary is left
        assert _journals(out), os.listdir(tmp_path)
        p = subprocess.run(_cmd(folder, out, "--resume", "--json"), capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    assert out.read_bytes() == reference
    assert [n for n in os.listdir(tmp_path) if n != "model.bs"] == []  # temporary and journal gone


def test_resume_in_process_keeps_the_journaled_tensors(folder: Path, reference: bytes,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "m.bs"
    _kill_after(_cmd(folder, out, "--resume"), out, 30, 0.0)
    js = _journals(out)
    assert js and not out.exists()
    kept = len(js[0].read_bytes().splitlines()) - 1
    r = bigsmall.compress(folder, out, level="fast", resume=True)
    assert r.resumed_tensors >= min(kept, 29) > 0
    assert out.read_bytes() == reference


def test_a_plain_run_sweeps_the_resumable_temporary(folder: Path, reference: bytes,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "m.bs"
    _kill_after(_cmd(folder, out, "--resume"), out, 10, 0.0)
    assert _journals(out)
    bigsmall.compress(folder, out, level="fast")  # no --resume: starts afresh, sweeps
    assert out.read_bytes() == reference
    assert os.listdir(tmp_path) == ["m.bs"]


def test_other_options_do_not_adopt_the_journal(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.bs"
    _kill_after(_cmd(folder, out, "--resume"), out, 10, 0.0)
    assert _journals(out)
    r = bigsmall.compress(folder, out, level="default", coder="rans", resume=True)
    assert r.resumed_tensors == 0  # another run's journal: not reused, and removed
    want = tmp_path / "want.bs"
    bigsmall.compress(folder, want, level="default", coder="rans")
    assert out.read_bytes() == want.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["m.bs", "want.bs"]


def test_lost_bytes_are_coded_again(folder: Path, reference: bytes, tmp_path: Path) -> None:
    """A journaled blob whose bytes did not survive (a power cut) is caught by its xxh3-64:
    the replay stops there and the rest is coded again."""
    out = tmp_path / "m.bs"
    _kill_after(_cmd(folder, out, "--resume"), out, 25, 0.0)
    (tmp,) = [j.with_name(j.name[:-len(atomic.JOURNAL_SUFFIX)]) for j in _journals(out)]
    data = bytearray(tmp.read_bytes())
    assert len(data) > 1000
    data[500] ^= 0xFF
    tmp.write_bytes(bytes(data))
    fp_lines = resume.journal_path(tmp).read_text().splitlines()
    assert len(fp_lines) >= 3
    r = bigsmall.compress(folder, out, level="fast", resume=True)
    assert r.resumed_tensors < len(fp_lines) - 1
    assert out.read_bytes() == reference


def test_resume_with_ecc(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.bs"
    _kill_after(_cmd(folder, out, "--resume", "--ecc", "2"), out, 20, 0.0)
    bigsmall.compress(folder, out, level="fast", resume=True, ecc=2)
    want = tmp_path / "want.bs"
    bigsmall.compress(folder, want, level="fast", ecc=2)
    assert out.read_bytes() == want.read_bytes()
