"""The pipelined decode path: tensors decoded ahead on the pool, into buffers the caller supplies,
must give the same bytes as the plain one-tensor-at-a-time path, in order, whatever the threads
and the read-ahead; ``decompress`` on top of it must restore the file byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigsmall
import bigsmall.io.flush as flush_mod
import bigsmall.io.reader as reader_mod
from bigsmall.core.types import TensorEntry
from bigsmall.io.reader import BsFile
from bigsmall.testing.synthetic import write_safetensors


@pytest.fixture
def chunked_model(tmp_path: Path) -> tuple[Path, Path]:
    """(safetensors, .bs) with many-chunk tensors (4 KiB chunks), repeated layer shapes, a tied
    tensor and odd sizes: strided shares, read-ahead and buffer reuse all come into play."""
    rng = np.random.default_rng(7)

    def bf16(shape: tuple[int, ...]) -> bytes:
        x = rng.normal(0, 0.02, shape).astype(np.float32).view(np.uint32) >> 16
        return x.astype(np.uint16).tobytes()

    emb = bf16((300, 64))
    t: dict[str, Any] = {"embed.weight": ("BF16", (300, 64), emb), "head.weight": ("BF16", (300, 64), emb)}
    for i in range(4):
        t[f"model.layers.{i}.q.weight"] = ("BF16", (96, 64), bf16((96, 64)))
        t[f"model.layers.{i}.o.weight"] = ("F16", (37, 41), rng.normal(0, 0.1, (37, 41)).astype(np.float16).tobytes())
        t[f"model.layers.{i}.norm"] = ("F32", (64,), np.ones(64, np.float32).tobytes())
    src = write_safetensors(tmp_path / "model.safetensors", t, {"format": "pt"}, pad=3)
    bs = tmp_path / "model.bs"
    bigsmall.compress(src, bs, chunk_bytes=4096)
    return src, bs


def test_model_really_has_many_chunks(chunked_model: tuple[Path, Path]) -> None:
    with BsFile(chunked_model[1]) as f:
        assert max(len(t.chunk_lens) for t in f.container.tensors) >= 5


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("ahead", [0, 5000, 1 << 30])
def test_iter_decoded_into_preallocated_buffer(chunked_model: tuple[Path, Path], threads: int,
                                               ahead: int) -> None:
    """Every tensor decodes into its slice of one preallocated, garbage-filled buffer laid out
    like the file's data section: the slices together must be the data section exactly."""
    src, bs = chunked_model
    raw = src.read_bytes()
    with BsFile(bs, threads=threads) as f:
        header = f.container.files[0].header
        entries = f.data_tensors(0)
        data = np.full(len(raw) - len(header), 0xA5, np.uint8)

        def alloc(t: TensorEntry) -> np.ndarray:
            return data[t.spec.begin : t.spec.end]

        seen = []
        for t, out in f.iter_decoded(entries, ahead_bytes=ahead, alloc=alloc):
            seen.append(t.name)
            # yielded only once decoded: its bytes are final now, not later
            assert out.tobytes() == raw[len(header) + t.spec.begin : len(header) + t.spec.end]
        assert seen == [t.name for t in entries]
        assert header + data.tobytes() == raw


def test_iter_decoded_matches_read_bytes_unchecked(chunked_model: tuple[Path, Path]) -> None:
    """With receipts off, nothing else would notice a buffer yielded before its chunks finish."""
    _, bs = chunked_model
    with BsFile(bs, threads=2) as f:
        want = {n: f.read_bytes(n).tobytes() for n in f.names()}
        for _ in range(3):
            for t, out in f.iter_decoded(list(f.container.tensors), check=False, ahead_bytes=1 << 30):
                assert out.tobytes() == want[t.name], t.name


@pytest.mark.parametrize("threads", [1, 2])
def test_decompress_pipelined_with_writeback(chunked_model: tuple[Path, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    """A few tensors in flight, each in pieces of a few chunks, and a background sync after
    nearly every write: still the original file, byte for byte."""
    src, bs = chunked_model
    monkeypatch.setattr(flush_mod, "FLUSH_BYTES", 1000)
    monkeypatch.setattr(reader_mod, "AHEAD_BYTES", 20000)
    monkeypatch.setattr(reader_mod, "PIECE_BYTES", 10000)
    out = tmp_path / "restored.safetensors"
    bigsmall.decompress(bs, out, threads=threads)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_background_sync_error_fails_the_restore(chunked_model: tuple[Path, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A write error seen by the background fdatasync (the kernel reports it once per open file,
    so the final fsync would not) fails the restore, and nothing is left behind."""
    import errno
    import os

    _, bs = chunked_model
    monkeypatch.setattr(flush_mod, "FLUSH_BYTES", 1000)
    calls = []

    def broken(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    out = tmp_path / "restored.safetensors"
    with pytest.raises(bigsmall.errors.BigsmallIOError, match="Input/output error"):
        bigsmall.decompress(bs, out)
    assert calls, "the background sync never ran"
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bs", "model.safetensors"]


def test_file_source_view_is_zero_copy_and_bounded(chunked_model: tuple[Path, Path]) -> None:
    from bigsmall.errors import TruncatedError
    from bigsmall.io.source import FileSource

    _, bs = chunked_model
    raw = bs.read_bytes()
    src = FileSource(bs)
    v = src.view(10, 100)
    assert bytes(v) == raw[10:110] and v.readonly
    assert bytes(src.view(len(raw) - 5, 5)) == raw[-5:]
    assert len(src.view(len(raw), 0)) == 0
    with pytest.raises(TruncatedError):
        src.view(len(raw) - 5, 6)
    with pytest.raises(TruncatedError):
        src.view(-1, 2)
    whole = src.view(0, len(raw))
    assert bytes(whole) == raw
    src.release(0, len(raw))  # pages leave the process; the bytes stay readable through views
    src.release(3, 10)  # no whole page inside: nothing to do
    assert bytes(whole) == raw and bytes(v) == raw[10:110]
    src.close()  # a view still in use keeps its map alive; close does not fail
    assert bytes(v[:4]) == raw[10:14]
    with pytest.raises(bigsmall.errors.BigsmallIOError):
        src.view(0, 1)  # after close: a clear error, not a crash


def test_folder_restore_is_durable(chunked_model: tuple[Path, Path], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder restore syncs every member file and every folder (entries, then the rename),
    like a single-file restore, and restores the tree byte for byte."""
    import os

    src, _ = chunked_model
    model_folder = tmp_path / "repo"
    (model_folder / "tok").mkdir(parents=True)
    src.rename(model_folder / "model.safetensors")
    (model_folder / "config.json").write_text('{"hidden": 96}\n')
    (model_folder / "tok" / "vocab.txt").write_text("a\nb\nc\n" * 100)

    bs = tmp_path / "m.bs"
    bigsmall.compress(model_folder, bs)
    real = os.fsync
    synced: list[str] = []

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else "?")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "restored"
    bigsmall.decompress(bs, out)
    files = sorted(p.relative_to(model_folder) for p in model_folder.rglob("*") if p.is_file())
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == files
    for rel in files:
        assert (out / rel).read_bytes() == (model_folder / rel).read_bytes()
    if os.path.exists("/proc/self/fd"):
        names = {Path(s).name for s in synced}
        assert {rel.name for rel in files} <= names  # every member file
        assert str(tmp_path) in synced  # the parent, after the rename
    assert len(synced) >= len(files) + 2


def _count_syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ``os.fsync`` / ``os.fdatasync`` from now on appended by name (and still done)."""
    import os

    calls: list[str] = []
    real = {"fsync": os.fsync, "fdatasync": os.fdatasync}

    def counting(name: str) -> Any:
        def sync(fd: int) -> None:
            calls.append(name)
            real[name](fd)
        return sync

    for name in real:
        monkeypatch.setattr(os, name, counting(name))
    return calls


def test_no_fsync_restores_the_same_bytes_without_any_sync(
        chunked_model: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``durable=False`` (``--no-fsync``): no fsync or fdatasync at all, the same bytes, the
    same atomic placement (no temporary left); the default syncs."""

    from bigsmall.cli import main

    src, bs = chunked_model
    calls = _count_syncs(monkeypatch)
    out = tmp_path / "fast.safetensors"
    r = bigsmall.decompress(bs, out, durable=False)
    assert calls == [] and not r.durable and r.to_json()["durable"] is False
    assert out.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert main(["decompress", str(bs), "-o", str(tmp_path / "cli.safetensors"), "--no-fsync"]) == 0
    assert calls == [] and (tmp_path / "cli.safetensors").read_bytes() == src.read_bytes()
    bigsmall.decompress(bs, tmp_path / "durable.safetensors")
    assert "fsync" in calls  # the default is durable


def test_compress_no_fsync_writes_the_same_container_without_any_sync(
        chunked_model: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``compress(durable=False)`` (``--no-fsync``): no fsync or fdatasync at all (neither the
    background flusher's nor the one before the rename), the same container bytes as a durable
    run, placed atomically (no temporary left); the default syncs."""

    from bigsmall.cli import main

    src, _ = chunked_model
    monkeypatch.setattr(flush_mod, "FLUSH_BYTES", 4096)  # the flusher would sync many times
    calls = _count_syncs(monkeypatch)
    out = tmp_path / "fast.bs"
    r = bigsmall.compress(src, out, durable=False)
    assert calls == [] and not r.durable and r.to_json()["durable"] is False
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert main(["compress", str(src), "-o", str(tmp_path / "cli.bs"), "--no-fsync"]) == 0
    assert calls == []
    r = bigsmall.compress(src, tmp_path / "durable.bs")
    assert r.durable and "fsync" in calls  # the default is durable
    want = (tmp_path / "durable.bs").read_bytes()
    assert out.read_bytes() == want and (tmp_path / "cli.bs").read_bytes() == want


def test_check_receipts_restores_the_same_bytes_without_a_sha256(
        chunked_model: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``check="receipts"`` (``--check receipts``): the same bytes, every tensor checked against
    its receipt as it is decoded and no sha256 rebuilt for a safetensors file (a folder's other
    files still are: their blob has no other receipt); the default rebuilds it; an unknown
    check is refused before anything is written."""
    import bigsmall.io.decompress as dec_mod
    from bigsmall.cli import main
    from bigsmall.errors import InvalidOptionError

    src, bs = chunked_model
    made: list[int] = []
    checked: list[bool] = []

    class Counting(dec_mod.Sha256):
        @classmethod
        def for_size(cls, size: int) -> dec_mod.Sha256:
            made.append(size)
            return dec_mod.Sha256(False)

    real_chunks = BsFile.iter_file_chunks

    def chunks(self: BsFile, index: int, check: bool = True) -> Any:
        checked.append(check)
        return real_chunks(self, index, check)

    monkeypatch.setattr(dec_mod, "Sha256", Counting)
    monkeypatch.setattr(BsFile, "iter_file_chunks", chunks)
    out = tmp_path / "r.safetensors"
    r = bigsmall.decompress(bs, out, check="receipts")
    assert out.read_bytes() == src.read_bytes() and r.check == "receipts"
    assert made == [] and checked == [True]
    bigsmall.decompress(bs, tmp_path / "d.safetensors")
    assert made == [src.stat().st_size] and checked == [True, False]  # the default: sha256
    with pytest.raises(InvalidOptionError, match="unknown check"):
        bigsmall.decompress(bs, tmp_path / "x.safetensors", check="crc")
    assert not (tmp_path / "x.safetensors").exists()

    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(src.read_bytes())
    (folder / "config.json").write_text('{"hidden": 96}\n')
    bigsmall.compress(folder, tmp_path / "repo.bs")
    made.clear()
    bigsmall.decompress(tmp_path / "repo.bs", tmp_path / "back", check="receipts")
    assert made == [len('{"hidden": 96}\n')]  # the config's sha256 only
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "back" / name).read_bytes() == (folder / name).read_bytes()
    assert main(["decompress", str(bs), "-o", str(tmp_path / "cli.safetensors"), "--check",
                 "receipts"]) == 0
    assert (tmp_path / "cli.safetensors").read_bytes() == src.read_bytes()


@pytest.mark.parametrize("piece", [1, 9000, 1 << 30])
def test_iter_pieces_tile_the_tensors(chunked_model: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                      piece: int) -> None:
    """``iter_pieces`` yields every tensor's bytes in order, cut at chunk boundaries into
    pieces no larger than needed (a piece per chunk at the smallest setting), and the pieces
    of one tensor joined are the tensor."""
    _, bs = chunked_model
    monkeypatch.setattr(reader_mod, "PIECE_BYTES", piece)
    with BsFile(bs, threads=2) as f:
        ts = f.data_tensors(0)
        want = b"".join(f.read_bytes(t.name).tobytes() for t in ts)
        pieces = [bytes(p) for p in f.iter_pieces(ts)]
        chunks = sum(max(1, len(f._resolve(t).chunk_lens)) for t in ts if t.spec.nbytes)
    assert b"".join(pieces) == want
    chunk_bytes = max(int(t.params.get("chunk", 0)) * (t.spec.info.itemsize or 1) for t in ts)
    assert chunk_bytes > 0
    if piece == 1:  # a piece per chunk
        assert len(pieces) == chunks
    assert max(len(p) for p in pieces) <= max(piece + chunk_bytes, max(t.spec.nbytes for t in ts)
                                              if piece > 1 << 20 else 0)


def test_iter_pieces_corrupt_tensor_raises(chunked_model: tuple[Path, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A tensor whose bytes do not match its receipt raises after its last piece, naming it."""
    from bigsmall.errors import IntegrityError

    _, bs = chunked_model
    monkeypatch.setattr(reader_mod, "PIECE_BYTES", 9000)
    with BsFile(bs) as f:
        ts = f.data_tensors(0)
        victim = max(ts, key=lambda t: t.spec.nbytes)
    monkeypatch.setattr(reader_mod, "xxhash", _WrongDigest(victim))
    with BsFile(bs, threads=2) as f, pytest.raises(IntegrityError, match=victim.name):
        for _ in f.iter_pieces(f.data_tensors(0)):
            pass


class _WrongDigest:
    """``xxhash`` whose streaming digest is wrong for one tensor's size: a corrupt tensor."""

    def __init__(self, victim: TensorEntry) -> None:
        import xxhash

        self._x = xxhash
        self._n = victim.spec.nbytes

    def xxh3_128(self) -> Any:
        real = self._x.xxh3_128()
        n = self._n

        class H:
            size = 0

            def update(self, b: Any) -> None:
                self.size += len(b)
                real.update(b)

            def hexdigest(self) -> str:
                return "0" * 32 if self.size == n else real.hexdigest()

        return H()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._x, name)


def test_pipeline_decodes_in_order_before_parsing_ahead(chunked_model: tuple[Path, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """With one worker and everything queued ahead, the pool parses a tensor, decodes all of its
    ranges, and only then parses the next: the ranges a parse queues rank before the parses of
    later tensors that were queued first (a first-in-first-out pool parsed every tensor ahead
    before decoding the first one's ranges)."""
    from bigsmall.plan import decode as decode_mod

    log: list[tuple[str, str]] = []
    plan = reader_mod.plan_decode
    run_range = decode_mod.DecodeJob.run_range

    def logged_plan(spec: Any, *a: Any, **k: Any) -> Any:
        log.append(("plan", spec.name))
        return plan(spec, *a, **k)

    def logged_range(self: Any, first: int, end: int, out: np.ndarray) -> None:
        log.append(("range", self.spec.name))
        run_range(self, first, end, out)

    monkeypatch.setattr(reader_mod, "plan_decode", logged_plan)
    monkeypatch.setattr(decode_mod.DecodeJob, "run_range", logged_range)
    monkeypatch.setattr(reader_mod, "PIECE_BYTES", 4096)
    with BsFile(chunked_model[1], threads=1) as f:
        entries = [t for t in f.data_tensors(0) if t.codec != "ref"]
        pieces = list(f.iter_pieces(entries, ahead_bytes=1 << 30))
    assert sum(len(p) for p in pieces) == sum(t.spec.nbytes for t in entries)
    names = [name for kind, name in log if kind == "plan"]
    assert names == [t.name for t in entries]
    # every tensor's ranges follow its own parse, before the next tensor's parse
    expect: list[tuple[str, str]] = []
    for t in entries:
        expect.append(("plan", t.name))
        expect.extend(("range", t.name) for kind, name in log if kind == "range" and name == t.name)
    assert log == expect
    assert sum(kind == "range" for kind, _ in log) > len(entries)  # several ranges per tensor


def test_compress_with_background_syncs(chunked_model: tuple[Path, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Compress syncs its output in the background too: with a sync after nearly every
    tensor the file is the same, byte for byte; a write error seen by one of those syncs
    fails the compress and leaves nothing behind."""
    import errno
    import os

    src, bs = chunked_model
    monkeypatch.setattr(flush_mod, "FLUSH_BYTES", 1000)
    real = os.fdatasync
    calls: list[int] = []

    def counted(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counted)
    # each requested sync waited for: a small model compresses before the flusher thread is
    # scheduled, and a request still pending at the end is dropped (the final fsync covers it)
    orig_wrote = flush_mod.Flusher.wrote

    def wrote_and_wait(self: Any, size: int) -> None:
        orig_wrote(self, size)
        with self._cv:
            self._cv.wait_for(lambda: self._done >= self._want or self.error is not None, timeout=10)

    monkeypatch.setattr(flush_mod.Flusher, "wrote", wrote_and_wait)
    again = tmp_path / "again.bs"
    bigsmall.compress(src, again, chunk_bytes=4096)
    assert calls, "no background sync ran"
    assert again.read_bytes() == bs.read_bytes()

    def broken(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(bigsmall.errors.BigsmallIOError, match="Input/output error"):
        bigsmall.compress(src, tmp_path / "broken.bs", chunk_bytes=4096)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
