"""Bit layouts of the safetensors dtypes.

Why a table and not numpy dtypes: the codecs work on the *bit fields* of an element (sign,
exponent, mantissa), and several safetensors dtypes (bf16, fp8, fp4, fp6) have no numpy twin.
Every element is handled as an unsigned integer of ``bits`` width; the float layout tells the
codec where the exponent sits.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class DTypeInfo:
    """What the codecs need to know about one safetensors dtype."""

    name: str
    bits: int  # width of one element in bits (4 and 6 for the packed float formats)
    exp_bits: int = 0  # 0 for non-float types
    mant_bits: int = 0

    @property
    def is_float(self) -> bool:
        return self.exp_bits > 0 and self.bits in (8, 16, 32, 64)

    @property
    def itemsize(self) -> int:
        """Bytes per element for byte-aligned types (0 for sub-byte types)."""
        return self.bits // 8 if self.bits % 8 == 0 else 0

    def nbytes(self, numel: int) -> int | None:
        """Bytes that ``numel`` elements occupy, or None when they do not fill whole bytes."""
        total_bits = numel * self.bits
        if total_bits % 8:
            return None
        return total_bits // 8


_TABLE = [
    DTypeInfo("BOOL", 8),
    DTypeInfo("U8", 8),
    DTypeInfo("I8", 8),
    DTypeInfo("U16", 16),
    DTypeInfo("I16", 16),
    DTypeInfo("U32", 32),
    DTypeInfo("I32", 32),
    DTypeInfo("U64", 64),
    DTypeInfo("I64", 64),
    DTypeInfo("F16", 16, 5, 10),
    DTypeInfo("BF16", 16, 8, 7),
    DTypeInfo("F32", 32, 8, 23),
    DTypeInfo("F64", 64, 11, 52),
    DTypeInfo("C64", 64),
    DTypeInfo("F8_E4M3", 8, 4, 3),
    DTypeInfo("F8_E5M2", 8, 5, 2),
    DTypeInfo("F8_E4M3FNUZ", 8, 4, 3),
    DTypeInfo("F8_E5M2FNUZ", 8, 5, 2),
    DTypeInfo("F8_E8M0", 8, 8, 0),
    DTypeInfo("F6_E2M3", 6, 2, 3),
    DTypeInfo("F6_E3M2", 6, 3, 2),
    DTypeInfo("F4", 4, 2, 1),
]

DTYPES: dict[str, DTypeInfo] = {d.name: d for d in _TABLE}

#: numpy dtype strings used to view decoded bytes as arrays (``read`` returns these).
NUMPY_VIEW: dict[str, str] = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "U32": "uint32",
    "I32": "int32",
    "U64": "uint64",
    "I64": "int64",
    "F16": "float16",
    "BF16": "uint16",
    "F32": "float32",
    "F64": "float64",
    "C64": "complex64",
    "F8_E4M3": "uint8",
    "F8_E5M2": "uint8",
    "F8_E4M3FNUZ": "uint8",
    "F8_E5M2FNUZ": "uint8",
    "F8_E8M0": "uint8",
    "F6_E2M3": "uint8",
    "F6_E3M2": "uint8",
    "F4": "uint8",
}


def lookup(name: str) -> DTypeInfo | None:
    """The layout of a safetensors dtype name, or None if unknown."""
    return DTYPES.get(name)
