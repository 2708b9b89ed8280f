"""``BsFile.read`` parses the next tensor's side information ahead on the pool (issue 17): the
bytes and the errors must be those of a reader that does not (one thread), in any read order,
with corrupt side information in the tensor read ahead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigsmall
from bigsmall.errors import BigsmallError
from bigsmall.io.reader import BsFile
from bigsmall.testing.synthetic import write_safetensors


def _model(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(11)

    def bf16(shape: tuple[int, ...]) -> bytes:
        x = rng.normal(0, 0.02, shape).astype(np.float32).view(np.uint32) >> 16
        return x.astype(np.uint16).tobytes()

    t: dict[str, Any] = {}
    for i in range(4):
        t[f"l{i}.w"] = ("BF16", (96, 64), bf16((96, 64)))
        t[f"l{i}.h"] = ("F16", (37, 41), rng.normal(0, 0.1, (37, 41)).astype(np.float16).tobytes())
        t[f"l{i}.n"] = ("F32", (64,), np.ones(64, np.float32).tobytes())
    src = write_safetensors(tmp_path / "m.safetensors", t)
    bs = tmp_path / "m.bs"
    bigsmall.compress(src, bs, chunk_bytes=2048)
    return src, bs


def _outcomes(bs: Path, threads: int, order: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with BsFile(bs, threads=threads) as f:
        for name in order:
            try:
                out[name] = f.read_bytes(name).tobytes()
            except BigsmallError as exc:
                out[name] = type(exc).__name__
    return out


@pytest.mark.parametrize("threads", [2, 3])
def test_read_ahead_gives_the_same_bytes_in_any_order(tmp_path: Path, threads: int) -> None:
    _src, bs = _model(tmp_path)
    with BsFile(bs) as f:
        names = f.names()
    ref = _outcomes(bs, 1, names)
    assert all(isinstance(v, bytes) for v in ref.values())
    for order in (names, names[::-1], names[::2] + names[1::2], names + names):
        assert _outcomes(bs, threads, order) == {n: ref[n] for n in order}


@pytest.mark.parametrize("threads", [1, 2])
def test_corrupt_side_information_read_ahead_fails_only_its_own_read(tmp_path: Path,
                                                                     threads: int) -> None:
    """The second tensor's head is damaged: reading the first (which parses the second ahead)
    still succeeds, reading the second raises the error a plain reader raises."""
    _src, bs = _model(tmp_path)
    with BsFile(bs) as f:
        names = f.names()
        e = f.entry(names[1])
        assert e.head_len > 8 and e.codec in ("field8", "fieldp")
        good = {n: f.read_bytes(n).tobytes() for n in names}
    raw = bytearray(bs.read_bytes())
    for k in range(e.head_len):
        raw[e.offset + k] ^= 0x5A
    bad = tmp_path / "bad.bs"
    bad.write_bytes(bytes(raw))
    got = _outcomes(bad, threads, names)
    assert got[names[0]] == good[names[0]]
    assert got[names[1]] in ("IntegrityError", "FormatError")
    assert {n: got[n] for n in names[2:]} == {n: good[n] for n in names[2:]}
    assert got == _outcomes(bad, 1, names)


@pytest.mark.parametrize("small_bytes", [None, 8000])
def test_in_order_reads_parse_each_tensor_once_ahead(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     small_bytes: int | None) -> None:
    """Reading in order, every tensor but the first is parsed by the read before it (on the
    pool), and no tensor twice; also with tensors too large for ``read_window`` (8000:
    the 12 KB ``l*.w`` are large, parsed ahead behind the small ones decoded whole)."""
    import threading

    import bigsmall.io.reader as reader_mod

    if small_bytes is not None:
        monkeypatch.setattr(reader_mod, "SMALL_BYTES", small_bytes)
    _src, bs = _model(tmp_path)
    calls: list[tuple[str, bool]] = []
    real = reader_mod.plan_decode

    def counting(spec: Any, *args: Any) -> Any:
        calls.append((spec.name, threading.current_thread() is threading.main_thread()))
        return real(spec, *args)

    monkeypatch.setattr(reader_mod, "plan_decode", counting)
    with BsFile(bs, threads=2) as f:
        names = [n for n in f.names() if f.entry(n).length]
        for n in names:
            f.read_bytes(n)
    assert sorted(c[0] for c in calls) == sorted(names)
    assert calls[0] == (names[0], True)
    assert all(not on_main for _n, on_main in calls[1:])


def test_close_drops_the_parsed_ahead_tensor(tmp_path: Path) -> None:
    """A tensor parsed (or, small, decoded whole) ahead holds a view of the file's map:
    ``close`` lets it go."""
    _src, bs = _model(tmp_path)
    f = BsFile(bs, threads=2)
    f.read_bytes(f.names()[0])
    assert f._ahead is not None or f._window.items
    f.close()
    assert f._ahead is None and not f._window.items


def test_small_tensors_are_decoded_whole_ahead_on_the_pool(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading in order, the small tensors after the first are decoded whole on the pool
    (``read_window``), and each is still checked against its receipt there."""
    import threading

    import bigsmall.io.reader as reader_mod

    _src, bs = _model(tmp_path)
    checked: list[tuple[str, bool]] = []
    real = reader_mod.check_receipt

    def spying(entry: Any, data: Any) -> None:
        checked.append((entry.name, threading.current_thread() is threading.main_thread()))
        real(entry, data)

    monkeypatch.setattr(reader_mod, "check_receipt", spying)
    with BsFile(bs, threads=2) as f:
        names = [n for n in f.names() if f.entry(n).length]
        got = {n: f.read_bytes(n).tobytes() for n in names}
    checked_2t = list(checked)
    with BsFile(bs, threads=1) as f:
        assert got == {n: f.read_bytes(n).tobytes() for n in names}
    checked = checked_2t
    assert sorted(c[0] for c in checked) == sorted(names)  # each once
    assert sum(not on_main for _n, on_main in checked) >= len(names) - 2


def test_a_corrupt_tensor_decoded_ahead_fails_its_own_read(tmp_path: Path) -> None:
    """The chunks of the third coded tensor damaged: the reads before it (which decode it
    ahead) succeed, its own read raises, the reads after it succeed, as with one thread."""
    _src, bs = _model(tmp_path)
    with BsFile(bs) as f:
        names = f.names()
        bad_name = [n for n in names if f.entry(n).length > f.entry(n).head_len][2]
        e = f.entry(bad_name)
    raw = bytearray(bs.read_bytes())
    for k in range(e.head_len, e.length):
        raw[e.offset + k] ^= 0x3C
    bad = tmp_path / "bad.bs"
    bad.write_bytes(bytes(raw))
    got = _outcomes(bad, 2, names)
    assert isinstance(got[bad_name], str)
    assert all(isinstance(got[n], bytes) for n in names if n != bad_name)
    assert got == _outcomes(bad, 1, names)


def test_concurrent_readers_share_the_window_safely(tmp_path: Path) -> None:
    """Four threads reading one open file in different orders (each read takes, drops or
    refills the window under its lock) get the bytes of a one-thread reader."""
    import threading

    _src, bs = _model(tmp_path)
    with BsFile(bs) as f:
        names = f.names()
    ref = _outcomes(bs, 1, names)
    got: list[bool] = []
    with BsFile(bs, threads=2) as f:

        def go(order: list[str]) -> None:
            for _ in range(3):
                got.extend(f.read_bytes(n).tobytes() == ref[n] for n in order)

        ts = [threading.Thread(target=go, args=(o,))
              for o in (names, names[::-1], names[1::2] + names[::2], names)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert len(got) == 12 * len(names) and all(got)
