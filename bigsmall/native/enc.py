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
