"""``container.format.zstd_decompress`` reuses idle decompressors (issue 17): the bytes and the
errors stay those of a fresh decompressor per call, also after a corrupt frame and with many
threads decoding at once."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import zstandard

from bigsmall.container import format as fmt
from bigsmall.errors import IntegrityError


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
