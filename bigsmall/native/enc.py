"""numpy faces of the C ports in ``_enc`` (table builders, encoder kernels): same arguments and
same results as the numba kernels they replace, so a codec calls either one.

Why a Python layer: ``_enc`` builds with Python's headers only (no numpy at build time) and
returns bytearrays; here they become arrays of the numba kernel's dtype and shape (views, no
copy). Importing this module imports no numba: with it, a ``decompress`` or ``load`` of a
field8/fieldp file needs no numba kernel at all (the table builders were the last ones).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

# The numba modules' constants (checked equal by property_tests/test_native_encode.py), here
# so that a codec using this module does not import numba to read them.
L1 = 10  # prefix.L1
NO_CODE = 16  # prefix.NO_CODE


class Enc:
    """The ``_enc`` extension behind numpy-returning functions."""

    L1 = L1
    NO_CODE = NO_CODE

    def __init__(self, ext: ModuleType) -> None:
        self.ext = ext

    def build_tables(self, raw: np.ndarray, pos: int, nctx: int, eb: int, mb: int, pbits: int,
                     mpbits: int, compact: bool) -> tuple[Any, ...]:
        """``decode_tables.build_tables``: (tsym u8, tfc u32, msym u8, mfc u32, pos, err)."""
        tsym, tfc, msym, mfc, pos, err = self.ext.build_tables(raw, pos, nctx, eb, mb, pbits,
                                                               mpbits, compact)
        return (np.frombuffer(tsym, np.uint8), np.frombuffer(tfc, np.uint32),
                np.frombuffer(msym, np.uint8), np.frombuffer(mfc, np.uint32), pos, err)

    def decode_model(self, raw: np.ndarray, pos: int, nctx: int, eb: int, mb: int, pbits: int,
                     mpbits: int) -> tuple[Any, ...]:
        """``prefix.decode_model``: (t1 u16, dirs i64, t2 u16, pos, err)."""
        t1, dirs, t2, pos, err = self.ext.decode_model(raw, pos, nctx, eb, mb, pbits, mpbits)
        return (np.frombuffer(t1, np.uint16), np.frombuffer(dirs, np.int64),
                np.frombuffer(t2, np.uint16), pos, err)

    # ---- the encoder's counting and table kernels (codecs/counting.py, codecs/enc_tables.py)

    def bit_field(self, values: np.ndarray, shift: int, bits: int) -> np.ndarray:
        return np.frombuffer(self.ext.bit_field(_c(values), shift, bits), np.uint16)

    def field_counts(self, values: np.ndarray, shift: int, bits: int) -> np.ndarray:
        return np.frombuffer(self.ext.field_counts(_c(values), shift, bits), np.int64)

    def row_low_zeros(self, values: np.ndarray, p: int, nrows: int, ncols: int) -> np.ndarray:
        return np.frombuffer(self.ext.row_low_zeros(_c(values), p, nrows, ncols), np.int64)

    def more_distinct_than(self, values: np.ndarray, limit: int) -> bool:
        return bool(self.ext.more_distinct_than(_c(values), limit))

    def ctx_table(self, sym: np.ndarray, rows: np.ndarray, cols: np.ndarray, kc: int, nctx: int,
                  alpha: int) -> np.ndarray:
        out = self.ext.ctx_table(_c(sym), _c(rows), _c(cols), kc, nctx, alpha)
        return np.frombuffer(out, np.int64).reshape(nctx, alpha)

    def symbol_counts(self, sym: np.ndarray, alpha: int) -> Any:
        if sym.dtype.kind != "u":  # numba's (negative symbols index from the end there)
            return NotImplemented
        return np.frombuffer(self.ext.symbol_counts(_c(sym), alpha), np.int64)

    def line_counts(self, sym: np.ndarray, axis: int, alpha: int) -> Any:
        if sym.dtype.kind != "u":
            return NotImplemented
        lines = sym.shape[0] if axis == 0 else sym.shape[1]
        return np.frombuffer(self.ext.line_counts(_c(sym), axis, alpha),
                             np.int64).reshape(lines, alpha)

    def lookup(self, sym: np.ndarray, table: np.ndarray) -> Any:
        if sym.dtype.kind != "u":
            return NotImplemented
        return np.frombuffer(self.ext.lookup(_c(sym), _c(table)), table.dtype).reshape(sym.shape)

    def sum_lines(self, counts: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
        return np.frombuffer(self.ext.sum_lines(_i(counts), _i(labels), k),
                             np.int64).reshape(k, counts.shape[1])

    def quantize(self, counts: np.ndarray, logw: np.ndarray, top: float) -> np.ndarray:
        return np.frombuffer(self.ext.quantize(_c(counts), _c(logw), top),
                             np.uint8).reshape(counts.shape)

    def pack(self, q: np.ndarray) -> tuple[np.ndarray, int]:
        buf, n = self.ext.pack(_c(q))
        return np.frombuffer(buf, np.uint8), n

    def normalize_rows(self, q: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
        out, err = self.ext.normalize_rows(_c(q), bits)
        return np.frombuffer(out, np.int64).reshape(q.shape), err

    def joint_code(self, freq: np.ndarray, mfreq: np.ndarray, mrow: np.ndarray, eb: int,
                   mb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        w, lens, codes, ok = self.ext.joint_code(_c(freq), _c(mfreq), _c(mrow), eb, mb)
        shape = (freq.shape[0], freq.shape[1] << mb)
        return (np.frombuffer(w, np.int64).reshape(shape),
                np.frombuffer(lens, np.int64).reshape(shape),
                np.frombuffer(codes, np.int64).reshape(shape), ok)

    def estimate_bits(self, counts: np.ndarray, w: np.ndarray, lens: np.ndarray,
                      pbits: int) -> tuple[bool, float, int]:
        return tuple(self.ext.estimate_bits(_c(counts), _c(w), _c(lens), pbits))  # type: ignore[return-value]

    # ---- field8's chunk encoder (codecs/_generated/encode8.py, rans_encode._raw_lane_fast)

    def encode_values(self, values: np.ndarray, k0: int, ncols: int, rowctx: np.ndarray,
                      colctx: np.ndarray, alpha: int, mrow: np.ndarray, malpha: int, p: int,
                      eb: int, mb: int, efreq: np.ndarray, ecum: np.ndarray, mfreq: np.ndarray,
                      mcum: np.ndarray, pbits: int, mpbits: int, magic: np.ndarray,
                      shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``encode8.encode_values``: (decoder initial states uint64[8], words uint32)."""
        xs, words = self.ext.encode_values(
            _c(values), k0, ncols, _i(rowctx), _i(colctx), alpha, _i(mrow), malpha, p, eb, mb,
            _i(efreq), _i(ecum), _i(mfreq), _i(mcum), pbits, mpbits, _c(magic), _c(shift))
        return np.frombuffer(xs, np.uint64), np.frombuffer(words, np.uint32)

    def raw_lane_fast(self, values: np.ndarray, k0: int, b: int, e: int, ncols: int, p: int,
                      c: int, rshift: np.ndarray) -> np.ndarray:
        """``rans_encode._raw_lane_fast`` for at most 32 raw bits an element (ValueError
        beyond: the numba kernel then hands over to ``rans._raw_lane``)."""
        return np.frombuffer(self.ext.raw_lane_fast(_c(values), k0, b, e, ncols, p, c,
                                                    _i(rshift)), np.uint8)

    def encode_chunk_fast(self, values: np.ndarray, k0: int, ncols: int, rowctx: np.ndarray,
                          colctx: np.ndarray, etab: np.ndarray, alpha: int, mtab: np.ndarray,
                          mrow: np.ndarray, malpha: int, p: int, eb: int, mb: int,
                          rshift: np.ndarray) -> Any:
        """``rans_encode.encode_chunk_fast`` (the ``field`` codec's chunk bytes, uint8);
        NotImplemented for 64-bit units (more than 32 raw bits: numba's ``rans._raw_lane``)."""
        if values.dtype.itemsize > 4:
            return NotImplemented
        return np.frombuffer(self.ext.encode_chunk_fast(
            _c(values), k0, ncols, _i(rowctx), _i(colctx), _c(etab), alpha, _c(mtab), _i(mrow),
            malpha, p, eb, mb, _i(rshift)), np.uint8)


    # ---- the clustering search (codecs/lloyd.py, codecs/numpy_exact.py; enc_cluster.h).
    # Symbol matrices of other types than uint8/uint16 (context.choose makes those) and the
    # degenerate shapes the C glue refuses go to numba (NotImplemented): same results.

    def hist(self, sym: np.ndarray, other: np.ndarray, k_other: int, alpha: int) -> Any:
        if not _small(sym):
            return NotImplemented
        out = self.ext.hist(_c(sym), _i(other), k_other, alpha)
        return np.frombuffer(out, np.float64).reshape(sym.shape[0], k_other * alpha)

    def assign_rows(self, sym: np.ndarray, other: np.ndarray, k_other: int, alpha: int,
                    lengths: np.ndarray) -> Any:
        if not _small(sym) or lengths.dtype != np.float64 or lengths.ndim != 2:
            return NotImplemented
        return np.frombuffer(self.ext.assign_rows(_c(sym), _i(other), k_other, alpha,
                                                  _c(lengths)), np.int64)

    def lloyd(self, sym: np.ndarray, sym_t: np.ndarray, alpha: int, kr: int, kc: int,
              rows: np.ndarray, cols: np.ndarray, shared_rows: np.ndarray,
              shared_cols: np.ndarray, first_rows: np.ndarray, iterations: int) -> Any:
        """``lloyd._lloyd``: (row map, column map), int64."""
        hists = (shared_rows, shared_cols, first_rows)
        if (not (_small(sym) and _small(sym_t)) or sym.size == 0
                or any(h.dtype != np.float64 or h.ndim != 2 for h in hists)):
            return NotImplemented
        r, c = self.ext.lloyd(_c(sym), _c(sym_t), alpha, kr, kc, _i(rows), _i(cols),
                              *(_c(h) for h in hists), iterations)
        return np.frombuffer(r, np.int64), np.frombuffer(c, np.int64)

    def code_lengths(self, table: np.ndarray) -> Any:
        """``numpy_exact._code_lengths_kernel`` of an int64 or float64 table."""
        if table.ndim != 2 or table.dtype not in (np.int64, np.float64):
            return NotImplemented
        return np.frombuffer(self.ext.code_lengths(_c(table)), np.float64).reshape(table.shape)

    def entropy_rows(self, table: np.ndarray) -> Any:
        if table.ndim != 2 or table.dtype != np.int64:
            return NotImplemented
        return self.ext.entropy_rows(_c(table))

    def quantile_map(self, values: np.ndarray, qs: np.ndarray) -> Any:
        if (values.dtype != np.float64 or qs.dtype != np.float64 or values.size == 0
                or np.isnan(qs).any()):
            return NotImplemented  # numba indexes out of bounds there: no result to match
        return np.frombuffer(self.ext.quantile_map(_c(values), _c(qs)), np.int64)

    def line_means(self, sym: np.ndarray, axis: int) -> Any:
        if not _small(sym) or axis not in (0, 1) or sym.shape[axis] == 0:
            return NotImplemented  # numba raises ZeroDivisionError on an empty axis
        return np.frombuffer(self.ext.line_means(_c(sym), axis), np.float64)


def _small(sym: np.ndarray) -> bool:
    """A uint8/uint16 matrix: the symbol types the C clustering kernels take."""
    return sym.ndim == 2 and sym.dtype in (np.uint8, np.uint16)


def _i(a: np.ndarray) -> np.ndarray:
    """int64, C order (what the numba kernels get from the codecs; values unchanged)."""
    return np.ascontiguousarray(a, dtype=np.int64)


def _c(a: np.ndarray) -> np.ndarray:
    """C order (the kernels take flat buffers; numba accepts any layout)."""
    return np.ascontiguousarray(a)
