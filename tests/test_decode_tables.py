"""The compiled table builder of the decoder equals the numpy reference path, bit for bit.

The reference path (``tables.unpack_rows`` -> ``dequantize`` -> ``rans.normalize_weights`` ->
``rans.build_split_tables``) is what the encoder uses; a single differing frequency would be
data loss, so the two are compared on random q-code tables, including the hard cases of the
normalisation (many tiny weights, whose clamping to 1 makes the first pass overshoot).
"""

from __future__ import annotations

import numpy as np
import pytest

from bigsmall.codecs import decode_tables, rans, tables
from bigsmall.codecs.field import _mantissa_tables


def _reference(raw: bytes, nctx: int, eb: int, mb: int, pbits: int, mpbits: int):
    qexp, pos = tables.unpack_rows(raw, 0, nctx, 1 << eb)
    freq = rans.normalize_weights(tables.dequantize(qexp), pbits)
    tsym, tfc = rans.build_split_tables(freq, rans.cumulative(freq), pbits)
    if not mb:
        return tsym, tfc, None, None, pos
    qmant, pos = tables.unpack_rows(raw, pos, 1 << eb, 1 << mb)
    mfreq, mcum, mrow = _mantissa_tables(qmant, eb, mpbits)
    msym, mfc = rans.build_split_tables(mfreq[mrow], mcum[mrow], mpbits)
    return tsym, tfc, msym, mfc, pos


def _random_codes(rng: np.random.Generator, rows: int, alpha: int) -> np.ndarray:
    q = np.zeros((rows, alpha), np.uint8)
    for r in range(rows):
        kind = rng.integers(0, 5)
        if kind == 0:
            continue  # unused row
        n = int(rng.integers(1, alpha + 1))
        syms = rng.choice(alpha, size=n, replace=False)
        if kind == 1:
            q[r, syms] = rng.integers(1, 256, size=n)  # anything
        elif kind == 2:
            q[r, syms] = rng.integers(1, 20, size=n)  # tiny weights: many clamp to 1
            q[r, syms[0]] = 255
        elif kind == 3:
            q[r, syms[0]] = rng.integers(1, 256)  # a single symbol takes the whole table
        else:
            q[r, syms] = rng.integers(150, 256, size=n)  # peaked, like exponent histograms
    return q


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_build_tables_matches_reference(seed: int, compact: bool) -> None:
    rng = np.random.default_rng(seed)
    eb, mb = [(8, 3), (8, 0), (5, 2), (4, 3), (2, 3), (8, 8)][seed % 6]
    pbits, mpbits = [(12, 10), (8, 8), (12, 12), (10, 9)][seed % 4]
    nctx = int(rng.integers(1, 65))
    qexp = _random_codes(rng, nctx, 1 << eb)
    raw = tables.pack_rows(qexp)
    if mb:
        raw += tables.pack_rows(_random_codes(rng, 1 << eb, 1 << mb))
    raw += b"tail"
    tsym, tfc, msym, mfc, pos = _reference(raw, nctx, eb, mb, pbits, mpbits)
    got = decode_tables.build_tables(np.frombuffer(raw, np.uint8), 0, nctx, eb, mb, pbits, mpbits,
                                     compact)
    if compact:  # rows of 2**eb / 2**mb entries: the reference's 256-wide rows, cut
        tfc = tfc.reshape(-1, 256)[:, : 1 << eb].ravel()
        if mb:
            mfc = mfc.reshape(-1, 256)[:, : 1 << mb].ravel()
    assert got[5] == 0 and got[4] == pos == len(raw) - 4
    assert np.array_equal(got[0], tsym) and np.array_equal(got[1], tfc)
    if mb:
        assert np.array_equal(got[2], msym) and np.array_equal(got[3], mfc)


def test_build_tables_errors() -> None:
    ok = tables.pack_rows(np.full((2, 256), 7, np.uint8))
    short = np.frombuffer(ok[: len(ok) // 2 + 2], np.uint8)  # cut inside the 2nd row header
    assert decode_tables.build_tables(short, 0, 2, 8, 0, 12, 10, False)[5] == decode_tables.TRUNCATED
    cut = np.frombuffer(ok[:-1], np.uint8)  # codes cut short: "out of range", as unpack_rows
    assert decode_tables.build_tables(cut, 0, 2, 8, 0, 12, 10, False)[5] == decode_tables.OUT_OF_RANGE
    bad = np.frombuffer(bytes([250, 0, 10, 0]) + bytes(10), np.uint8)  # lo + span > 256
    assert decode_tables.build_tables(bad, 0, 1, 8, 0, 12, 10, False)[5] == decode_tables.OUT_OF_RANGE
