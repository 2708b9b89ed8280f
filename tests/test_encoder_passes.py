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


def _sign_pays_float(values: np.ndarray, lay: field.Layout, spec: TensorSpec, contexts: bool) -> bool:
    """``field._sign_pays`` as it was: the sign's means from a float64 copy of the sample."""
    if not field._sign_fits(lay, spec) or values.shape[0] < 4096:
        return False
    n = values.shape[0]
    nrows, ncols = spec.matrix
    m = values.reshape(nrows, ncols)
    sign = (m[:: max(1, nrows // 1024), :: max(1, ncols // 1024)] >> (lay.width - 1)).astype(np.float64)
    ns = sign.size

    def info_bits(p: np.ndarray, counts: float | np.ndarray) -> float:
        q = np.clip(p, 1e-12, 1 - 1e-12)
        h = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
        return float(np.sum((1.0 - h) * counts))

    gain = info_bits(np.array([sign.mean()]), float(ns))
    if contexts:
        gain = max(gain, info_bits(sign.mean(axis=0), sign.shape[0]),
                   info_bits(sign.mean(axis=1), sign.shape[1]))
    gain *= n / ns
    return gain > max(field.SIGN_GAIN_MIN_BITS, field.SIGN_GAIN_MIN_PER_ELEMENT * n)


@pytest.mark.parametrize("seed", range(12))
def test_sign_decision_from_integer_sums(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sign decision from integer sums equals the float64 means' decision, on both sides
    of the threshold (per-column offsets from none to strong)."""
    rng = np.random.default_rng(seed)
    rows, cols = [(384, 384), (2048, 1536), (64, 4096), (3000, 9)][seed % 4]
    offset = [0.0, 0.01, 0.03][seed // 4 % 3] * rng.normal(0, 1, (1, cols))
    data = (rng.normal(0, 0.02, (rows, cols)) + offset).astype(np.float16).view(np.uint8).reshape(-1)
    spec = TensorSpec("w", "F16", (rows, cols), 0, data.size)
    lay = field.base_layout(spec)
    assert lay is not None
    values = data.view(np.uint16)
    for contexts in (False, True):
        assert field._sign_pays(values, lay, spec, contexts) == _sign_pays_float(values, lay, spec, contexts)
