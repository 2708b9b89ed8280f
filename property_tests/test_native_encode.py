"""``bigsmall.native._enc`` (C table builders and encoder kernels) against the numba reference.

Why: with the extension built, the codecs call these C ports instead of numba (no compile on a
fresh install, no numba import on a decompress), so each must return exactly what its numba
kernel returns: the same decode tables from the same side information (valid heads of every
dtype and bit pattern, random q-code rows, truncated and garbage bytes, and the errors), and
the same coded bytes, so that a file written with either is the same file. Arguments outside
what the kernels can index are refused with an exception, never a crash.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigsmall.native as native
from bigsmall.codecs import decode_tables, prefix, tables
from bigsmall.codecs.base import get_codec

from .strategies import SUBBYTE_DTYPES, tensor_bytes

E = native.enc_kernels()
pytestmark = pytest.mark.skipif(E is None, reason="native extension not built (or BIGSMALL_NATIVE=0)")

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = ["BF16", "F16", "F32", "F64", "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
          "F8_E8M0", "U8", "I8", "I16", "I32", "BOOL", *SUBBYTE_DTYPES]
CHUNKS = st.sampled_from([1, 7, 64, 4096, 1 << 20])
LAYOUTS = [(8, 3), (8, 0), (5, 2), (4, 3), (2, 3), (1, 0), (3, 1), (5, 7), (8, 4), (4, 8)]


@contextmanager
def _numba() -> Iterator[None]:
    native.use("0")
    try:
        yield
    finally:
        native.use(os.environ.get(native.ENV, "1"))


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
        else:
            assert x == y


def _same_model(raw: np.ndarray, pos: int, nctx: int, eb: int, mb: int, pb: int, mpb: int) -> None:
    ref = prefix.decode_model(raw, pos, nctx, eb, mb, pb, mpb)
    got = E.decode_model(raw, pos, nctx, eb, mb, pb, mpb)
    assert got[3:] == ref[3:]
    t1, dirs, t2 = ref[:3]
    if ref[4] == 0:  # numba leaves dirs undefined where t1 is not LONG
        assert np.array_equal(got[0], t1) and np.array_equal(got[2], t2)
        long = (t1 >> prefix.SYM_BITS) == prefix.LONG
        assert got[1].shape == dirs.shape and np.array_equal(got[1][long], dirs[long])
    elif ref[4] != prefix.NO_CODE:
        _same(got[:3], ref[:3])


def _all_tables(raw: bytes, nctx: int, eb: int, mb: int, pb: int, mpb: int, pos: int = 0) -> None:
    r = np.frombuffer(raw, np.uint8)
    for compact in (False, True):
        _same(E.build_tables(r, pos, nctx, eb, mb, pb, mpb, compact),
              decode_tables.build_tables(r, pos, nctx, eb, mb, pb, mpb, compact))
    if eb + mb <= prefix.SYM_BITS:  # fieldp's domain (prepare refuses wider joint symbols)
        _same_model(r, pos, nctx, eb, mb, pb, mpb)


@st.composite
def code_rows(draw: st.DrawFn) -> tuple[bytes, int, int, int, int, int]:
    """Side information of random q-code rows (as ``tables.pack_rows`` writes them): sparse,
    dense, tiny weights that clamp to 1, single symbols, empty rows; maybe cut short."""
    eb, mb = draw(st.sampled_from(LAYOUTS))
    pb, mpb = draw(st.sampled_from([(12, 10), (8, 8), (12, 12), (10, 9), (3, 2), (1, 0)]))
    nctx = draw(st.integers(0, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def rows(n: int, alpha: int) -> np.ndarray:
        q = np.zeros((n, alpha), np.uint8)
        for r in range(n):
            kind = rng.integers(0, 5)
            k = int(rng.integers(1, alpha + 1))
            syms = rng.choice(alpha, size=k, replace=False)
            if kind == 1:
                q[r, syms] = rng.integers(1, 256, size=k)
            elif kind == 2:
                q[r, syms] = rng.integers(1, 20, size=k)
                q[r, syms[0]] = 255
            elif kind == 3:
                q[r, syms[0]] = rng.integers(1, 256)
            elif kind == 4:
                q[r, syms] = rng.integers(150, 256, size=k)
        return q

    raw = tables.pack_rows(rows(nctx, 1 << eb))
    if mb:
        raw += tables.pack_rows(rows(1 << eb, 1 << mb))
    cut = draw(st.sampled_from(["whole", "cut", "garbage"]))
    if cut == "cut":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif cut == "garbage":
        raw = rng.integers(0, 256, draw(st.integers(0, 600)), dtype=np.uint8).tobytes()
    return raw, nctx, eb, mb, pb, mpb


@SETTINGS
@given(case=code_rows(), pos=st.sampled_from([0, 0, 1, 5, 10**6]))
def test_table_builders_match_numba(case, pos):
    raw, nctx, eb, mb, pb, mpb = case
    _all_tables(raw, nctx, eb, mb, pb, mpb, pos)


@SETTINGS
@given(td=tensor_bytes(dtypes=DTYPES), codec_id=st.sampled_from(["field", "field8", "fieldp"]),
       chunk=CHUNKS, level=st.sampled_from(["default", "fast"]))
def test_codecs_write_and_prepare_as_numba(td, codec_id, chunk, level):
    """Whole codecs: the same plan (head, chunks, params) with the C kernels as with numba,
    and ``prepare`` of that head builds the same decode state (every table)."""
    spec, data = td
    codec = get_codec(codec_id)
    with _numba():
        ref = codec.encode(data, spec, chunk, level=level)
    got = codec.encode(data, spec, chunk, level=level)
    assert (got is None) == (ref is None)
    if ref is None or got is None:
        return
    assert got.head == ref.head and got.chunks == ref.chunks and got.params == ref.params
    with _numba():
        s_ref = codec.prepare(spec, ref.params, ref.head)
    s_got = codec.prepare(spec, got.params, got.head)
    for name in ("tsym", "tfc", "msym", "mfc", "t1", "t2", "rowctx", "rshift"):
        if hasattr(s_ref, name):
            a, b = getattr(s_ref, name), getattr(s_got, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), name
    if hasattr(s_ref, "dirs"):
        long = (s_ref.t1 >> prefix.SYM_BITS) == prefix.LONG
        assert np.array_equal(s_ref.dirs[long], s_got.dirs[long])


def test_constants_match_numba_modules():
    assert (E.L1, E.NO_CODE) == (prefix.L1, prefix.NO_CODE)


@pytest.mark.parametrize("args", [
    (np.zeros(4, np.uint8), -1, 1, 8, 3, 12, 10),  # negative position
    (np.zeros(4, np.uint8), 0, 1, 9, 3, 12, 10),  # eb > 8: rows past the scratch
    (np.zeros(4, np.uint8), 0, 1, 8, -1, 12, 10),
    (np.zeros(4, np.uint8), 0, 5000, 8, 3, 12, 10),  # contexts no head can have
    (np.zeros(4, np.uint8), 0, 1, 8, 3, 40, 10),  # table of 2**40 slots
])
def test_refuses_arguments_it_cannot_index(args):
    with pytest.raises(ValueError):
        E.decode_model(*args)
    with pytest.raises(ValueError):
        E.build_tables(*args, True)


def test_refuses_wrong_arrays():
    with pytest.raises(TypeError):
        E.decode_model(np.zeros(4, np.float32), 0, 1, 8, 3, 12, 10)
    with pytest.raises(TypeError):
        E.build_tables(np.zeros((2, 2), np.uint8), 0, 1, 8, 3, 12, 10, True)


@pytest.mark.parametrize("coder", ["prefix", "rans"])
def test_decompress_and_load_import_no_numba(tmp_path, coder):
    """With the C kernels serving every codec of a file, restoring it imports no numba: no
    compile on a fresh install, and ~0.3-0.5 s less of a cold start (README.md, "_enc")."""
    import subprocess
    import sys

    import bigsmall
    from bigsmall.testing.synthetic import write_safetensors

    rng = np.random.default_rng(0)
    a = (rng.standard_normal((96, 80)) * 0.02).astype(np.float32)
    bf16 = (a.view(np.uint32) >> 16).astype(np.uint16)
    src = write_safetensors(tmp_path / "m.safetensors", {
        "w": ("BF16", (96, 80), bf16.tobytes()), "f": ("F32", (96, 80), a.tobytes()),
        "h": ("F16", (96, 80), a.astype(np.float16).tobytes())})
    bs = tmp_path / "m.bs"
    bigsmall.compress(src, bs, coder=coder)
    env = dict(os.environ, BIGSMALL_NATIVE="all")
    probe = (
        "import sys, bigsmall\n"
        "from bigsmall.cli import main\n"
        f"assert main(['decompress', {str(bs)!r}, '-o', {str(tmp_path / 'out.st')!r}, '-f', '--no-progress']) == 0\n"
        f"bigsmall.load({str(bs)!r})\n"
        "print('numba' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                       check=True)
    assert (tmp_path / "out.st").read_bytes() == src.read_bytes()
    assert r.stdout.strip().splitlines()[-1] == "False", r.stderr[-2000:]


# ---- the encoder's counting and table kernels, one by one (whole codecs: above)

INT_DTYPES = st.sampled_from([np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32,
                              np.uint64, np.int64])


@st.composite
def int_arrays(draw: st.DrawFn, max_n: int = 3000) -> np.ndarray:
    dt = np.dtype(draw(INT_DTYPES))
    n = draw(st.integers(0, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["any", "few", "low"]))
    raw = rng.integers(0, 256, n * dt.itemsize, dtype=np.uint8).view(dt)
    if kind == "few":
        raw = rng.choice(raw[:7] if n else raw, n) if n else raw
    elif kind == "low":
        raw = (raw.view(np.uint8)[::dt.itemsize] & 15).astype(dt)
    return np.ascontiguousarray(raw)


def _both(fn: Any, *args: Any) -> tuple[Any, Any]:
    got = fn(*args)
    with _numba():
        ref = fn(*args)
    return got, ref


def _eq(got: Any, ref: Any) -> None:
    if isinstance(ref, tuple):
        assert isinstance(got, tuple) and len(got) == len(ref)
        for g, r in zip(got, ref, strict=True):
            _eq(g, r)
    elif isinstance(ref, np.ndarray):
        assert got.dtype == ref.dtype and got.shape == ref.shape and np.array_equal(got, ref)
    else:
        assert type(got) is type(ref) or (isinstance(got, float) and isinstance(ref, float))
        assert got == ref or (got != got and ref != ref)
        if isinstance(ref, float):
            assert np.float64(got).tobytes() == np.float64(ref).tobytes()


@SETTINGS
@given(v=int_arrays(), shift=st.integers(0, 63), bits=st.integers(0, 16),
       limit=st.integers(0, 300), p=st.integers(0, 63), ncols=st.integers(1, 50))
def test_counting_kernels_match_numba(v, shift, bits, limit, p, ncols):
    from bigsmall.codecs import counting

    _eq(*_both(counting._bit_field, v, shift, bits))
    _eq(*_both(counting._field_counts, v, shift, min(bits, 12)))
    _eq(*_both(counting._more_distinct_than, v, limit))
    _eq(*_both(counting._row_low_zeros, v, p, v.shape[0] // ncols, ncols))


@SETTINGS
@given(sym=int_arrays(max_n=2000), kr=st.integers(1, 8), kc=st.integers(1, 8),
       alpha=st.integers(1, 300), ncols=st.integers(1, 60), seed=st.integers(0, 2**32 - 1))
def test_ctx_table_matches_numba(sym, kr, kc, alpha, ncols, seed):
    from bigsmall.codecs import counting

    rng = np.random.default_rng(seed)
    nrows = sym.shape[0] // ncols
    s = (sym[: nrows * ncols].view(np.uint8)[: nrows * ncols].astype(np.int64) % alpha).astype(np.uint16)
    s = s.reshape(nrows, ncols)
    rows = rng.integers(0, kr, nrows).astype(np.int64)
    cols = rng.integers(0, kc, ncols).astype(np.int64)
    _eq(*_both(counting._ctx_table, s, rows, cols, kc, kr * kc, alpha))
    _eq(*_both(counting._ctx_table, s[::2, ::3], rows[::2], cols[::3], kc, kr * kc, alpha))


@st.composite
def count_tables(draw: st.DrawFn) -> np.ndarray:
    nr = draw(st.integers(0, 20))
    a = draw(st.sampled_from([1, 2, 8, 32, 256]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([3, 1000, 10**9, 2**62]))
    c = rng.integers(0, scale, (nr, a), dtype=np.int64)
    c[rng.random((nr, a)) < draw(st.floats(0, 1))] = 0
    return c


@SETTINGS
@given(counts=count_tables(), bits=st.integers(1, 12), eb_mb=st.sampled_from(LAYOUTS),
       seed=st.integers(0, 2**32 - 1))
def test_table_kernels_match_numba(counts, bits, eb_mb, seed):
    from bigsmall.codecs import enc_tables

    q = enc_tables.quantize_counts(counts)
    with _numba():
        assert np.array_equal(q, enc_tables.quantize_counts(counts))
    _eq(*_both(enc_tables._quantize, counts, enc_tables._LOGW, enc_tables._TOP))
    if q.shape[0]:  # numba's buffer is np.empty past the used length: compare what is used
        (gb, gn), (rb, rn) = _both(enc_tables._pack, q)
        assert gn == rn and gb.shape == rb.shape and gb[:gn].tobytes() == rb[:rn].tobytes()
    _eq(*_both(enc_tables._normalize_rows, q, bits))
    # joint code and size estimates from normalised tables of a layout
    eb, mb = eb_mb
    rng = np.random.default_rng(seed)
    nctx = int(rng.integers(1, 9))
    qe = enc_tables.quantize_counts(rng.integers(0, 50, (nctx, 1 << eb)) ** 3)
    qe[:, 0] |= 1
    freq = enc_tables.normalize_codes(qe, 12)
    qm = enc_tables.quantize_counts(rng.integers(0, 50, (max(1, 1 << eb), 1 << mb)) ** 2)
    qm[:, 0] |= 1
    mfreq = enc_tables.normalize_codes(qm, 10)
    mrow = rng.integers(0, mfreq.shape[0], 1 << eb).astype(np.int64)
    got, ref = _both(enc_tables.joint_code, freq, mfreq, mrow, eb, mb)
    _eq(got, ref)
    w, lens = ref[0], ref[1]
    cnt = rng.integers(0, 1000, w.shape) * (rng.random(w.shape) < 0.5)
    _eq(*_both(enc_tables.estimate_bits, cnt, w, lens, 12))
    _eq(*_both(enc_tables.estimate_bits, cnt * (w > 0), w, lens, 12))


@SETTINGS
@given(sym=int_arrays(max_n=2000), ncols=st.integers(1, 60), alpha=st.integers(1, 300),
       k=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_line_kernels_match_numba(sym, ncols, alpha, k, seed):
    """``_symbol_counts``, ``_lookup``, ``_line_counts``, ``_sum_lines`` (the clustering
    search's counting), on unsigned matrices (signed ones go to numba), strided ones too."""
    from bigsmall.codecs import counting

    rng = np.random.default_rng(seed)
    nrows = sym.shape[0] // ncols
    u = sym.view(np.dtype(f"u{sym.dtype.itemsize}"))[: nrows * ncols].reshape(nrows, ncols)
    small = (u.astype(np.uint64) % np.uint64(alpha)).astype(u.dtype if alpha <= 256 ** u.dtype.itemsize else np.uint64)
    for m in (u, small, small[::2, ::3]):
        _eq(*_both(counting._symbol_counts, m, alpha))
    for m in (small, small[::3, ::2]):
        for axis in (0, 1):
            _eq(*_both(counting._line_counts, m, axis, alpha))
    table = rng.integers(0, 256, alpha).astype(np.uint8)
    _eq(*_both(counting._lookup, small, table))
    counts = rng.integers(0, 1000, (nrows, alpha))
    _eq(*_both(counting._sum_lines, counts, rng.integers(0, k, nrows), k))
