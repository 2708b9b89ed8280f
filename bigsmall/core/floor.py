"""The order-0 entropy floor of one tensor: the yardstick every ratio is compared against.

Floats: n·(H(sign, exponent) + H(mantissa | exponent)) bits, per tensor; other dtypes: the
order-0 entropy of their bytes. A codec that models no context cannot go below it.
"""

from __future__ import annotations

import numpy as np

from .dtypes import DTYPES

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _bits(counts: np.ndarray) -> float:
    c = counts[counts > 0].astype(np.float64)
    if c.size == 0:
        return 0.0
    return float(-(c * np.log2(c / c.sum())).sum())


def floor_bits(dtype: str, data: np.ndarray) -> float:
    """Order-0 floor in bits of one tensor's raw bytes (uint8 array)."""
    info = DTYPES[dtype]
    if data.size == 0:
        return 0.0
    if not info.is_float or info.itemsize == 0 or info.bits == 64:
        return _bits(np.bincount(data, minlength=256))
    u = data.view(_UINT[info.itemsize]).astype(np.int64)
    mant = u & ((1 << info.mant_bits) - 1)
    se = u >> info.mant_bits  # sign and exponent
    exp = se & ((1 << info.exp_bits) - 1)
    h_se = _bits(np.bincount(se))
    _, joint = np.unique((exp << info.mant_bits) | mant, return_counts=True)
    h_m_given_e = _bits(joint) - _bits(np.bincount(exp))
    return h_se + h_m_given_e
