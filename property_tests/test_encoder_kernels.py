"""The fast encoder kernels write exactly the bytes of the reference ones.

``rans.encode_chunk`` (lane by lane, hardware division) is the reference; ``encode_chunk_fast``
(lanes in lock-step, multiply-and-shift division) must match it byte for byte on any input,
because the format is pinned by the bytes the encoder writes. Likewise the context-modelling
kernels must count and choose exactly as their plain loops do, so the clustering, and the file,
stay the same.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigsmall.codecs import context, rans, tables
from bigsmall.codecs.rans_encode import encode_chunk_fast

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tables(rng: np.random.Generator, rows: int, alpha: int, pbits: int, present: int,
            skew: float) -> tuple[np.ndarray, np.ndarray]:
    """Random normalised tables; row r has ``present`` symbols (at least one), skewed counts."""
    counts = np.zeros((rows, alpha), np.int64)
    for r in range(rows):
        syms = rng.choice(alpha, size=min(present, alpha), replace=False)
        counts[r, syms] = (np.minimum(rng.pareto(skew, syms.size), 1e6) * 1000).astype(np.int64) + 1
    freq = rans.normalize_weights(tables.dequantize(tables.quantize_counts(counts)), pbits)
    return freq, rans.cumulative(freq)


def _draw_values(rng: np.random.Generator, freq: np.ndarray, mfreq: np.ndarray, mrow: np.ndarray,
                 n: int, width: int, p: int, eb: int, mb: int, rowctx: np.ndarray,
                 colctx: np.ndarray, k0: int, ncols: int) -> np.ndarray:
    """Values whose coded fields only use symbols present in their context's table."""
    dt = {8: np.uint8, 16: np.uint16, 32: np.uint32}[width]
    v = rng.integers(0, 1 << width, n, dtype=np.uint64)
    k = np.arange(k0, k0 + n)
    ctx = rowctx[k // ncols] + colctx[k % ncols]
    out = np.empty(n, np.uint64)
    for t in range(n):
        e = rng.choice(np.flatnonzero(freq[ctx[t]]))
        field = np.uint64(e)
        if mb:
            m = rng.choice(np.flatnonzero(mfreq[mrow[e]]))
            field = (field << np.uint64(mb)) | np.uint64(m)
        keep = ~(((np.uint64(1) << np.uint64(eb + mb)) - np.uint64(1)) << np.uint64(p))
        out[t] = (v[t] & keep) | (field << np.uint64(p))
    return out.astype(dt)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 257, 1000]),
    kind=st.sampled_from([(16, 7, 8, 0), (16, 4, 8, 3), (16, 10, 5, 0), (16, 8, 5, 2),
                          (32, 23, 8, 0), (32, 20, 8, 3), (8, 0, 8, 0), (8, 0, 4, 3)]),
    ncols=st.sampled_from([1, 3, 16, 97]),
    grid=st.sampled_from([(1, 1), (2, 1), (1, 4), (4, 8)]),
    present=st.sampled_from([1, 2, 5, 40]),
    pbits=st.sampled_from([8, 12]),
    skew=st.sampled_from([0.3, 1.0, 5.0]),
    shifted=st.booleans(),
)
def test_fast_encoder_matches_reference(seed, n, kind, ncols, grid, present, pbits, skew, shifted):
    width, p, eb, mb = kind
    rng = np.random.default_rng(seed)
    kr, kc = grid
    k0 = int(rng.integers(0, 5)) * ncols + int(rng.integers(0, ncols))
    nrows = (k0 + n) // ncols + 1
    rowctx = rng.integers(0, kr, nrows).astype(np.int64) * kc
    colctx = rng.integers(0, kc, ncols).astype(np.int64)
    freq, cum = _tables(rng, kr * kc, 1 << eb, pbits, present, skew)
    if mb:
        mfreq, mcum = _tables(rng, (1 << eb) + 1, 1 << mb, 10, present, skew)
        mfreq[-1] = 0
        mcum[-1] = 0
        mrow = rng.permutation(1 << eb).astype(np.int64)
    else:
        mfreq = mcum = np.zeros((1, 1), np.int64)
        mrow = np.zeros(1 << eb, np.int64)
    values = _draw_values(rng, freq, mfreq, mrow, n, width, p, eb, mb, rowctx, colctx, k0, ncols)
    rshift = np.zeros(nrows, np.int64)
    if shifted and p:
        rshift = rng.integers(0, p + 1, nrows).astype(np.int64)
        k = np.arange(k0, k0 + n)
        low = (np.uint64(1) << rshift[k // ncols].astype(np.uint64)) - np.uint64(1)
        values = (values.astype(np.uint64) & ~low).astype(values.dtype)
    ref = rans.encode_chunk(values, k0, ncols, rowctx, colctx, freq, cum, pbits, mfreq, mcum,
                            mrow, 10, p, eb, mb, rshift)
    etab = rans.encoder_table(freq, cum, pbits)
    mtab = rans.encoder_table(mfreq, mcum, 10)
    fast = encode_chunk_fast(values, k0, ncols, rowctx, colctx, etab, freq.shape[1], mtab,
                             mrow, mfreq.shape[1], p, eb, mb, rshift)
    assert fast.tobytes() == ref.tobytes()


def test_encoder_table_division_is_exact():
    """The multiply-and-shift quotient equals ``x // f`` at the edges of the state range."""
    f = np.arange(1, 4097, dtype=np.int64)
    tab = rans.encoder_table(f[None, :], np.zeros((1, f.size), np.int64), 12)
    xs = np.array([0, 1, 2, 4095, 4096, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1],
                  dtype=np.uint64)
    xs = np.concatenate([xs, np.random.default_rng(0).integers(0, 2**32, 2000, dtype=np.uint64)])
    magic, shift = tab[:, 1], tab[:, 2]
    for x in xs:
        q = (x + ((x * magic) >> np.uint64(32))) >> shift
        assert (q == x // f.astype(np.uint64)).all(), int(x)


def _hist_ref(sym, other, k_other, alpha):
    out = np.zeros((sym.shape[0], k_other * alpha))
    for i in range(sym.shape[0]):
        np.add.at(out[i], other * alpha + sym[i], 1.0)
    return out


def _argmin_ref(hist, lengths):
    out = np.zeros(hist.shape[0], np.int64)
    for i in range(hist.shape[0]):
        best = np.inf
        for c in range(lengths.shape[0]):
            s = 0.0
            for b in range(hist.shape[1]):
                if hist[i, b] != 0.0:
                    s += hist[i, b] * lengths[c, b]
            if s < best:
                best, out[i] = s, c
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nr=st.integers(1, 40), nc=st.integers(1, 70),
       k=st.integers(1, 8), alpha=st.sampled_from([1, 3, 40]))
def test_context_kernels_match_plain_loops(seed, nr, nc, k, alpha):
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, alpha, (nr, nc)).astype(np.uint8)
    other = rng.integers(0, k, nc).astype(np.int64)
    h = context._hist(sym, other, k, alpha)
    assert np.array_equal(h, _hist_ref(sym, other, k, alpha))
    lengths = context._code_lengths(rng.integers(0, 50, (k, k * alpha)))
    assert np.array_equal(context._argmin_cost(h, lengths), _argmin_ref(h, lengths))
    rows = rng.integers(0, k, nr).astype(np.int64)
    t = context._ctx_table(sym, rows, other, k, k * k, alpha)
    ref = np.zeros((k * k, alpha), np.int64)
    np.add.at(ref, (rows[:, None] * k + other[None, :], sym), 1)
    assert np.array_equal(t, ref)


@settings(max_examples=300, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 300), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1))
def test_pack_rows_layout_and_inverse(rows, cols, density, seed):
    """``pack_rows`` writes, per row, (u16 first present, u16 span, span codes) — the layout the
    decoder reads — and ``unpack_rows`` gives the codes back exactly, empty rows included."""
    rng = np.random.default_rng(seed)
    q = ((rng.random((rows, cols)) < density) * rng.integers(1, 256, (rows, cols))).astype(np.uint8)
    packed = tables.pack_rows(q)
    expect = bytearray()
    for row in q:
        nz = np.flatnonzero(row)
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
        expect += lo.to_bytes(2, "little") + (hi - lo).to_bytes(2, "little") + row[lo:hi].tobytes()
    assert packed == bytes(expect)
    back, pos = tables.unpack_rows(packed, 0, rows, cols)
    assert pos == len(packed)
    assert np.array_equal(back, q)


def _choose_every_row(sym: np.ndarray, alpha: int, max_contexts: int = 64) -> context.Clustering:
    """``context.choose`` as it was before candidates skipped rows: every candidate's row map
    assigned on the whole matrix, then costed. The reference the shortcut must equal."""
    nr, nc = sym.shape
    best = context.trivial(nr, nc)
    if sym.size < 4096:
        return best
    counts = np.bincount(sym.ravel(), minlength=alpha)
    present = np.flatnonzero(counts)
    remap = np.zeros(alpha, np.uint8)
    remap[present] = np.arange(present.size)
    sym = remap[sym]
    alpha = max(int(present.size), 1)
    cost_step = max(1, sym.size // context.COST_SAMPLE)
    best_cost = context.context_cost_bits(sym, alpha, best, cost_step)
    rstep = max(1, nr // context.SAMPLE_SIDE)
    cstep = max(1, nc // context.SAMPLE_SIDE)
    sample = np.ascontiguousarray(sym[::rstep, ::cstep], dtype=np.uint8)
    tried: set[tuple[int, int]] = set()
    kr0, kc0 = 1, 1
    while True:
        improved = False
        for kr, kc in ((kr0 * 2, kc0), (kr0, kc0 * 2)):
            if (kr, kc) in tried or kr * kc > max_contexts or kr > nr or kc > nc or max(kr, kc) > 8:
                continue
            tried.add((kr, kc))
            srows, scols = context._fit(sample, alpha, kr, kc)
            tab = context._ctx_table(sample, srows, scols, kc, kr * kc, alpha)
            if kc == 1:
                cols = np.zeros(nc, np.int64)
            elif cstep == 1:
                cols = scols
            else:
                lengths = context._code_lengths(
                    tab.reshape(kr, kc, alpha).transpose(1, 0, 2).reshape(kc, kr * alpha))
                cols = context._assign(np.ascontiguousarray(sym[::rstep].T), alpha, srows, kr,
                                       lengths)
            if kr == 1:
                rows = np.zeros(nr, np.int64)
            elif rstep == 1 and cstep == 1:
                rows = srows
            else:
                rows = context._assign(sym[:, ::cstep], alpha, cols[::cstep], kc,
                                       context._code_lengths(tab.reshape(kr, kc * alpha)))
            cl = context.Clustering(kr, kc, rows.astype(np.uint8), cols.astype(np.uint8))
            cost = context.context_cost_bits(sym, alpha, cl, cost_step)
            if cost < best_cost:
                best, best_cost, improved = cl, cost, True
        if not improved:
            return best
        kr0, kc0 = best.kr, best.kc


@given(st.integers(0, 2**32 - 1), st.integers(40, 300), st.integers(40, 300),
       st.sampled_from([(16, 256), (64, 1024)]))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_choose_assigns_rows_as_if_every_candidate_had_all(seed: int, nr: int, nc: int,
                                                           sizes: tuple[int, int]) -> None:
    """Candidates assign only the rows their cost reads and the winner the rest: the same
    clustering as assigning every row of every candidate (small sample and cost sizes, so
    that the row and cost strides exceed 1 on small matrices)."""
    side, cost_sample = sizes
    rng = np.random.default_rng(seed)
    scale = rng.normal(0, 1.0, (nr, 1)) + rng.normal(0, 0.7, (1, nc))
    sym = np.clip(np.round(rng.normal(8, 1.5, (nr, nc)) + scale), 0, 31).astype(np.int64)
    old = (context.SAMPLE_SIDE, context.COST_SAMPLE)
    context.SAMPLE_SIDE, context.COST_SAMPLE = side, cost_sample
    try:
        got = context.choose(sym, 32)
        want = _choose_every_row(sym, 32)
    finally:
        context.SAMPLE_SIDE, context.COST_SAMPLE = old
    assert (got.kr, got.kc) == (want.kr, want.kc)
    assert np.array_equal(got.row_map, want.row_map)
    assert np.array_equal(got.col_map, want.col_map)


# The compiled cost code must produce numpy's float64 bits: the encoder compares costs, so one
# ulp of difference can flip a choice and change the file (the golden vectors pin its bytes).

def _entropy_bits_numpy(counts: np.ndarray) -> float:
    c = counts[counts > 0].astype(np.float64)
    if c.size == 0:
        return 0.0
    return float(-(c * np.log2(c / c.sum())).sum())


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.one_of(st.integers(0, 300), st.integers(300, 20000)),
       scale=st.floats(-30, 30))
def test_pairwise_sum_is_numpys_sum(seed, n, scale):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n) * np.exp(rng.normal(0.0, abs(scale) + 1e-9, n)) * 2.0**scale
    lo = int(rng.integers(0, 5))
    padded = np.concatenate([rng.normal(size=lo), a])
    got = 0.0 + context._pairwise_sum(padded, lo, n)
    assert np.array_equal(np.float64(got), a.sum()), (got, a.sum())


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 64), w=st.integers(1, 400),
       density=st.floats(0.0, 1.0), big=st.booleans(), floats=st.booleans())
def test_cost_kernels_are_numpys_floats(seed, k, w, density, big, floats):
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 10**9 if big else 50, (k, w)) * (rng.random((k, w)) < density)
    if floats:
        table = table.astype(np.float64)
    t = table.astype(np.float64) + 0.05
    q = t / t.sum(axis=-1, keepdims=True)  # numpy's pairwise row sums: the order that matters
    # log2 itself: the C library's (numba calls it; so does ``math.log2``). numpy >= 2.4 has its
    # own SIMD log2 on AVX-512 machines that differs by one ulp in ~0.1 % of values, so numpy's
    # log2 is no longer a portable reference; the golden vectors pin the encoder's bytes.
    ref = -np.vectorize(math.log2, otypes=[np.float64])(q) if q.size else -np.log2(q)
    assert np.array_equal(context._code_lengths(table), ref)
    # a non-contiguous view codes as its copy
    assert np.array_equal(context._code_lengths(table.T), context._code_lengths(table.T.copy()))
    ints = table.astype(np.int64)
    ent, present = context._entropy_rows(ints)
    assert ent == sum(_entropy_bits_numpy(r) for r in ints)
    assert present == int((ints > 0).sum())


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nr=st.integers(1, 200), nc=st.integers(1, 200),
       k=st.integers(2, 8), alpha=st.sampled_from([2, 3, 17, 255]), axis=st.sampled_from([0, 1]))
def test_start_maps_are_numpys_quantiles(seed, nr, nc, k, alpha, axis):
    rng = np.random.default_rng(seed)
    sym = (rng.integers(0, alpha, (nr, nc)) * (rng.random((nr, nc)) < rng.random())).astype(np.uint8)
    means = sym.mean(axis=axis)
    assert np.array_equal(context._line_means(sym, axis), means)
    qs = np.linspace(0.0, 1.0, k + 1)[1:-1]
    assert np.array_equal(context._quantiles(means, qs), np.quantile(means, qs))
    assert np.array_equal(context._init_map(means, k), np.searchsorted(np.quantile(means, qs), means))
    noisy = means + rng.normal(size=means.size) * 10.0 ** rng.integers(-12, 3)
    assert np.array_equal(context._quantiles(noisy, qs), np.quantile(noisy, qs))


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 40), alpha=st.sampled_from([1, 2, 8, 32, 256]),
       density=st.floats(0.0, 1.0), scale=st.sampled_from([10, 10**4, 10**9, 2**60]),
       bits=st.sampled_from([8, 10, 12]))
def test_encoder_tables_match_numpy_reference(seed, rows, alpha, density, scale, bits):
    from bigsmall.codecs import enc_tables

    rng = np.random.default_rng(seed)
    counts = rng.integers(0, scale, (rows, alpha), dtype=np.int64) * (rng.random((rows, alpha)) < density)
    q = enc_tables.quantize_counts(counts)
    assert np.array_equal(q, tables.quantize_counts(counts))
    assert enc_tables.pack_rows(q) == tables.pack_rows(q)
    ref = rans.normalize_weights(tables.dequantize(q), bits)  # alpha <= 2**bits: no error
    assert np.array_equal(enc_tables.normalize_codes(q, bits), ref)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nrows=st.integers(1, 30), ncols=st.integers(1, 40),
       width=st.sampled_from([16, 32]), p=st.integers(1, 23), zeros=st.integers(0, 24))
def test_row_low_zeros_and_distinct_counts(seed, nrows, ncols, width, p, zeros):
    rng = np.random.default_rng(seed)
    dt = np.uint16 if width == 16 else np.uint32
    p = min(p, width - 1)
    v = rng.integers(0, 1 << width, nrows * ncols, dtype=np.uint64)
    v &= ~np.uint64((1 << min(zeros, p)) - 1)  # rows with at least ``zeros`` low zero bits
    v[rng.random(v.size) < 0.3] = 0
    v = v.astype(dt)
    acc = np.bitwise_or.reduce((v.astype(np.uint64) & np.uint64((1 << p) - 1)).reshape(nrows, ncols),
                               axis=1)
    ref = np.full(nrows, p, np.int64)
    for b in range(p - 1, -1, -1):
        ref[((acc >> np.uint64(b)) & np.uint64(1)) == 1] = b
    assert np.array_equal(context._row_low_zeros(v, p, nrows, ncols), ref)
    for limit in (0, 1, 5, 256):
        few = v % dt(max(1, int(rng.integers(1, 300))))
        assert context._more_distinct_than(few, limit) == (np.unique(few).size > limit)
        assert context._more_distinct_than(few[::3], limit) == (np.unique(few[::3]).size > limit)


def _joint_code_numpy(freq, mfreq, mrow, mb):
    """The numpy formulation of ``fieldp.joint_code`` that the compiled one replaced."""
    from bigsmall.codecs import prefix

    nctx = freq.shape[0]
    w = (freq[:, :, None] * mfreq[mrow][None, :, :]).reshape(nctx, -1) if mb else freq
    w = np.ascontiguousarray(w, dtype=np.int64)
    sym = np.flatnonzero((w > 0).any(axis=0))
    lc, cc, ok = prefix.code_table(np.ascontiguousarray(w[:, sym]))
    lens = np.zeros(w.shape, np.int64)
    codes = np.zeros(w.shape, np.int64)
    lens[:, sym] = lc
    codes[:, sym] = cc
    return w, lens, codes, ok


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nctx=st.integers(1, 12), eb=st.sampled_from([1, 4, 5, 8]),
       mb=st.sampled_from([0, 1, 3]), present=st.sampled_from([1, 2, 7, 40]),
       skew=st.floats(0.3, 3.0))
def test_joint_code_and_estimate_match_numpy(seed, nctx, eb, mb, present, skew):
    from bigsmall.codecs import enc_tables

    rng = np.random.default_rng(seed)
    freq, _ = _tables(rng, nctx, 1 << eb, 12, present, skew)
    if mb:
        mfreq, _ = _tables(rng, 1 << eb, 1 << mb, 10, present, skew)
        mrow = rng.integers(0, 1 << eb, 1 << eb)
    else:
        mfreq, mrow = np.zeros((1, 1), np.int64), np.zeros(1 << eb, np.int64)
    got = enc_tables.joint_code(freq, mfreq, mrow, eb, mb)
    ref = _joint_code_numpy(freq, mfreq, mrow, mb)
    assert got[3] == ref[3]
    for a, b in zip(got[:3], ref[:3], strict=True):
        assert np.array_equal(a, b)
    w, lens = ref[0], ref[1]
    counts = rng.integers(0, 10**6, w.shape) * (rng.random(w.shape) < 0.5)
    if seed % 4:  # mostly symbols the tables cover (the encoder's case); else some that they do not
        counts *= w > 0
    pbits = 12 + (10 if mb else 0)
    used = counts > 0
    covered, rans_bits, plen = enc_tables.estimate_bits(counts, w, lens, pbits)
    assert covered == (not (w[used] <= 0).any())
    if covered:
        assert rans_bits == float((counts[used] * (pbits - np.log2(w[used]))).sum())
        assert plen == int((counts * lens).sum())


def _fit_numpy(sym: np.ndarray, alpha: int, kr: int, kc: int) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd iterations as plain numpy and loops, recounting every pass (the compiled ``_fit``
    reuses and moves histogram counts; integer counts make that exactly a recount)."""
    def start(means: np.ndarray, k: int) -> np.ndarray:
        if k == 1:
            return np.zeros(means.size, np.int64)
        return np.searchsorted(np.quantile(means, np.linspace(0.0, 1.0, k + 1)[1:-1]), means)

    def step(mat: np.ndarray, labels: np.ndarray, other: np.ndarray, k: int, k_other: int):
        h = _hist_ref(mat, other, k_other, alpha)
        table = np.zeros((k, h.shape[1]))
        for i, c in enumerate(labels):
            table[c] += h[i]
        t = table + 0.05
        return _argmin_ref(h, -np.log2(t / t.sum(axis=-1, keepdims=True)))

    rows, cols = start(sym.mean(axis=1), kr), start(sym.mean(axis=0), kc)
    for _ in range(context.ITERATIONS):
        prev = rows.copy(), cols.copy()
        if kr > 1:
            rows = step(sym, rows, cols, kr, kc)
        if kc > 1:
            cols = step(sym.T, cols, rows, kc, kr)
        if np.array_equal(prev[0], rows) and np.array_equal(prev[1], cols):
            break
    return rows, cols


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), nr=st.integers(2, 48), nc=st.integers(2, 48),
       kr=st.sampled_from([1, 2, 4, 8]), kc=st.sampled_from([1, 2, 4, 8]),
       alpha=st.sampled_from([2, 5, 12]))
def test_fit_matches_plain_lloyd(seed, nr, nc, kr, kc, alpha):
    """The compiled Lloyd loop (``_lloyd``, shared first-pass histograms and all) chooses the
    clusters the plain formulation chooses; a memo shared by several fits changes nothing."""
    rng = np.random.default_rng(seed)
    # rows and columns with their own scales, so that clusters are worth finding
    scale = rng.integers(0, alpha, nr)[:, None] + rng.integers(0, alpha, nc)[None, :]
    sym = np.clip(scale // 2 + rng.integers(-1, 2, (nr, nc)), 0, alpha - 1).astype(np.uint8)
    memo: dict = {}
    for k in ((kr, kc), (kr, max(1, kc // 2)), (kr, kc)):  # later fits reuse the memo
        got = context._fit(sym, alpha, k[0], k[1], memo)
        ref = _fit_numpy(sym, alpha, k[0], k[1])
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]), k

