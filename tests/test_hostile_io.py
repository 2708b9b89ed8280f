"""Hostile input to the library (issue 22): crafted names, killed runs, odd files.

Each test here failed before its fix: a crafted stored name replaced the folder holding the
``.bs``; killed runs left temporaries no later run removed; outputs were 0600 whatever the
input's mode; a ``.bs`` or random bytes given to compress got a header-length number; a lone
surrogate raised UnicodeEncodeError; an existing output was reported before a bad input; a
FIFO blocked forever or was "no such file". The command line's side: test_hostile_cli.py.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import bigsmall
from bigsmall.errors import (
    BigsmallError,
    BigsmallIOError,
    FormatError,
    IntegrityError,
    InvalidOptionError,
    InvalidSafetensorsError,
    OutputExistsError,
)
from bigsmall.io import atomic
from bigsmall.io.decompress import default_output
from bigsmall.io.reader import BsFile
from bigsmall.testing.containers import index_doc, with_doc

OLD = b"old output: must survive\n"


# ---------------------------------------------------------------- helpers

def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def temps(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp") or ".old-" in n)


@pytest.fixture
def repo(small_model: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    small_model.rename(folder / "model.safetensors")
    (folder / "config.json").write_text('{"hidden": 96}\n')
    (folder / "tok").mkdir()
    (folder / "tok" / "vocab.txt").write_text("a\nb\n")
    return folder


def fake_bs(root: str, name: Any, path: Any = "model.safetensors") -> Any:
    return SimpleNamespace(container=SimpleNamespace(meta={"root": root, "name": name},
                                                     files=[SimpleNamespace(path=path)]))


# ---------------------------------------------------------------- 1. crafted names, --force

@pytest.mark.parametrize("name", [".", "..", "", "/", "a/..", "sub/x.safetensors", "/etc/passwd",
                                  "x\0y", "model.bs", None, 7])
def test_default_output_is_a_plain_new_name(name: Any, tmp_path: Path) -> None:
    src = tmp_path / "model.bs"
    out = default_output(src, fake_bs("file", name, name))  # type: ignore[arg-type]
    assert out.parent == tmp_path and out.name not in ("", ".", "..") and out != src
    assert out.name == "model.safetensors"
    assert default_output(tmp_path / "x.bs", fake_bs("file", "w.safetensors")).name == "w.safetensors"  # type: ignore[arg-type]
    for bs_name, want in [("repo.bs", "repo"), (".bs", ".bs.out"), ("repo", "repo.out"), ("...bs", "...bs.out")]:
        got = default_output(tmp_path / bs_name, fake_bs("folder", name))  # type: ignore[arg-type]
        assert got == tmp_path / want, (bs_name, got)


@pytest.mark.parametrize("field", ["name", "path"])
def test_crafted_dot_name_never_replaces_the_folder(field: str, small_model: Path,
                                                    tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    bs = home / "model.bs"
    bigsmall.compress(small_model, bs)
    (home / "precious.txt").write_bytes(OLD)
    doc = index_doc(bs)
    if field == "name":
        doc["meta"]["name"] = "."
    else:
        doc["meta"].pop("name", None)
        doc["files"][0]["path"] = "."
    bad = with_doc(bs, doc, home / "bad.bs")
    try:
        r = bigsmall.decompress(bad, force=True)
    except BigsmallError:
        pass  # the index parser may refuse the name: as good
    else:
        assert Path(r.dst) == home / "bad.safetensors"
        assert Path(r.dst).read_bytes() == small_model.read_bytes()
    assert home.is_dir() and (home / "precious.txt").read_bytes() == OLD and bad.is_file()


def test_force_never_replaces_the_input_or_its_folder(small_model: Path, repo: Path,
                                                      tmp_path: Path) -> None:
    bs = tmp_path / "m.bs"
    bigsmall.compress(repo / "model.safetensors", bs)
    before = bs.read_bytes()
    for dst in (bs, tmp_path):  # the input itself, the folder holding it
        with pytest.raises(OutputExistsError) as info:
            bigsmall.decompress(bs, dst, force=True)
        assert "input" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(OutputExistsError):
        bigsmall.compress(repo / "model.safetensors", repo / "model.safetensors", force=True)
    with pytest.raises(OutputExistsError):  # compress a folder into the folder holding it
        bigsmall.compress(repo, tmp_path, force=True)
    folder_bs = tmp_path / "repo.bs"
    bigsmall.compress(repo, folder_bs)
    with pytest.raises(OutputExistsError):  # a folder container over the folder holding it
        bigsmall.decompress(folder_bs, tmp_path, force=True)
    for dst in (tmp_path / "..", Path("."), Path(f"{tmp_path}/sub/..")):
        with pytest.raises(InvalidOptionError):  # names no output: refused whatever it is
            bigsmall.decompress(folder_bs, dst, force=True)
    assert bs.read_bytes() == before and (repo / "config.json").is_file()
    assert temps(tmp_path) == []


@pytest.mark.parametrize("member", [".", "", "a//b", "./x", "tok/.", "x/", "a\0b", "/abs",
                                    "../up", "tok/../../up"])
def test_unsafe_member_path_is_refused(member: str, repo: Path, tmp_path: Path) -> None:
    bs = tmp_path / "repo.bs"
    bigsmall.compress(repo, bs)
    doc = index_doc(bs)
    next(f for f in doc["files"] if f["path"] == "config.json")["path"] = member
    bad = with_doc(bs, doc, tmp_path / "bad.bs")
    out = tmp_path / "out"
    with pytest.raises((IntegrityError, FormatError)):
        bigsmall.decompress(bad, out)
    assert not out.exists() and temps(tmp_path) == []
    assert not (tmp_path / "up").exists()


def test_duplicate_and_file_folder_member_paths(repo: Path, tmp_path: Path) -> None:
    bs = tmp_path / "repo.bs"
    bigsmall.compress(repo, bs)
    for clash in ("tok/vocab.txt", "tok"):  # the same path twice; a file that is a folder
        doc = index_doc(bs)
        next(f for f in doc["files"] if f["path"] == "config.json")["path"] = clash
        bad = with_doc(bs, doc, tmp_path / "bad.bs")
        with pytest.raises(FormatError):
            bigsmall.decompress(bad, tmp_path / "out")
        assert not (tmp_path / "out").exists() and temps(tmp_path) == []


def test_member_never_written_through_a_symlink(repo: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A member folder that turns out to be a symlink (planted in the temporary folder) is
    refused instead of followed out of the output."""
    import bigsmall.io.decompress as dmod

    bs = tmp_path / "repo.bs"
    bigsmall.compress(repo, bs)
    outside = tmp_path / "outside"
    outside.mkdir()
    real = dmod._member_file

    def plant(root: Path, parts: tuple[str, ...], mode: int) -> Any:
        if parts[0] == "tok" and not (root / "tok").exists():
            (root / "tok").symlink_to(outside)
        return real(root, parts, mode)

    monkeypatch.setattr(dmod, "_member_file", plant)
    with pytest.raises(IntegrityError, match="leaves the output folder"):
        bigsmall.decompress(bs, tmp_path / "out")
    assert os.listdir(outside) == [] and not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 2. stale temporaries

_HOLD = """
import sys, time
from pathlib import Path
from bigsmall.io.atomic import atomic_dir, atomic_file
dst = Path(sys.argv[1])
ctx = atomic_dir(dst) if sys.argv[2] == "dir" else atomic_file(dst)
with ctx as got:
    tmp = got if sys.argv[2] == "dir" else got[0]
    if sys.argv[2] == "dir":
        (tmp / "part").write_bytes(b"x" * 100)
    else:
        got[1].write(b"x" * 100)
    print(tmp, flush=True)
    time.sleep(60)
"""


def _writer(dst: Path, kind: str) -> tuple[subprocess.Popen[str], Path]:
    """A process writing ``dst`` that stops in the middle (its temporary exists)."""
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(dst), kind], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None
    line = p.stdout.readline().strip()
    assert line, "the writer did not start"
    return p, Path(line)


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_killed_run_temporaries_are_swept(kind: str, small_model: Path, repo: Path,
                                          tmp_path: Path) -> None:
    src = repo / "model.safetensors" if kind == "file" else repo
    bs = tmp_path / "out.bs"
    bigsmall.compress(src, bs)
    dst = tmp_path / "restored"
    live, alive = _writer(dst, kind)  # a live writer of the same target: its temp must stay
    killed, stale = _writer(dst, kind)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    try:
        assert stale.exists() and alive.exists()
        bigsmall.decompress(bs, dst)
        assert not stale.exists(), "the killed run's temporary was left behind"
        assert alive.exists(), "a live writer's temporary was removed"
    finally:
        live.kill()
        live.wait()
    # compress outputs too
    killed, stale = _writer(tmp_path / "again.bs", "file")
    killed.kill()
    killed.wait()
    bigsmall.compress(src, tmp_path / "again.bs")
    assert not stale.exists()
    atomic.sweep_stale(dst)  # the live writer is gone now: its temporary goes as well
    assert temps(tmp_path) == []


def test_old_style_and_moved_aside_leftovers(small_model: Path, tmp_path: Path) -> None:
    bs = tmp_path / "m.bs"
    bigsmall.compress(small_model, bs)
    dst = tmp_path / "r.safetensors"
    legacy_old = tmp_path / ".r.safetensors.abcd1234.tmp"  # no pid: swept once old
    legacy_new = tmp_path / ".r.safetensors.efgh5678.tmp"
    other = tmp_path / ".other.abcd1234.tmp"  # another target's: never touched
    for p in (legacy_old, legacy_new, other):
        p.write_bytes(b"partial")
    past = time.time() - 2 * atomic.STALE_AGE_S
    os.utime(legacy_old, (past, past))
    os.utime(other, (past, past))
    dead = _dead_pid()
    aside = tmp_path / f".r.safetensors.old-{dead}"  # a force run killed mid-swap
    aside.write_bytes(OLD)
    atomic.sweep_stale(dst)
    assert not legacy_old.exists() and legacy_new.exists() and other.exists()
    assert dst.read_bytes() == OLD and not aside.exists()  # put back: it was the only copy
    bigsmall.decompress(bs, dst, force=True)
    aside.write_bytes(OLD)  # once the output is in place, a moved-aside copy just goes
    atomic.sweep_stale(dst)
    assert not aside.exists() and dst.read_bytes() == small_model.read_bytes()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ---------------------------------------------------------------- 3. permission bits

@pytest.mark.parametrize("bits", [0o640, 0o604, 0o600, 0o444])
def test_outputs_keep_the_input_mode(bits: int, small_model: Path, repo: Path,
                                     tmp_path: Path) -> None:
    src = repo / "model.safetensors"
    os.chmod(src, bits)
    bs = tmp_path / "m.bs"
    bigsmall.compress(src, bs)
    assert stat.S_IMODE(bs.stat().st_mode) == bits
    os.chmod(bs, bits)
    out = tmp_path / "r.safetensors"
    bigsmall.decompress(bs, out)
    assert stat.S_IMODE(out.stat().st_mode) == bits
    folder_bs = tmp_path / "repo.bs"
    os.chmod(repo, 0o750)
    bigsmall.compress(repo, folder_bs)
    assert stat.S_IMODE(folder_bs.stat().st_mode) == 0o640  # a folder's bits less x
    os.chmod(folder_bs, bits)
    bigsmall.decompress(folder_bs, tmp_path / "r")
    assert stat.S_IMODE((tmp_path / "r" / "config.json").stat().st_mode) == bits
    assert stat.S_IMODE((tmp_path / "r").stat().st_mode) == {0o640: 0o750, 0o604: 0o705,
                                                              0o600: 0o700, 0o444: 0o755}[bits]


# ---------------------------------------------------------------- 7. not safetensors

@pytest.mark.parametrize("content", [b"", b"\x01\x02", os.urandom(4096), b"x" * 100, "bs"])
def test_compress_not_safetensors_names_the_file(content: Any, small_model: Path,
                                                 tmp_path: Path) -> None:
    src = tmp_path / "input.bin"
    if content == "bs":
        bigsmall.compress(small_model, src)
    else:
        src.write_bytes(content)
    with pytest.raises(InvalidSafetensorsError) as info:
        bigsmall.compress(src, tmp_path / "out.bs")
    msg = str(info.value)
    assert "not a safetensors file" in msg and str(src) in msg and "\n" not in msg
    if content == "bs":
        assert "bigsmall decompress" in msg
    assert not (tmp_path / "out.bs").exists() and temps(tmp_path) == []


def _st(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


_W = b'"dtype":"F32","shape":[1],"data_offsets":[0,4]'
MALFORMED = {
    "surrogate_name": _st(b'{"\\ud800":{' + _W + b"}}", b"\0" * 4),
    "surrogate_metadata": _st(b'{"__metadata__":{"k":"\\udc00"},"w":{' + _W + b"}}", b"\0" * 4),
    "surrogate_metadata_key": _st(b'{"__metadata__":{"\\udc00":"v"},"w":{' + _W + b"}}", b"\0" * 4),
    "huge_int": _st(b'{"w":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,4]}}',
                    b"\0" * 4),
    "huge_dim": _st(b'{"w":{"dtype":"F32","shape":[0,' + str(1 << 70).encode() + b'],"data_offsets":[0,0]}}'),
    "numpy_too_big": _st(b'{"w":{"dtype":"F32","shape":[0,' + str(1 << 62).encode() + b","
                         + str(1 << 62).encode() + b'],"data_offsets":[0,0]}}'),
    "many_dims": _st(b'{"w":{"dtype":"F32","shape":[' + b",".join([b"1"] * 100)
                     + b'],"data_offsets":[0,4]}}', b"\0" * 4),
    "inf_dim": _st(b'{"w":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}}', b"\0" * 4),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_safetensors_errors_are_typed(case: str, tmp_path: Path) -> None:
    src = tmp_path / "model.safetensors"
    src.write_bytes(MALFORMED[case])
    with pytest.raises(InvalidSafetensorsError) as info:
        bigsmall.compress(src, tmp_path / "out.bs")
    assert str(src) in str(info.value) and "\n" not in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]


# ---------------------------------------------------------------- 9, 10. order; odd files

def test_bad_input_reported_before_existing_output(small_model: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk" * 10)
    (tmp_path / "junk.bs").write_bytes(OLD)
    with pytest.raises(InvalidSafetensorsError):
        bigsmall.compress(junk)
    (tmp_path / "bad.bs").write_bytes(b"not a container" * 10)
    (tmp_path / "bad.safetensors").write_bytes(OLD)
    with pytest.raises(FormatError):
        bigsmall.decompress(tmp_path / "bad.bs", tmp_path / "bad.safetensors")
    with pytest.raises(BigsmallIOError):
        bigsmall.compress(tmp_path / "missing.safetensors", tmp_path / "junk.bs")
    assert (tmp_path / "junk.bs").read_bytes() == OLD


def _odd_files(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.bs"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    return {"fifo": fifo, "socket": sock_path, "device": Path("/dev/zero")}


def _within(seconds: float, fn: Any, fifo: Path) -> BaseException | None:
    """Run ``fn`` in a thread; what it raised. If it still runs after ``seconds`` (blocked
    opening the FIFO for reading), a writer opens the FIFO to release it, and the test fails."""
    got: list[BaseException | None] = []

    def call() -> None:
        try:
            fn()
            got.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            got.append(exc)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(10)
        pytest.fail("blocked on a FIFO")
    return got[0]


@pytest.mark.parametrize("api", ["compress", "decompress", "open"])
def test_non_regular_input_is_refused_at_once(api: str, tmp_path: Path) -> None:
    odd = _odd_files(tmp_path)
    calls = {"compress": lambda p: bigsmall.compress(p, tmp_path / "out.bs"),
             "decompress": lambda p: bigsmall.decompress(p, tmp_path / "out"),
             "open": BsFile}
    for kind, path in odd.items():
        fn = functools.partial(calls[api], path)
        exc = _within(10, fn, odd["fifo"])
        assert isinstance(exc, BigsmallIOError), (kind, exc)
        msg = str(exc)
        assert "not a regular file" in msg and str(path) in msg, (kind, msg)
        assert "no such file" not in msg
