"""Per-read fixed costs cut for issue 17, with the same results and errors as before:

- ``container.format.zstd_decompress`` reuses idle decompressors: the bytes and the errors stay
  those of a fresh decompressor per call, also after a corrupt frame and with many threads;
- ``container.schema`` checks a tensor's chunk lengths in one pass (no message built per
  chunk) and still names the first bad one as before."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import zstandard

from bigsmall.container import format as fmt
from bigsmall.core.types import Container, FileEntry, Receipt, TensorEntry, TensorSpec
from bigsmall.errors import FormatError, IntegrityError


def _frames(n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        raw = os.urandom(64) * (1 + i % 40) + bytes(range(i % 256))
        out.append((raw, zstandard.ZstdCompressor(level=1 + i % 19).compress(raw)))
    return out


def test_corrupt_frame_then_good_frames_decode():
    raw, frame = _frames(1)[0]
    assert fmt.zstd_decompress(frame, len(raw), "t") == raw
    with pytest.raises(IntegrityError):  # cut short: the decoder fails mid-frame
        fmt.zstd_decompress(frame[:-3], len(raw), "t")
    checked = zstandard.ZstdCompressor(write_checksum=True).compress(raw)
    bad = bytearray(checked)
    bad[-1] ^= 0xFF  # the content checksum
    with pytest.raises(IntegrityError):
        fmt.zstd_decompress(bytes(bad), len(raw), "t")
    with pytest.raises(IntegrityError):  # more than it may hold
        fmt.zstd_decompress(frame, len(raw) - 1, "t")
    for raw2, frame2 in _frames(30):
        assert fmt.zstd_decompress(frame2, len(raw2), "t") == raw2


def test_idle_decompressors_are_reused():
    raw, frame = _frames(1)[0]
    fmt.zstd_decompress(frame, len(raw), "t")
    idle = list(fmt._IDLE_DCTX)
    assert idle  # one was put back
    for _ in range(20):
        fmt.zstd_decompress(frame, len(raw), "t")
    assert len(fmt._IDLE_DCTX) == len(idle)  # serial calls create no new one


def test_threads_decode_their_own_frames():
    frames = _frames(400)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda rf: fmt.zstd_decompress(rf[1], len(rf[0]), "t"), frames))
    assert got == [r for r, _f in frames]
    assert len(fmt._IDLE_DCTX) <= 8 + 1


def _index_with_lens(lens: list[object]) -> tuple[bytes, dict[str, object]]:
    """A one-tensor index (4096 F32 values, ``len(lens)`` raw chunks) whose chunk lengths
    are then replaced by ``lens`` in the JSON, as a stranger's file could."""
    spec = TensorSpec("w", "F32", (64, 64), 0, 16384, 0)
    t = TensorEntry(spec=spec, codec="raw", params={"chunk": 16}, offset=fmt.HEADER_SIZE,
                    head_len=0, chunk_lens=tuple(64 for _ in lens), receipt=Receipt("xxh3_128", "0" * 32),
                    layer=0)
    body = json.dumps({"w": {"dtype": "F32", "shape": [64, 64], "data_offsets": [0, 16384]}}).encode()
    header = len(body).to_bytes(8, "little") + body
    f = FileEntry(path="m.safetensors", kind="safetensors", size=len(header) + 16384,
                  receipt=Receipt("sha256", "0" * 64), header=header)
    c = Container(version=fmt.VERSION, files=(f,), tensors=(t,), meta={})
    doc = json.loads(zstandard.ZstdDecompressor().decompress(fmt.encode_index(c)))
    doc["tensors"][0]["blob"][2] = lens
    stored = zstandard.ZstdCompressor().compress(json.dumps(doc).encode())
    return stored, {"index_digest": fmt.index_digest(stored), "flags": fmt.FLAG_INDEX_ZSTD,
                    "file_length": 1 << 20, "index_offset": fmt.HEADER_SIZE + 16384}


def test_chunk_lengths_checked_in_one_pass():
    stored, header = _index_with_lens([64] * 256)
    assert fmt.decode_index(stored, header).tensors[0].chunk_lens == (64,) * 256
    for k, bad in ((0, -1), (3, True), (7, 1.0), (255, "64"), (100, 1 << 70), (9, None)):
        lens: list[object] = [64] * 256
        lens[k] = bad
        stored, header = _index_with_lens(lens)
        with pytest.raises(FormatError, match=rf"blob\[2\]\[{k}\]"):
            fmt.decode_index(stored, header)
    stored, header = _index_with_lens([1 << 20] * 256)  # each fine, together past the blobs
    with pytest.raises(FormatError, match="outside the blob region"):
        fmt.decode_index(stored, header)
