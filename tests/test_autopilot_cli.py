"""``bigsmall profile``, ``plan`` and ``run --mode`` on the corpus models; the fast mode's INT4."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from bigsmall.cli import main
from bigsmall.errors import UnannouncedDowngradeError
from bigsmall.io import profile
from bigsmall.plan import autopilot as ap

MB = 1_000_000


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    return tmp_path / "cfg"


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_profile_is_measured_once_then_read(config_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    t0 = time.perf_counter()
    code, first = _json(capsys, "profile")
    assert code == 0 and time.perf_counter() - t0 < 10
    path = config_home / "bigsmall" / "profile.json"
    assert first["measured_now"] and first["path"] == str(path) and path.is_file()
    assert first["cores"] >= 1 and 0 < first["ram_available_bytes"] <= first["ram_total_bytes"]
    assert isinstance(first["gpus"], list)
    assert first["disk_read_bytes_per_s"] is None or first["disk_read_bytes_per_s"] > 0
    code, second = _json(capsys, "profile")
    assert not second["measured_now"] and second["measured_at"] == first["measured_at"]
    assert second["ram_available_bytes"] == first["ram_available_bytes"]  # the saved figures
    assert main(["profile"]) == 0
    text = capsys.readouterr().out
    assert "cores:" in text and "RAM:" in text and "saved profile" in text
    code, third = _json(capsys, "profile", "--refresh")
    assert third["measured_now"]


def test_a_damaged_profile_is_measured_again(config_home: Path) -> None:
    path = config_home / "bigsmall" / "profile.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    p, measured = profile.load_or_measure()
    assert measured and profile.cached() == p


def test_disk_probe_is_bounded(tmp_path: Path) -> None:
    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(20 << 20))
    speed, what = profile.disk_probe(tmp_path)
    assert speed and speed > 0 and "21 MB of" in what and str(big) in what
    speed, what = profile.disk_probe(tmp_path / "nothing-here")
    assert speed is None and what.startswith("no probe")
    empty = tmp_path / "empty"
    empty.mkdir()
    speed, what = profile.disk_probe(empty)  # no large file: a temporary one, removed after
    assert speed and "temporary file" in what and list(empty.iterdir()) == []


def _free(monkeypatch: pytest.MonkeyPatch, ram: int) -> None:
    """Pretend this much RAM is free right now."""
    monkeypatch.setattr(profile, "refresh_free",
                        lambda p, device="cpu": attrs.evolve(p, ram_available_bytes=ram))


def test_plan_on_minilm(minilm_folder_bs: Path, config_home: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    src = str(minilm_folder_bs)
    _free(monkeypatch, 16_000 * MB)
    code, p = _json(capsys, "plan", src)
    assert code == 0 and p["mode"] == "perfect" and p["fidelity"] == "exact" and not p["lossy"]
    perfect, stream = p["costs"]["perfect"], p["costs"]["stream"]
    assert perfect["host_bytes"] == 90_856_960 + ap.HOST_RUNTIME_BYTES  # the index's bytes
    assert stream["host_bytes"] == 48_269_824 + 2 * 7_097_856 + ap.HOST_RUNTIME_BYTES
    assert p["announcement"] is None and not (config_home / "bigsmall" / "profile.json").exists()
    # less free memory: a full load does not fit, streaming does (exact: no announcement)
    _free(monkeypatch, perfect["host_bytes"] - 1)
    for mode in ("auto", "perfect"):
        code, p = _json(capsys, "plan", src, "--mode", mode)
        assert p["mode"] == "stream" and not p["lossy"] and p["announcement"] is None
        assert "a full load needs 810.9 MB, more than the 810.9 MB RAM free" in p["sentence"]
    # nothing fits: a clear error, never the lossy mode for a 'perfect' request
    _free(monkeypatch, 100 * MB)
    assert main(["plan", src, "--mode", "perfect"]) == 1
    err = capsys.readouterr().err
    assert "nothing fits on cpu with 100.0 MB RAM free" in err and "never chosen for you" in err
    # fast: announced as lossy, first line
    _free(monkeypatch, 16_000 * MB)
    assert main(["plan", src, "--mode", "fast"]) == 0
    first, sentence = capsys.readouterr().out.splitlines()
    assert first.startswith("fast mode: lossy INT4") and "fast: LOSSY INT4" in sentence
    assert main(["plan", src, "--device", "cuda"]) == 1
    assert "no such GPU" in capsys.readouterr().err


def test_runner_refuses_an_unannounced_lossy_plan_before_reading(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from bigsmall.torch.fast import int4_model
    from bigsmall.torch.runner import run

    s = ap.FileSummary("x.bs", "bs", 2, 4 << 20, 0, 2 << 20, 2, 2 << 20, 1 << 20, "on-the-fly")
    lossy = ap.plan(s, ap.Profile(2, 1 << 34, 1 << 34), "fast")
    missing = tmp_path / "does-not-exist.bs"
    for call in (lambda r: run(missing, fast_plan=lossy, receipt=r),
                 lambda r: int4_model(missing, lossy, r)):
        with pytest.raises(UnannouncedDowngradeError, match="not emitted"):
            call(None)  # refused before the (missing) file is even opened
        with pytest.raises(OSError, match="no such file"):  # announced: it gets to opening the file
            call(ap.announce(lossy, lambda _line: None))


def test_int4_code() -> None:
    torch = pytest.importorskip("torch")
    from bigsmall.torch.fast import dequantize, quantize, squared_error

    g = torch.Generator().manual_seed(0)
    for shape in [(3, 5), (7, 128), (5, 300), (130, 257)]:
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            w = (torch.randn(*shape, generator=g) * 0.05).to(dtype)
            c = quantize(w)
            assert c is not None and c.nbytes == ap.int4_bytes(shape)
            d = dequantize(c)
            assert d.dtype == dtype and d.shape == w.shape
            groups = -(-shape[1] // ap.GROUP)
            step = c.scale.float().repeat_interleave(ap.GROUP, dim=1)[:, :shape[1]]
            err = (d.float() - w.float()).abs()
            assert bool((err <= step / 2 + step * 0.01 + 1e-3).all()), (shape, dtype, groups)
            assert not torch.equal(d, w) or shape == (3, 5)  # lossy, and says so
    for bad in (float("nan"), float("inf")):
        w = torch.randn(4, 256)
        w[1, 3] = bad
        assert quantize(w) is None  # stays exact
    z = torch.zeros(4, 256, dtype=torch.bfloat16)
    assert torch.equal(dequantize(quantize(z)), z)
    w = torch.randn(64, 256, generator=g)
    err, ref = squared_error(w, quantize(w))
    assert abs(ref - float((w.double() ** 2).sum())) < 1e-6 * ref
    assert 0.001 < (err / ref) ** 0.5 < 0.2  # 16 levels over ~5 sigma: ~7 % RMS for Gaussian weights


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigsmall", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})


def test_run_mode_stream_is_run_stream_and_fast_is_announced(minilm_bf16_folder_bs: Path,
                                                           tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    src = str(minilm_bf16_folder_bs)
    a = _cli("run", src, "--stream", "--json", "--prompt", "one sentence", env=env)
    b = _cli("run", src, "--mode", "stream", "--json", "--prompt", "one sentence", env=env)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    assert ja["mode"] == jb["mode"] == "stream" and jb["plan"]["requested"] == "stream"
    assert ja["output"]["sha256"] == jb["output"]["sha256"]
    fast = _cli("run", src, "--mode", "fast", "--json", "--prompt", "one sentence", env=env)
    assert fast.returncode == 0, fast.stderr
    jf = json.loads(fast.stdout)
    assert jf["mode"] == "fast" and jf["plan"]["lossy"] and "lossy INT4" in jf["plan"]["announcement"]
    assert fast.stderr.splitlines()[0] == jf["plan"]["announcement"]  # said first, on the terminal
    assert jf["output"]["sha256"] != ja["output"]["sha256"]  # not the exact model's bits
    assert 0 < jf["fast"]["int4_bytes"] < jf["weight_bytes"] / 3
    assert 0.01 < jf["fast"]["weight_error"] < 0.3  # stated: how far the weights are from the file's
    for j in (jb, jf):  # the capacity math held: the measured process peak within the plan's bytes
        assert j["peak_rss"] <= j["plan"]["costs"][j["plan"]["mode"]]["host_bytes"], j["plan"]
    # --mode is its own option now (it was taken as an abbreviation of --model-class)
    bad = _cli("run", src, "--stream", "--mode", "fast", env=env)
    assert bad.returncode == 1 and "--stream is --mode stream" in bad.stderr
