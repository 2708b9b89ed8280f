"""The planner's zstd gate: a probe decides whether the full zstd trial runs.

The gate may only save time: where zstd wins (repetitive tables) it must still be tried and
chosen, whatever the tensor's size; where it cannot win, the trial must stay a probe.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bigsmall.codecs.base import get_codec
from bigsmall.core.types import TensorSpec
from bigsmall.plan import planner
from bigsmall.plan.decode import decode_into


def _spec(rows: int, cols: int, dtype: str = "BF16") -> TensorSpec:
    return TensorSpec("w", dtype, (rows, cols), 0, rows * cols * 2)


def _gaussian_bf16(rows: int, cols: int) -> np.ndarray:
    w = np.random.default_rng(5).normal(0, 0.02, (rows, cols)).astype(np.float32)
    return (w.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(-1)


def _repetitive_bf16(rows: int, cols: int) -> np.ndarray:
    """One random row repeated: the exponent model cannot see it, zstd's history can."""
    row = _gaussian_bf16(1, cols).view(np.uint16)
    return np.tile(row, rows).view(np.uint8)


def _zstd_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Byte sizes handed to the zstd codec's encoder, recorded."""
    codec = get_codec("zstd")
    calls: list[int] = []
    real = codec.encode

    def spy(data: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        calls.append(int(data.size))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(codec, "encode", spy)
    return calls


@pytest.mark.parametrize("rows", [384, 1536])  # two chunks (small probe); six (first-chunk probe)
@pytest.mark.parametrize("level", ["default", "fast"])
def test_zstd_still_wins_where_it_should(rows: int, level: str) -> None:
    data = _repetitive_bf16(rows, 384)
    spec = _spec(rows, 384)
    plan = planner.plan_tensor(data, spec, level=level, format_version=(1, 2), coder="auto")
    assert plan.codec == "zstd"
    assert plan.coded_size < data.size // 20
    out = np.empty(data.size, np.uint8)
    decode_into(spec, plan.codec, plan.params, plan.head + b"".join(plan.chunks), len(plan.head),
                tuple(len(c) for c in plan.chunks), out)
    assert np.array_equal(out, data)


@pytest.mark.parametrize("rows,probe", [(384, planner.SMALL_PROBE_BYTES),
                                        (1536, None)])
def test_zstd_trial_stays_a_probe_on_weights(monkeypatch: pytest.MonkeyPatch, rows: int,
                                             probe: int | None) -> None:
    if probe is None:  # the first chunk: 6 balanced chunks of 98304 elements (chunk_units_for)
        probe = 2 * planner.chunk_units_for(_spec(rows, 384))
        assert probe == 2 * 98304
    calls = _zstd_calls(monkeypatch)
    data = _gaussian_bf16(rows, 384)
    plan = planner.plan_tensor(data, _spec(rows, 384), level="fast", format_version=(1, 2),
                               coder="auto")
    assert plan.codec in ("field8", "fieldp")
    assert calls == [probe]  # one probe of the tensor's first bytes, no full trial


def test_tensor_no_larger_than_its_probe_is_tried_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _zstd_calls(monkeypatch)
    data = _gaussian_bf16(64, 256)  # 32 KiB: one chunk, smaller than the probe
    planner.plan_tensor(data, _spec(64, 256), level="fast", format_version=(1, 2), coder="auto")
    assert calls == [data.size]


@pytest.mark.parametrize("rows,cols,dtype,chunks", [
    (384, 384, "BF16", [73728, 73728]),  # greedy: 131072 + 16384
    (1536, 384, "BF16", [98304] * 6),  # greedy: 4 x 131072 + 65536
    (384, 384, "F32", [36864] * 4),
    (100, 1000, "BF16", [50048, 49952]),  # boundaries on whole 64-element lines
    (200, 200, "BF16", [40000]),  # below SPLIT_MIN_BYTES: one chunk
    (384, 1, "BF16", [384]),
])
def test_chunks_are_balanced_for_the_decode_threads(rows: int, cols: int, dtype: str,
                                                    chunks: list[int]) -> None:
    """A tensor of >= 128 KiB is cut into an even number of near-equal chunks (two decode
    threads share it evenly), never more than one chunk above the greedy cut."""
    from bigsmall.codecs.base import chunk_bounds

    itemsize = 4 if dtype == "F32" else 2
    spec = TensorSpec(name="w", dtype=dtype, shape=(rows, cols), end=rows * cols * itemsize)
    per = planner.chunk_units_for(spec)
    n = rows * cols
    count = -(-n // per)
    assert count <= -(-n // (planner.CHUNK_BYTES // itemsize)) + 1
    bounds = chunk_bounds(spec, {"chunk": per}, count)
    assert [(e - b) // itemsize for b, e in bounds] == chunks
