"""Hostile input at the command line (issue 22).

Each test here failed before its fix: verify said "0/N tensors" of a corrupt file; ``--json``
errors printed nothing on stdout; ``-T 0`` or ``--sample 7`` were accepted; some error
messages did not say which file they were about. The library's side: test_hostile_io.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import bigsmall
from bigsmall.cli import main
from bigsmall.errors import InvalidOptionError
from bigsmall.io.reader import BsFile
from bigsmall.testing.containers import index_doc, with_doc

# ---------------------------------------------------------------- helpers

# ---------------------------------------------------------------- the command line

def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        rc = main([*argv])
    except SystemExit as exc:  # usage errors
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def _corrupt(bs: Path, names: list[str], out: Path) -> Path:
    data = bytearray(bs.read_bytes())
    with BsFile(bs) as f:
        for n in names:
            e = f.entry(n)
            data[e.offset + e.head_len + (e.length - e.head_len) // 2] ^= 0x55
    out.write_bytes(bytes(data))
    return out


def test_verify_says_what_it_checked(small_model: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    bs = tmp_path / "m.bs"
    bigsmall.compress(small_model, bs)
    bad = _corrupt(bs, ["model.layers.0.attn.weight", "model.layers.1.attn.weight"], tmp_path / "bad.bs")
    rc, out, err = cli(capsys, "verify", str(bad))
    assert rc == 3 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"{bad}: CORRUPT (full: checked 1 file / 10 of 10 tensors, 8 intact; 2 problems)"
    assert len(lines) == 3
    assert "'model.layers.0.attn.weight'" in lines[1] and "'model.layers.1.attn.weight'" in lines[2]
    rc, out, _ = cli(capsys, "verify", str(bad), "--json")
    doc = json.loads(out)
    assert rc == 3 and doc["tensors_checked"] == 8 and doc["tensors_failed"] == 2
    assert doc["tensors_total"] == 10 and doc["files_checked"] == 1 and len(doc["problems"]) == 2
    rc, out, _ = cli(capsys, "verify", str(bad), "--sample", "1")
    assert rc == 3 and "checked 10 of 10 tensors, 8 intact; 2 problems" in out
    rc, out, _ = cli(capsys, "verify", str(bs))
    assert rc == 0 and out == f"{bs}: OK (full: checked 1 file / 10 of 10 tensors)\n"


def test_verify_file_problem_is_kept(small_model: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Every tensor intact but the file's sha256 receipt wrong: that problem is reported."""
    bs = tmp_path / "m.bs"
    bigsmall.compress(small_model, bs)
    doc = index_doc(bs)
    doc["files"][0]["sha256"] = "0" * 64
    bad = with_doc(bs, doc, tmp_path / "bad.bs")
    rc, out, _ = cli(capsys, "verify", str(bad))
    assert rc == 3, out
    assert "10 of 10 tensors, 10 intact; 1 problem)" in out and "sha256" in out


@pytest.mark.parametrize("argv", [
    ["info", "{missing}"], ["stat", "{missing}"], ["verify", "{missing}"],
    ["decompress", "{missing}", "-o", "{out}"], ["compress", "{missing}", "-o", "{out}"],
    ["compress", "{junk}", "-o", "{out}"], ["decompress", "{junk}", "-o", "{out}"],
])
def test_json_errors_are_one_object(argv: list[str], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"junk" * 64)
    names = {"missing": str(tmp_path / "nope.bs"), "junk": str(junk), "out": str(tmp_path / "out")}
    rc, out, err = cli(capsys, *[a.format(**names) for a in argv], "--json")
    assert rc == 1
    assert out.count("\n") == 1
    doc = json.loads(out)
    assert set(doc) == {"error", "type"} and doc["type"].endswith("Error")
    assert doc["error"] and doc["error"] in err and err.count("\n") == 1


def test_json_usage_and_interrupt_errors(small_model: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rc, out, err = cli(capsys, "verify", "x.bs", "--sample", "2", "--json")
    assert rc == 2 and json.loads(out)["type"] == "UsageError" and "--sample" in out
    rc, out, err = cli(capsys, "verify", "x.bs", "--sample", "2")  # without --json: stderr only
    assert rc == 2 and out == "" and "--sample" in err
    import bigsmall.io.compress as cmod

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(cmod, "plan_tensor", boom)
    rc, out, err = cli(capsys, "compress", str(small_model), "-o", str(tmp_path / "o.bs"), "--json")
    assert rc == 130 and json.loads(out)["type"] == "KeyboardInterrupt"


BAD_OPTIONS = [
    ["compress", "x", "-T", "0"], ["compress", "x", "-T", "-2"], ["compress", "x", "-T", "1e3"],
    ["compress", "x", "--threads", "100000"],
    ["decompress", "x", "-T", "0"], ["decompress", "x", "--threads", "-1"],
    ["verify", "x", "--sample", "0"], ["verify", "x", "--sample", "-0.5"],
    ["verify", "x", "--sample", "1.01"], ["verify", "x", "--sample", "nan"],
    ["verify", "x", "--sample", "inf"], ["verify", "x", "--sample", "half"],
    ["benchmark", "x", "--repeat", "0"], ["benchmark", "x", "--repeat", "-3"],
    ["benchmark", "x", "-T", "0"], ["warmup", "-j", "0"], ["warmup", "--processes", "-4"],
    ["run", "x", "-T", "0"],
]


@pytest.mark.parametrize("argv", BAD_OPTIONS, ids=lambda a: "_".join(a))
def test_out_of_range_options_are_usage_errors(argv: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = cli(capsys, *argv)
    assert rc == 2 and out == "", (rc, out, err)
    assert "usage:" in err and argv[-2] in err


def test_in_range_options_still_parse() -> None:
    from bigsmall.cli import build_parser

    p = build_parser()
    assert p.parse_args(["compress", "x", "-T", "1"]).threads == 1
    assert p.parse_args(["verify", "x", "--sample", "1"]).sample == 1.0
    assert p.parse_args(["verify", "x", "--sample", "0.001"]).sample == 0.001
    assert p.parse_args(["benchmark", "x", "--repeat", "1"]).repeat == 1
    assert p.parse_args(["warmup", "-j", "2"]).processes == 2


def test_api_refuses_bad_threads(small_model: Path, tmp_path: Path) -> None:
    for threads in (0, -1):
        with pytest.raises(InvalidOptionError):
            bigsmall.compress(small_model, tmp_path / "m.bs", threads=threads)
    bigsmall.compress(small_model, tmp_path / "m.bs")
    with pytest.raises(InvalidOptionError):
        bigsmall.decompress(tmp_path / "m.bs", tmp_path / "r", threads=0)
    assert not (tmp_path / "r").exists()


COMMANDS = ["compress", "decompress", "verify", "info", "stat"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_error_names_the_file(command: str, small_model: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    bs = tmp_path / "m.bs"
    bigsmall.compress(small_model, bs)
    folder = tmp_path / "adir"
    folder.mkdir()
    (tmp_path / "cut.bs").write_bytes(bs.read_bytes()[:200])
    (tmp_path / "cut.safetensors").write_bytes(small_model.read_bytes()[:200])
    corrupt = _corrupt(bs, ["model.layers.0.attn.weight"], tmp_path / "corrupt.bs")
    fifo = tmp_path / "fifo.bs"
    os.mkfifo(fifo)
    cases = [tmp_path / "nope.bs", folder, tmp_path / "cut.bs", tmp_path / "cut.safetensors",
             corrupt, fifo]
    for path in cases:
        argv = [command, str(path)]
        if command in ("compress", "decompress"):
            argv += ["-o", str(tmp_path / "out")]
        rc, out, err = cli(capsys, *argv)
        if rc == 3:  # verify of the corrupt file: a report, which names it
            assert command == "verify" and str(path) in out
            continue
        if rc == 0:  # info and stat describe a container whose blob is bad: fine
            assert command in ("info", "stat") and path == corrupt
            continue
        assert rc == 1 and err.count("\n") == 1, (path, err)
        assert str(path) in err or path.name in err, (path, err)
        if path == fifo:
            assert "not a regular file" in err
    assert not (tmp_path / "out").exists()
