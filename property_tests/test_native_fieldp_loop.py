"""The ``fieldp`` C kernel's fast loop (issue 17) against the numba reference, byte for byte.

Why a file of its own: the loop that decodes two groups of units from one load per lane
(``DP_PAIR``) and the re-encoded first-level table (``dp_fast_table``) only run on calls that
decode at least four units per table entry (thousands of units per context), larger than most
tensors ``test_native.py`` draws. Here: whole bf16 / fp16 tensors of 8-200 thousand elements
through the codec, and random tables with random bit streams straight into the kernel (codes
of every length the 4-bit field allows, empty contexts, second-level tables, row shifts), so
that corrupt streams stop at the same unit with the same partial output.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigsmall.codecs.base import get_codec
from bigsmall.core.types import TensorSpec

from .strategies import SPECIAL16
from .test_native import ISAS, K, _same_everywhere

pytestmark = pytest.mark.skipif(K is None, reason="native extension not built (no C compiler)")

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# (p, eb, mb) of 16-bit units: the specialised bf16 / fp16 builds and a generic one
LAYOUTS16 = [(4, 8, 3), (5, 8, 2), (7, 8, 0), (7, 5, 3), (10, 5, 0), (6, 5, 2), (3, 8, 2),
             (7, 6, 3), (8, 6, 2), (10, 6, 0), (5, 6, 5), (4, 8, 4)]  # sign coded: p + c = 16


def _values_of(dtype: str, x: np.ndarray) -> np.ndarray:
    if dtype == "BF16":
        return (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return x.astype(np.float16).view(np.uint16)


def _values(rng: np.random.Generator, dtype: str, n: int, kind: str) -> np.ndarray:
    if kind == "gaussian":
        return _values_of(dtype, rng.normal(0, float(rng.choice([1e-3, 0.02, 1.0])), n))
    if kind == "special":
        return rng.choice(np.array(SPECIAL16, np.uint16), n)
    if kind == "columns":  # columns with offsets: their signs are predictable (fp16's
        x = rng.normal(0, 0.3, n).reshape(-1, 1024) + rng.choice([-1.0, 1.0], 1024)  # sign field)
        return _values_of(dtype, x.reshape(-1))
    if kind == "mixed":  # gaussian with 1 % arbitrary bit patterns (long codes, rare contexts)
        v = _values(rng, dtype, n, "gaussian")
        hit = rng.random(n) < 0.01
        v[hit] = rng.integers(0, 1 << 16, int(hit.sum()), dtype=np.uint16)
        return v
    return rng.integers(0, 1 << 16, n, dtype=np.uint16)


@SETTINGS
@given(dtype=st.sampled_from(["BF16", "F16"]), rows=st.integers(8, 400),
       cols=st.sampled_from([1024, 2048]),
       kind=st.sampled_from(["gaussian", "special", "mixed", "random", "columns"]),
       chunk=st.sampled_from([4096, 12289, 65536, 1 << 20]), seed=st.integers(0, 2**32 - 1))
def test_large_tensors_decode_as_numba(dtype, rows, cols, kind, chunk, seed):
    rng = np.random.default_rng(seed)
    n = rows * cols
    data = _values(rng, dtype, n, kind).view(np.uint8)
    spec = TensorSpec("t", dtype, (rows, cols), 0, data.nbytes)
    plan = get_codec("fieldp").encode(data, spec, chunk)
    assert plan is not None
    ref = _same_everywhere(spec, "fieldp", plan.params, plan.head + b"".join(plan.chunks),
                           len(plan.head), tuple(len(c) for c in plan.chunks))
    assert all(r == ("ok", data.tobytes()) for r in ref)


@pytest.mark.parametrize("rows", [64, 301])
def test_sign_coded_fp16_decodes_as_numba(rows):
    """fp16 whose columns predict their signs codes ``sign | exponent`` (layout [16, 10 - mb,
    6, mb]: the coded field reaches bit 15, so the fast table flags its escapes in bit 4)."""
    rng = np.random.default_rng(rows)
    data = _values(rng, "F16", rows * 1024, "columns").view(np.uint8)
    spec = TensorSpec("t", "F16", (rows, 1024), 0, data.nbytes)
    plan = get_codec("fieldp").encode(data, spec, 1 << 20)
    assert plan is not None and plan.params["layout"][2] == 6  # the sign is coded
    ref = _same_everywhere(spec, "fieldp", plan.params, plan.head + b"".join(plan.chunks),
                           len(plan.head), tuple(len(c) for c in plan.chunks))
    assert all(r == ("ok", data.tobytes()) for r in ref)


def _tables(rng: np.random.Generator, nctx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random first-level entries (any symbol, any length field 0-13), some empty (14) and
    some second-level (15) entries with ``dirs`` inside ``t2``; random second-level entries."""
    n1 = nctx << 10
    t1 = rng.integers(0, 0xE000, n1).astype(np.uint16)
    short = rng.random(n1) < 0.9  # mostly codes of at most 10 bits, as real tables
    t1[short] = (t1[short] & 0x0FFF) | (rng.integers(0, 11, int(short.sum())) << 12).astype(np.uint16)
    t2 = rng.integers(0, 1 << 16, int(rng.integers(1, 300))).astype(np.uint16)
    dirs = np.zeros(n1, np.int64)
    special = rng.random(n1)
    empty = special < 0.002
    t1[empty] = 0xE000 | rng.integers(0, 0x1000, int(empty.sum())).astype(np.uint16)
    for i in np.flatnonzero((special >= 0.002) & (special < 0.02)):
        sub = int(rng.integers(0, 6))
        if (1 << sub) > t2.shape[0]:
            continue
        off = int(rng.integers(0, t2.shape[0] - (1 << sub) + 1))
        t1[i] = 0xF000 | int(rng.integers(0, 0x1000))
        dirs[i] = (off << 4) | sub
    return t1, dirs, t2


def _blob(rng: np.random.Generator, nchunks: int, per: int) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for _ in range(nchunks):
        lanes = [int(x) for x in rng.integers(0, per, 4)]
        head = b"".join(x.to_bytes(4, "little") for x in lanes)
        parts.append(head + rng.integers(0, 256, sum(lanes), dtype=np.uint8).tobytes())
    offs = np.cumsum([0, *map(len, parts)]).astype(np.int64)
    return np.frombuffer(b"".join(parts), np.uint8), offs


@pytest.mark.parametrize("seed", range(24))
def test_random_streams_decode_as_numba(seed):
    """Random tables and streams into ``decodep_chunks``: per ISA the same return value and
    the same output bytes (complete units, and where a corrupt stream stopped)."""
    from bigsmall.codecs._generated.decodep import decode_chunks

    rng = np.random.default_rng(seed)
    p, eb, mb = LAYOUTS16[seed % len(LAYOUTS16)]
    kr, kc = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    ncols = int(rng.choice([1024, 1027, 4096]))
    nrows = int(rng.integers(4, 24))
    n = nrows * ncols
    per = int(rng.choice([n, 4096, 8192 + 4]))
    nchunks = -(-n // per)
    t1, dirs, t2 = _tables(rng, kr * kc)
    rowctx = (rng.integers(0, kr, nrows) * kc).astype(np.int64)
    colsh = (rng.integers(0, kc, ncols) << 10).astype(np.int64)
    rbits = 16 - eb - mb
    rshift = np.zeros(nrows, np.int64)
    if seed % 3 == 0:
        rshift = rng.integers(0, min(p, rbits) + 1, nrows).astype(np.int64)
    blob, offs = _blob(rng, nchunks, 3 * per // 2)
    args = (ncols, rowctx, colsh, t1, dirs, t2, p, eb, mb, rshift, blob, offs)
    saved = K.isa()
    try:
        for first, step in ((0, 1), (1, 2)):
            ref = np.full(n, 0xA5A5, np.uint16)
            rc = decode_chunks(ref, first, step, per, *args)
            for isa in ISAS:
                K._set_isa(isa)
                got = np.full(n, 0xA5A5, np.uint16)
                assert K.decodep_chunks(got, first, step, per, *args) == rc, (isa, first)
                assert np.array_equal(got, ref), (isa, first, "output differs")
    finally:
        K._set_isa(saved)
