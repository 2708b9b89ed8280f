"""Byte layout of the ECC section of a ``.bs`` (normative text: ``spec/FORMAT.md`` §20).

An ECC section follows the container (bytes ``[0, file_length)``, the *core*, unchanged)::

    core_length            meta copy A     (ECC metadata: geometry, core digest, block checksums)
    parity_offset          parity blocks   (stripes' erasure-code parity, interleaved)
    meta_b_offset          meta copy B     (the same bytes as copy A)
    total - 56             trailer         (locates both copies; 56 bytes, its own checksum)

Why erasure coding is enough: every block of the core and of the parity has an xxh3-64 in
the metadata, so a reader knows *which* blocks are bad, and a Reed-Solomon code over GF(2^8)
with ``m`` parity blocks per stripe rebuilds any ``m`` erased blocks of a stripe. Why the
interleave: data block ``i`` belongs to stripe ``i mod S``, and parity block ``j`` to stripe
``(D + j) mod S``, so the file read from start to end cycles through the stripes: a
contiguous damaged run of ``q`` blocks costs each stripe at most ``ceil(q / S)`` blocks,
across the core/parity boundary too. A run of up to ``(m*S - 2) * B`` bytes is therefore
always repairable (``Geometry.guaranteed_burst``), about the size of the parity itself.

Why the header and index need nothing more: they are core bytes, covered by the same stripes
as the blobs. What needs its own redundancy is the metadata that says where the blocks are:
two identical copies, each with its own checksum, found through the trailer, else through
the core header's ``file_length`` (copy A starts there), else by searching for its magic.
Old readers are unaffected: bytes past ``file_length`` are not part of the container.

Pure: geometry, packing and strict parsing only; the I/O and the code itself are in
``bigsmall/io/ecc.py``.
"""

from __future__ import annotations

import math
import struct

import attrs
import xxhash

from ..errors import FormatError, InvalidOptionError, UnsupportedVersionError
from . import schema

META_MAGIC = b"\x89BSECC\r\n"
TRAILER_MAGIC = b"\x89BSEND\r\n"
ECC_VERSION = 1
MIN_BLOCK = 4096
MAX_BLOCK = 1 << 20
MAX_PARITY = 8  # parity blocks per stripe: the code's cost per byte grows with it
TARGET_STRIPES = 16  # enough that a damaged run's rounding to whole blocks costs little
_META = struct.Struct("<8sHHQIHHI16s")  # magic, version, flags, core_length, block, k, m, stripes, core digest
_TRAILER = struct.Struct("<8sHHIQQQ")  # magic, version, flags, meta_length, core_length, total_length, reserved
TRAILER_SIZE = _TRAILER.size + 8
META_HEAD = _META.size


@attrs.frozen
class Geometry:
    """Where every block is. ``D`` data blocks of ``block`` bytes cover the core (the last one
    may be short: it is coded as if padded with zeros); ``stripes`` stripes of at most ``k``
    data blocks and exactly ``m`` parity blocks each."""

    core_length: int
    block: int
    k: int
    m: int
    stripes: int

    @property
    def data_blocks(self) -> int:
        return -(-self.core_length // self.block)

    @property
    def parity_blocks(self) -> int:
        return self.stripes * self.m

    @property
    def meta_length(self) -> int:
        return META_HEAD + 8 * (self.data_blocks + self.parity_blocks) + 8

    @property
    def parity_offset(self) -> int:
        return self.core_length + self.meta_length

    @property
    def meta_b_offset(self) -> int:
        return self.parity_offset + self.parity_blocks * self.block

    @property
    def total_length(self) -> int:
        return self.meta_b_offset + self.meta_length + TRAILER_SIZE

    @property
    def guaranteed_burst(self) -> int:
        """Bytes of one contiguous damaged run that are always repairable, wherever it lies
        in the core and parity: it touches at most ``ceil(L / block) + 2`` blocks (one more
        for the short last data block), consecutive in the stripe cycle."""
        return max(0, self.m * self.stripes - 2) * self.block

    def data_range(self, i: int) -> tuple[int, int]:
        off = i * self.block
        return off, min(self.block, self.core_length - off)

    def stripe_data(self, s: int) -> range:
        """Data block numbers of stripe ``s`` (its ``k`` slots: missing ones are zero blocks)."""
        return range(s, self.data_blocks, self.stripes)

    def parity_index(self, s: int, r: int) -> int:
        """Position (0-based, in blocks, from ``parity_offset``) of parity ``r`` of stripe ``s``."""
        return r * self.stripes + (s - self.data_blocks) % self.stripes

    def parity_stripe(self, j: int) -> tuple[int, int]:
        """(stripe, row) of the parity block at position ``j``."""
        return (self.data_blocks + j) % self.stripes, j // self.stripes


def choose_geometry(core_length: int, percent: float) -> Geometry:
    """The geometry for ``percent`` % of parity: ``m / k`` about ``percent / 100``, ``k + m``
    at most 256 (one GF(2^8) code), ``m`` at most ``MAX_PARITY``, and blocks small enough for
    about ``TARGET_STRIPES`` stripes (4 KiB to 1 MiB)."""
    if not (isinstance(percent, (int, float)) and 0 < percent <= 100 and math.isfinite(percent)):
        raise InvalidOptionError(f"ECC percentage must be in (0, 100], not {percent!r}")
    if core_length < 1:
        raise InvalidOptionError("nothing to protect: the container is empty")
    m_max = min(MAX_PARITY, max(1, int(256 * percent / (100 + percent))))
    k_max = max(1, min(256 - m_max, round(100 * m_max / percent)))
    want = core_length // (k_max * TARGET_STRIPES)
    block = MIN_BLOCK
    while block < MAX_BLOCK and block * 2 <= want:
        block *= 2
    d = -(-core_length // block)
    stripes = -(-d // k_max)
    k = -(-d // stripes)
    m = min(m_max, max(1, int(k * percent / 100 + 1e-9)))  # parity never above percent (but 1)
    return Geometry(core_length, block, k, m, stripes)


# ---------------------------------------------------------------- metadata

def pack_meta(geo: Geometry, core_digest: bytes, checksums: list[int]) -> bytes:
    """The metadata (both copies are these bytes): geometry, xxh3-128 of the core, the
    xxh3-64 of each data block then each parity block (by position), and an xxh3-64 of all."""
    if len(checksums) != geo.data_blocks + geo.parity_blocks or len(core_digest) != 16:
        raise ValueError("checksum table does not match the geometry")
    body = _META.pack(META_MAGIC, ECC_VERSION, 0, geo.core_length, geo.block, geo.k, geo.m,
                      geo.stripes, core_digest) + struct.pack(f"<{len(checksums)}Q", *checksums)
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


@attrs.frozen
class Meta:
    geometry: Geometry
    core_digest: bytes
    checksums: tuple[int, ...]  # data blocks, then parity blocks by position


def parse_meta_head(buf: bytes, file_size: int) -> Geometry:
    """The geometry the first ``META_HEAD`` bytes of a metadata copy declare, checked
    (``schema.check_ecc_geometry``) before anything is read on its word: its length, then
    its checksum, are checked by ``parse_meta``."""
    if len(buf) < META_HEAD or buf[:8] != META_MAGIC:
        raise FormatError("ECC metadata: wrong magic bytes")
    _magic, version, flags, core_length, block, k, m, stripes, _digest = _META.unpack_from(buf, 0)
    if version != ECC_VERSION:
        raise UnsupportedVersionError(f"ECC section version {version} is not supported: this "
                                      f"bigsmall reads version {ECC_VERSION}")
    if flags:
        raise FormatError(f"ECC metadata: unknown flags {flags:#x}")
    schema.check_ecc_geometry(core_length, block, k, m, stripes, file_size)
    return Geometry(core_length, block, k, m, stripes)


def parse_meta(buf: bytes, file_size: int) -> Meta:
    """A whole metadata copy, strictly: any inconsistency is a ``FormatError`` (a damaged or
    crafted copy), never an exception of another kind."""
    geo = parse_meta_head(buf, file_size)
    if len(buf) != geo.meta_length:
        raise FormatError(f"ECC metadata: {len(buf)} bytes, its geometry needs {geo.meta_length}")
    (check,) = struct.unpack_from("<Q", buf, len(buf) - 8)
    if check != xxhash.xxh3_64_intdigest(buf[:-8]):
        raise FormatError("ECC metadata: checksum mismatch (damaged copy)")
    n = geo.data_blocks + geo.parity_blocks
    sums = struct.unpack_from(f"<{n}Q", buf, META_HEAD)
    return Meta(geo, bytes(_META.unpack_from(buf, 0)[8]), sums)


def pack_trailer(geo: Geometry) -> bytes:
    body = _TRAILER.pack(TRAILER_MAGIC, ECC_VERSION, 0, geo.meta_length, geo.core_length,
                         geo.total_length, 0)
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


def parse_trailer(buf: bytes, file_size: int) -> tuple[int, int, int]:
    """(core_length, meta_length, total_length) of an intact trailer; ``FormatError`` else.
    The trailer only locates the metadata: ``parse_meta`` checks what it finds there."""
    if len(buf) != TRAILER_SIZE or buf[:8] != TRAILER_MAGIC:
        raise FormatError("no ECC trailer (wrong magic bytes)")
    (check,) = struct.unpack_from("<Q", buf, _TRAILER.size)
    if check != xxhash.xxh3_64_intdigest(buf[:_TRAILER.size]):
        raise FormatError("ECC trailer: checksum mismatch (damaged)")
    _magic, version, flags, meta_length, core_length, total, reserved = _TRAILER.unpack_from(buf, 0)
    if version != ECC_VERSION:
        raise UnsupportedVersionError(f"ECC section version {version} is not supported: this "
                                      f"bigsmall reads version {ECC_VERSION}")
    if flags or reserved:
        raise FormatError("ECC trailer: reserved fields are not zero")
    if not (64 <= core_length and META_HEAD + 16 <= meta_length
            and core_length + 2 * meta_length + TRAILER_SIZE <= total <= file_size):
        raise FormatError(f"ECC trailer: lengths {core_length}, {meta_length}, {total} do not fit "
                          f"a file of {file_size} bytes")
    return core_length, meta_length, total
