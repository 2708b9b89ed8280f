"""Hypothesis strategies: tensors of every dtype with arbitrary bit patterns."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from bigsmall.core.dtypes import DTYPES
from bigsmall.core.types import TensorSpec

BYTE_DTYPES = sorted(n for n, d in DTYPES.items() if d.bits % 8 == 0)
SUBBYTE_DTYPES = sorted(n for n, d in DTYPES.items() if d.bits % 8)

shapes = st.one_of(
    st.just(()),  # 0-d
    st.lists(st.integers(0, 40), min_size=1, max_size=3).map(tuple),
    st.tuples(st.integers(1, 300), st.integers(1, 300)),
)

# element bit patterns that matter for floats: NaN payloads, infinities, -0, subnormals
SPECIAL16 = [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFFFF, 0x0001, 0x8001, 0x03FF,
             0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0x0080, 0x007F]
SPECIAL32 = [0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFFFFFFF, 1,
             0x80000001, 0x007FFFFF, 0x00800000]


@st.composite
def tensor_bytes(draw: st.DrawFn, dtypes: list[str] | None = None) -> tuple[TensorSpec, np.ndarray]:
    dtype = draw(st.sampled_from(dtypes or BYTE_DTYPES))
    info = DTYPES[dtype]
    shape = draw(shapes)
    n = math.prod(shape)
    if info.bits % 8:
        if (n * info.bits) % 8:
            shape = shape[:-1] + (shape[-1] + 1,) if shape and shape[-1] % 2 else (2 * max(n, 1),)
            n = math.prod(shape)
            if (n * info.bits) % 8:
                shape, n = (8,), 8
    nbytes = n * info.bits // 8
    kind = draw(st.sampled_from(["random", "gaussian", "special", "const", "few"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "random" or info.itemsize == 0:
        data = rng.integers(0, 256, nbytes, dtype=np.uint8)
    elif kind == "gaussian" and dtype in ("F32", "F16", "BF16", "F64"):
        x = rng.normal(0, draw(st.sampled_from([1e-3, 0.02, 1.0, 1e4])), n)
        if dtype == "BF16":
            data = (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
        else:
            data = x.astype({"F32": np.float32, "F16": np.float16, "F64": np.float64}[dtype]).view(np.uint8)
    elif kind == "special" and info.itemsize in (2, 4):
        pool = SPECIAL16 if info.itemsize == 2 else SPECIAL32
        vals = rng.choice(np.array(pool, dtype=np.uint64), n)
        data = vals.astype({2: np.uint16, 4: np.uint32}[info.itemsize]).view(np.uint8)
    elif kind == "const" and info.itemsize:
        one = rng.integers(0, 256, info.itemsize, dtype=np.uint8)
        data = np.tile(one, n)
    elif info.itemsize:
        table = rng.integers(0, 256, (draw(st.integers(1, 5)), info.itemsize), dtype=np.uint8)
        data = table[rng.integers(0, table.shape[0], n)].reshape(-1)
    else:
        data = rng.integers(0, 256, nbytes, dtype=np.uint8)
    data = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)[:nbytes]
    return TensorSpec("t", dtype, shape, 0, nbytes), data
