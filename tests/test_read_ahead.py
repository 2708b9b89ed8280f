"""``BsFile.read`` parses the next tensor's side information ahead on the pool (issue 17):
same bytes, the guess is used, and a corrupt next tensor fails only when it is read, with the
error it raises without the guess."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigsmall
from bigsmall.errors import BigsmallError
from bigsmall.io import reader
from bigsmall.io.reader import BsFile


def _model(tmp_path: Path) -> Path:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(7)
    tensors = {f"layer.{i}.weight": rng.normal(0, 0.05, (96, 80 + i)).astype(np.float32)
               for i in range(6)}
    src = tmp_path / "m.safetensors"
    save_file(tensors, str(src))
    bs = tmp_path / "m.bs"
    bigsmall.compress(src, bs, verify=False)
    return bs


def _read_all(bs: Path, threads: int) -> dict[str, bytes]:
    with bigsmall.open(bs, threads=threads) as f:
        return {n: f.read(n).tobytes() for n in f.names()}


def test_read_ahead_is_used_and_bit_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bs = _model(tmp_path)
    one = _read_all(bs, 1)
    assert _read_all(bs, 2) == one
    with bigsmall.open(bs, threads=1) as f:
        f.read(f.names()[0])
        assert f._ahead is None  # threads=1 keeps to one core: nothing parsed ahead
    with bigsmall.open(bs, threads=2) as f:
        names = f.names()
        for i, n in enumerate(names[:-1]):
            assert f.read(n).tobytes() == one[n]
            assert f._ahead is not None and f._ahead[0].name == names[i + 1]
        f._ahead[1].exception()  # parsed by now

        def fail(*_: Any) -> Any:
            raise AssertionError("parsed again")

        monkeypatch.setattr(reader, "_plan_now", fail)
        assert f.read(names[-1]).tobytes() == one[names[-1]]  # the parse ahead was used
        assert f._ahead is None


def _error_of(bs: Path, threads: int, names: list[str]) -> BaseException:
    with bigsmall.open(bs, threads=threads) as f:
        f.read(names[0])  # intact: must not raise over the next one's damage
        with pytest.raises(BigsmallError) as info:
            f.read(names[1])
    return info.value


def test_corrupt_next_tensor_raises_when_read(tmp_path: Path) -> None:
    bs = _model(tmp_path)
    with BsFile(bs) as f:
        names = f.names()
        t = f.entry(names[1])
        assert t.head_len > 8
        at = t.offset + t.head_len // 2
    data = bytearray(bs.read_bytes())
    for k in range(4):
        data[at + k] ^= 0x5A
    bad = tmp_path / "bad.bs"
    bad.write_bytes(bytes(data))
    e1, e2 = _error_of(bad, 1, names), _error_of(bad, 2, names)
    assert type(e2) is type(e1) and str(e2) == str(e1)
