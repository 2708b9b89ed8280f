"""The command line: --help everywhere, one-line errors with exit codes, --json, --debug."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import attrs
import pytest

import bigsmall
import bigsmall.io.compress as compress_mod
from bigsmall.cli import main
from bigsmall.errors import BigsmallIOError, FormatError, IntegrityError, OutputExistsError
from bigsmall.io.reader import BsFile

COMMANDS = ["compress", "decompress", "verify", "info", "stat"]
OLD = b"old output\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main([*argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, command: str, *needles: str) -> None:
    assert rc not in (0, None), rc
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"bigsmall {command}: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


def no_temp_files(folder: Path) -> None:
    names = os.listdir(folder)
    assert not [n for n in names if ".tmp" in n], names


@pytest.fixture
def bs(small_model: Path) -> Path:
    out = small_model.with_suffix(".bs")
    bigsmall.compress(small_model, out)
    return out


def corrupt_blob(bs: Path, tensor: str = "embed.weight") -> Path:
    with BsFile(bs) as f:
        e = f.entry(tensor)
    data = bytearray(bs.read_bytes())
    data[e.offset + e.head_len + (e.length - e.head_len) // 2] ^= 0x55
    bad = bs.with_name("corrupt.bs")
    bad.write_bytes(bytes(data))
    return bad


# ---------------------------------------------------------------- --help, usage

@pytest.mark.parametrize("command", COMMANDS)
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: bigsmall {command}")
    for flag in ("--json", "--debug", "--no-progress"):
        assert flag in out


def test_top_level_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"bigsmall {bigsmall.__version__}"


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["info"], ["compress", "--threads", "x", "a"]])
def test_usage_error_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------- one-line errors

@pytest.mark.parametrize("command", COMMANDS)
def test_missing_file(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / ("nope.safetensors" if command == "compress" else "nope.bs")
    argv = [command, str(missing)]
    if command in ("compress", "decompress"):
        argv += ["-o", str(tmp_path / "out")]
    rc, out, err = run(capsys, *argv)
    assert rc == 1
    assert out == ""
    assert_one_line_error(rc, err, command, missing.name)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_not_a_container(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("these are my notes, not a model or a container\n" * 10)
    argv = [command, str(junk)]
    if command in ("compress", "decompress"):
        argv += ["-o", str(tmp_path / "out")]
    rc, out, err = run(capsys, *argv)
    assert rc == 1
    assert out == ""
    needle = "notes.txt" if command == "compress" else "not a bigsmall container"
    assert_one_line_error(rc, err, command, needle)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_compress_output_exists(small_model: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "model.bs"
    dst.write_bytes(OLD)
    rc, out, err = run(capsys, "compress", str(small_model))
    assert_one_line_error(rc, err, "compress", "model.bs", "--force")
    assert rc == 1 and out == ""
    assert dst.read_bytes() == OLD
    no_temp_files(tmp_path)
    rc, out, err = run(capsys, "compress", str(small_model), "--force")
    assert rc == 0 and err == ""
    assert "model.bs" in out
    with BsFile(dst) as f:
        assert f.verify().ok


def test_decompress_output_exists(bs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "restored.safetensors"
    dst.write_bytes(OLD)
    rc, out, err = run(capsys, "decompress", str(bs), "-o", str(dst))
    assert_one_line_error(rc, err, "decompress", "restored.safetensors", "--force")
    assert dst.read_bytes() == OLD
    no_temp_files(tmp_path)
    rc, out, err = run(capsys, "decompress", str(bs), "-o", str(dst), "-f")
    assert rc == 0 and err == ""
    assert dst.read_bytes() == (tmp_path / "model.safetensors").read_bytes()


def test_invalid_safetensors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "model.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    src.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    rc, out, err = run(capsys, "compress", str(src))
    assert_one_line_error(rc, err, "compress", "'w'")
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]


@pytest.mark.parametrize("command", ["info", "stat", "verify", "decompress"])
def test_truncated_container(command: str, bs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = bs.with_name("cut.bs")
    cut.write_bytes(bs.read_bytes()[:100])
    argv = [command, str(cut)] + (["-o", str(bs.with_name("out"))] if command == "decompress" else [])
    rc, out, err = run(capsys, *argv)
    assert rc == 1 and out == ""
    assert_one_line_error(rc, err, command, "truncated")
    assert not bs.with_name("out").exists()
    no_temp_files(bs.parent)


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(BigsmallIOError):
        main(["info", str(tmp_path / "nope.bs"), "--debug"])
    junk = tmp_path / "junk.bs"
    junk.write_bytes(b"junk" * 50)
    with pytest.raises(FormatError):
        main(["verify", str(junk), "--debug"])
    dst = tmp_path / "x.bs"
    dst.write_bytes(OLD)
    with pytest.raises(OutputExistsError):
        main(["compress", str(src_ok(tmp_path)), "-o", str(dst), "--debug"])
    with pytest.raises(BigsmallIOError):  # a missing input is said before an existing output
        main(["compress", str(tmp_path / "nope.safetensors"), "-o", str(dst), "--debug"])
    assert dst.read_bytes() == OLD


def src_ok(folder: Path) -> Path:
    from bigsmall.testing.synthetic import write_safetensors

    return write_safetensors(folder / "ok.safetensors", {"w": ("F32", (2,), b"\0" * 8)})


def test_interrupt_exit_130(small_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(compress_mod, "plan_tensor", boom)
    rc, out, err = run(capsys, "compress", str(small_model))
    assert rc == 130 and out == ""
    assert err.count("\n") == 1 and "interrupted" in err
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]


# ---------------------------------------------------------------- verify exit codes

def test_verify_corrupt_blob_exit_3(bs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = corrupt_blob(bs)
    rc, out, err = run(capsys, "verify", str(bad))
    assert rc == 3
    assert "CORRUPT" in out.splitlines()[0]
    assert "'embed.weight'" in out
    assert err == ""
    rc, out, err = run(capsys, "verify", str(bad), "--sample", "1.0")
    assert rc == 3 and "CORRUPT" in out
    rc, out, err = run(capsys, "verify", str(bad), "--json")
    assert rc == 3
    doc = json.loads(out)
    assert doc["ok"] is False and any("embed.weight" in p for p in doc["problems"])
    rc, out, err = run(capsys, "verify", str(bs))
    assert rc == 0 and "OK" in out


def test_verify_corrupt_header_is_an_error(bs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = bytearray(bs.read_bytes())
    data[20] ^= 1
    bad = bs.with_name("bad.bs")
    bad.write_bytes(bytes(data))
    rc, out, err = run(capsys, "verify", str(bad))
    assert_one_line_error(rc, err, "verify", "checksum")
    with pytest.raises(IntegrityError):
        main(["verify", str(bad), "--debug"])


def test_verify_unknown_codec_is_an_error_not_corrupt(bs: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A codec from a newer bigsmall: exit 1 (cannot check), not 3 (corrupt)."""
    from bigsmall.container import format as fmt

    data = bs.read_bytes()
    hdr = fmt.parse_header(data[: fmt.HEADER_SIZE], len(data))
    ioff, ilen = int(hdr["index_offset"]), int(hdr["index_length"])
    c = fmt.decode_index(data[ioff : ioff + ilen], hdr)
    c = attrs.evolve(c, tensors=tuple(attrs.evolve(t, codec="zz-future") if t.name == "fp8" else t
                                      for t in c.tensors))
    index = fmt.encode_index(c)
    body = data[fmt.HEADER_SIZE:ioff] + index
    bad = bs.with_name("future.bs")
    bad.write_bytes(fmt.pack_header(ioff, len(index), fmt.HEADER_SIZE + len(body),
                                    fmt.index_digest(index)) + body)
    for mode in ([], ["--fast"], ["--sample", "1"]):
        rc, out, err = run(capsys, "verify", str(bad), *mode)
        assert rc == 1 and out == ""
        assert_one_line_error(rc, err, "verify", "'zz-future'", "'fp8'", "newer bigsmall")
    rc, out, err = run(capsys, "info", str(bad), "--json")  # info still describes it
    assert rc == 0 and json.loads(out)["codecs"]["zz-future"] == 1


@pytest.mark.parametrize("check", ["sha256", "receipts"])
def test_decompress_corrupt_blob(bs: Path, capsys: pytest.CaptureFixture[str], check: str) -> None:
    bad = corrupt_blob(bs, "model.layers.1.attn.weight")
    dst = bs.with_name("restored.safetensors")
    rc, out, err = run(capsys, "decompress", str(bad), "-o", str(dst), "--check", check)
    assert_one_line_error(rc, err, "decompress", "'model.layers.1.attn.weight'")
    assert not dst.exists()
    no_temp_files(bs.parent)


# ---------------------------------------------------------------- --json

def test_json_outputs(small_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "m.bs"
    rc, out, err = run(capsys, "compress", str(small_model), "-o", str(dst), "--json")
    assert rc == 0 and err == ""
    assert out.count("\n") == 1
    doc = json.loads(out)
    assert doc["dst"] == str(dst) and doc["tensors"] == 10
    assert doc["compressed_bytes"] == dst.stat().st_size

    restored = tmp_path / "r.safetensors"
    rc, out, err = run(capsys, "decompress", str(dst), "-o", str(restored), "--json")
    assert rc == 0 and err == ""
    doc = json.loads(out)
    assert doc["bytes_written"] == small_model.stat().st_size
    assert restored.read_bytes() == small_model.read_bytes()

    for mode in ([], ["--fast"], ["--sample", "0.5"], ["--full"]):
        rc, out, err = run(capsys, "verify", str(dst), "--json", *mode)
        assert rc == 0 and err == ""
        doc = json.loads(out)
        assert doc["ok"] is True and doc["problems"] == []

    rc, out, err = run(capsys, "info", str(dst), "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["tensors"] == 10 and doc["files"][0]["path"] == "model.safetensors"
    assert doc["compressed_bytes"] == dst.stat().st_size

    rc, out, err = run(capsys, "stat", str(dst), "--json", "--sort", "name")
    assert rc == 0
    doc = json.loads(out)
    names = [r["name"] for r in doc["tensors"]]
    assert names == sorted(names) and len(names) == 10

    rc, out, err = run(capsys, "stat", str(dst), "--json", "--tensor", "layers.1")
    assert {r["name"] for r in json.loads(out)["tensors"]} == {
        "model.layers.1.attn.weight", "model.layers.1.mask", "model.layers.1.idx"}


def test_json_error_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The one-line message on stderr, and one JSON object on stdout (a script reading
    stdout always gets one)."""
    rc, out, err = run(capsys, "info", str(tmp_path / "nope.bs"), "--json")
    assert json.loads(out) == {"error": err.split(": error: ", 1)[1].rstrip("\n"),
                               "type": "BigsmallIOError"}
    assert_one_line_error(rc, err, "info", "nope.bs")


def test_text_outputs(bs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("info", "stat"):
        rc, out, err = run(capsys, command, str(bs))
        assert rc == 0 and err == "" and out.strip()


def test_rate_text_keeps_small_speeds_visible() -> None:
    """A slow first run (kernels compiling) printed "0 MB/s"; below 10 MB/s one decimal shows."""
    from bigsmall.cli.core_commands import _rate

    assert _rate(45_400_000, 114.9) == "0.4 MB/s"
    assert _rate(45_400_000, 0.25) == "182 MB/s"
    assert _rate(0, 0.0) == "0.0 MB/s"


def test_codec_commands_leave_no_cyclic_garbage(tmp_path) -> None:
    """The CLI runs compress/decompress/verify with the cyclic collector off (``cli.
    NO_GC_COMMANDS``): that is only safe while their steady state frees everything by
    reference counting. Second runs (kernels already loaded) must leave zero unreachable
    cycles behind; a change that creates cycles per tensor fails here. (Through the API:
    the CLI's ``gc.freeze`` at exit would hide garbage from ``gc.collect``.)"""
    import gc

    import numpy as np

    import bigsmall
    from bigsmall.cli import NO_GC_COMMANDS
    from bigsmall.io.reader import BsFile
    from bigsmall.testing.synthetic import write_safetensors

    assert {"compress", "decompress", "verify"} <= NO_GC_COMMANDS
    rng = np.random.default_rng(0)
    x = (rng.standard_t(5, (256, 300)) * 0.02).astype(np.float32)
    src = write_safetensors(tmp_path / "m.safetensors", {
        "a.weight": ("BF16", (256, 300), (x.view(np.uint32) >> 16).astype(np.uint16).tobytes()),
        "b.weight": ("F32", (256, 300), x.tobytes()),
        "c.bias": ("F32", (300,), x[0].tobytes())})
    bs, out = tmp_path / "m.bs", tmp_path / "r.safetensors"

    def once() -> None:
        bigsmall.compress(src, bs, force=True)
        bigsmall.decompress(bs, out, force=True)
        with BsFile(bs) as f:
            assert f.verify("full").ok

    once()  # first: kernels load (numba's own objects)
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        once()
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()


def test_cli_restores_the_collector(tmp_path) -> None:
    import gc

    from bigsmall.cli import _on_first_compile, main

    assert gc.isenabled()
    assert main(["info", str(tmp_path / "missing.bs")]) != 0
    assert gc.isenabled()  # off during the command, back on after (even on an error)
    gc.disable()
    try:
        _on_first_compile(False)  # a compile turns it back on
        assert gc.isenabled()
    finally:
        gc.enable()
