"""Counting passes the encoder no longer repeats (issue 17) give the counts it used to make:
the layout search's whole-tensor histogram stands for the chosen field's counts, and the
default level's joint counts per context for ``auto.estimate``'s recount."""

from __future__ import annotations

import numpy as np
import pytest

from bigsmall.codecs import auto, counting, field
from bigsmall.codecs.base import get_codec
from bigsmall.core.types import TensorSpec


def _tensor(dtype: str, rows: int, cols: int, seed: int) -> tuple[np.ndarray, TensorSpec]:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, (rows, cols)) * rng.uniform(0.005, 0.05, (rows, 1)) + 0.01
    if dtype == "BF16":
        u = (w.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    elif dtype == "F16":
        u = w.astype(np.float16)
    else:
        u = w.astype(np.float32)
    data = np.ascontiguousarray(u).view(np.uint8).reshape(-1)
    return data, TensorSpec("w", dtype, (rows, cols), 0, data.size)


@pytest.mark.parametrize("dtype", ["BF16", "F16", "F32"])
@pytest.mark.parametrize("level", ["fast", "default"])
@pytest.mark.parametrize("shape", [(256, 384), (1024, 2304)])  # whole-tensor sample; strided
def test_model_the_same_without_the_shortcuts(dtype: str, level: str, shape: tuple[int, int],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data, spec = _tensor(dtype, *shape, seed=len(dtype) + shape[0])
    f8 = get_codec("field8")
    got = f8.model(data, spec, level)
    real = field._choose_layout_counts
    monkeypatch.setattr(field, "_choose_layout_counts",
                        lambda *a: (real(*a)[0], None, 0))  # no whole-tensor histogram
    ref = f8.model(data, spec, level)
    assert got is not None and ref is not None
    assert got.lay == ref.lay and got.head_z == ref.head_z
    for a in ("freq", "cum", "mfreq", "mcum", "mrow", "rshift"):
        assert np.array_equal(getattr(got, a), getattr(ref, a)), a
    # the joint counts handed to auto.estimate are the ones it would count itself
    lay = got.lay
    joint = counting._bit_field(got.values, lay.p, lay.c).reshape(got.nrows, got.ncols)
    recount = counting._ctx_table(joint, got.cl.row_map.astype(np.int64),
                                  got.cl.col_map.astype(np.int64), got.cl.kc,
                                  got.cl.n_contexts, 1 << lay.c)
    assert got.joint_counts is not None
    assert np.array_equal(got.joint_counts.reshape(recount.shape), recount)
    chunk = 1 << 16
    assert auto.plan_model(got, chunk, level) == auto.plan_model(ref, chunk, level)
