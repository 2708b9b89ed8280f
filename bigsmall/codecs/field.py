"""The ``field`` codec: entropy-code one bit field of each element, store the rest raw.

For floats the field is the exponent plus the top ``mb`` mantissa bits (``mb`` chosen per tensor:
the top mantissa bits still carry information given the exponent, the low ones do not); the sign
and low mantissa bits are packed raw. For 8-bit types (int8, uint8, bool, packed fp4/fp6 pairs,
e8m0) the field is the whole byte. The exponent is coded with the table of its (row cluster,
column cluster) context (see ``context.py``); the mantissa part with a table conditioned on the
exponent, shared by all contexts. The joint table of a context is the product of the two,
normalised to ``2**prob_bits``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from ..container.format import zstd_decompress
from ..core.types import TensorPlan, TensorSpec
from ..errors import FormatError, IntegrityError
from .base import Codec, register, zstd_compress

if TYPE_CHECKING:
    from . import context

# ``context`` and ``rans`` (numba kernels) are imported where they are used, not here: this
# module is imported to register the codec, and a container without field-coded tensors (or a
# command that only reads the index) should not pay numba's import.

PROB_BITS = 12
MANT_PROB_BITS = 10
LANES = 4  # == rans.LANES (checked in encode)
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@attrs.frozen
class Layout:
    width: int  # element bits
    p: int  # lowest bit of the coded field
    eb: int  # high part of the field (the exponent), coded with context tables
    mb: int  # low part of the field (top mantissa bits), coded given the exponent

    @property
    def c(self) -> int:
        return self.eb + self.mb

    @property
    def rbits(self) -> int:
        return self.width - self.c


def _ints(spec: TensorSpec, params: dict[str, Any], key: str, n: int) -> tuple[int, ...]:
    """``params[key]``: a list of ``n`` integers (``n == 0``: one integer), exactly: a bool,
    a float or a numeric string in their place is a malformed index, not something to coerce."""
    v = params.get(key)
    items = [v] if n == 0 else v if isinstance(v, list) and len(v) == n else None
    if items is None or not all(type(x) is int for x in items):
        raise FormatError(f"tensor {spec.name!r}: bad codec parameter {key!r}: {v!r:.60}")
    return tuple(items)


def _head_limit(nrows: int, ncols: int) -> int:
    """Most bytes a tensor's side information can hold (row and column maps, row shifts, at
    most 256 contexts of tables): a bound for its zstd frame, so a corrupt frame header cannot
    ask for gigabytes."""
    return 2 * nrows + ncols + (4 << 20)


def base_layout(spec: TensorSpec) -> Layout | None:
    info = spec.info
    if info.itemsize == 0 or info.bits == 8 and not info.is_float:
        return Layout(8, 0, 8, 0)  # bytes: packed sub-byte types, int8, uint8, bool
    if info.is_float and info.bits in (8, 16, 32):  # fp64: exponent too wide for the packed tables
        if info.bits == 8:
            return Layout(8, 0, info.exp_bits, info.mant_bits)  # fp8: exponent + whole mantissa
        return Layout(info.bits, info.mant_bits, info.exp_bits, 0)
    return None


SIGN_GAIN_MIN_BITS = 16384.0
"""A sign in the coded field must save at least this much (about the tables it adds)..."""

SIGN_GAIN_MIN_PER_ELEMENT = 0.002
"""... and this many bits per element: a sign that only looks informative on the sample stays raw."""


def _sign_fits(lay: Layout, spec: TensorSpec) -> bool:
    """Whether the sign can join the coded field: a float whose sign sits just above the
    exponent field and whose widened field still fits the tables (fp16)."""
    return (spec.info.is_float and not lay.mb and lay.eb + 1 <= 8
            and lay.p + lay.eb + 1 == lay.width)


def sign_field(data: np.ndarray, spec: TensorSpec, level: str = "default") -> bool:
    """Whether ``compress`` at ``level`` codes this tensor's sign with its exponent: the
    decision of :meth:`FieldCodec.model`, for callers that model a sample of the tensor
    (``bigsmall scan``) and must take the decision the whole tensor gets."""
    lay = base_layout(spec)
    if lay is None or spec.numel == 0 or not spec.info.itemsize:
        return False
    values = data.view(_UINT[lay.width // 8])
    return _sign_pays(values, lay, spec, contexts=level != "fast")


def _sign_pays(values: np.ndarray, lay: Layout, spec: TensorSpec, contexts: bool) -> bool:
    """Whether to code the sign with the exponent (in the context-modelled field) rather than
    as a raw bit.

    Why: the sign of most weight matrices is a fair coin, so the base layout leaves it raw; but
    an embedding table whose columns carry their own offsets (Whisper's token embedding: mean
    0.0195, std 0.0196) has a sign that its column predicts, and coding ``sign | exponent``
    with the column contexts saves ~0.7 of its raw bit there (Whisper base 82.4 % -> 80.9 %).
    Only where the widened field still fits the tables (``eb <= 8``: fp16, whose
    ``1 + 5``-bit field decoders already accept; bf16/fp32 would need 9 bits). The estimate
    is the sign's information given its column or row (whichever is larger; the whole tensor
    alone without ``contexts``) on a strided sample, against the side information the doubled
    alphabet adds.
    """
    if not _sign_fits(lay, spec):
        return False
    n = values.shape[0]
    if n < 4096:
        return False
    nrows, ncols = spec.matrix
    m = values.reshape(nrows, ncols)
    sample = m[:: max(1, nrows // 1024), :: max(1, ncols // 1024)]
    sign = sample >> (lay.width - 1)  # 0 or 1
    ns = sign.size

    def info_bits(p: np.ndarray, counts: float | np.ndarray) -> float:
        q = np.clip(p, 1e-12, 1 - 1e-12)
        h = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
        return float(np.sum((1.0 - h) * counts))

    # the means from integer sums: sums of 0s and 1s are exact in float64 as well, so these
    # are the float64 means bit for bit, without a float64 copy of the sample
    gain = info_bits(np.array([int(sign.sum(dtype=np.int64)) / ns]), float(ns))
    if contexts:
        gain = max(gain, info_bits(sign.sum(axis=0, dtype=np.int64) / sign.shape[0], sign.shape[0]),
                   info_bits(sign.sum(axis=1, dtype=np.int64) / sign.shape[1], sign.shape[1]))
    gain *= n / ns
    return gain > max(SIGN_GAIN_MIN_BITS, SIGN_GAIN_MIN_PER_ELEMENT * n)


def _fields(values: np.ndarray, lay: Layout, lo: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(exponent part, mantissa-top part) of every element, as uint16 arrays (the second one
    empty without ``lo`` or mantissa bits).

    One pass of a numba kernel per part (no uint64/int64 copies of the tensor, no numpy
    temporaries); uint16 holds both parts and also ``hi << mb | lo``, because the coded field
    has at most 16 bits."""
    from . import context

    hi = context._bit_field(values, lay.p + lay.mb, lay.eb)
    if lay.mb == 0 or not lo:
        return hi, np.zeros(0, np.uint16)
    return hi, context._bit_field(values, lay.p, lay.mb)


def _cond_entropy_bits(joint: np.ndarray, marg: np.ndarray) -> tuple[float, int]:
    """H(lo | hi) * n in bits from the (hi, lo) and hi histograms, and the number of present
    (hi, lo) pairs."""
    j = joint[joint > 0].astype(np.float64)
    m = marg[marg > 0].astype(np.float64)
    hj = -(j * np.log2(j)).sum()
    hm = -(m * np.log2(m)).sum()
    return float(hj - hm), int((joint > 0).sum())


def _choose_layout(values: np.ndarray, lay: Layout, spec: TensorSpec) -> Layout:
    """Move mantissa bits into the coded field while that saves more than the table costs."""
    return _choose_layout_counts(values, lay, spec)[0]


def _choose_layout_counts(values: np.ndarray, lay: Layout,
                          spec: TensorSpec) -> tuple[Layout, np.ndarray | None, int]:
    """``_choose_layout``, and (when its sample is the whole tensor) the histogram it counted
    with the number of mantissa bits below the exponent it covers: (layout, counts, top),
    counts None otherwise.

    One histogram of (exponent, top 3 mantissa bits) serves every candidate: the histograms
    for fewer bits are its sums (same counts, same order, so the same figures as counting
    each candidate on its own). Counted over every element (tensors of at most 2**21), it
    also gives the chosen layout's field counts (``model``): one pass over the tensor fewer."""
    info = spec.info
    if not info.is_float or info.bits == 8:
        return lay, None, 0
    n = values.shape[0]
    if n < 1024:
        return lay, None, 0
    sample = values[:: max(1, n // (1 << 20))]
    ns = sample.shape[0]
    top = min(3, info.mant_bits)
    if top == 0:
        return lay, None, 0
    from . import context

    # np.bincount((sample >> (mant_bits - top)) & mask), without its int64 copy of the keys
    joint_top = context._field_counts(sample, info.mant_bits - top, lay.eb + top)
    marg = joint_top.reshape(-1, 1 << top).sum(axis=1)
    best, best_gain = lay, 0.0
    for mb in range(1, top + 1):
        cand = Layout(lay.width, info.mant_bits - mb, lay.eb, mb)
        joint = joint_top.reshape(-1, 1 << (top - mb)).sum(axis=1)
        h, present = _cond_entropy_bits(joint, marg)
        gain = (mb * ns - h) * (n / ns) - present * 8 - 0.002 * n * mb  # small speed/precision margin
        if gain > best_gain:
            best, best_gain = cand, gain
    return best, (joint_top if ns == n else None), top


def _mantissa_tables(qmant: np.ndarray | None, eb: int, mpbits: int):
    """(mfreq, mcum, mrow) from mantissa codes: one table row per exponent present, then an
    all-zero sentinel row that absent exponents point to (so a corrupt stream can never index
    outside the tables; it fails the end-of-chunk state check instead)."""
    from . import enc_tables, rans

    if qmant is None:
        z = np.zeros((1, 1), np.int64)
        return z, z, np.zeros(1 << eb, np.int64)
    present = np.flatnonzero(qmant.any(axis=1))
    mrow = np.full(1 << eb, present.size, np.int64)
    mrow[present] = np.arange(present.size)
    q = np.zeros((present.size + 1, qmant.shape[1]), np.uint8)  # last: the sentinel row
    q[: present.size] = qmant[present]
    mfreq = enc_tables.normalize_codes(q, mpbits)
    return mfreq, rans.cumulative(mfreq), mrow


@attrs.frozen
class _Model:
    lay: Layout
    cl: context.Clustering
    tsym: np.ndarray
    tfc: np.ndarray
    prob_bits: int
    msym: np.ndarray
    mfc: np.ndarray
    mprob_bits: int
    rowctx: np.ndarray
    colctx: np.ndarray
    rshift: np.ndarray


@attrs.frozen
class EncModel:
    """An encoder's model of one tensor (``FieldCodec.model``): the values as units, layout,
    clustering, normalised tables and row shifts, and the compressed side information."""

    values: np.ndarray
    lay: Layout
    cl: context.Clustering
    nrows: int
    ncols: int
    freq: np.ndarray  # [contexts, 2**eb] exponent frequencies (sum 2**PROB_BITS)
    cum: np.ndarray
    mfreq: np.ndarray  # [exponent rows + 1, 2**mb] mantissa frequencies (sum 2**MANT_PROB_BITS)
    mcum: np.ndarray
    mrow: np.ndarray  # exponent -> its mantissa row
    rshift: np.ndarray
    head_z: bytes
    # [contexts, 2**c] counts of the joint field ``e << mb | m`` when the model already has
    # them (one context: ``--level fast``), else None (``auto.estimate`` counts them)
    joint_counts: np.ndarray | None = None


@attrs.frozen
class _Head:
    """A tensor's parameters and side information, parsed up to the frequency tables."""

    lay: Layout
    cl: context.Clustering
    raw: np.ndarray  # the unpacked side information (uint8)
    pos: int  # where the frequency tables start in ``raw``
    prob_bits: int
    mprob_bits: int
    nrows: int


def table_error(spec: TensorSpec, err: int) -> IntegrityError:
    """The error for a ``decode_tables`` error code."""
    from . import decode_tables

    what = {decode_tables.TRUNCATED: "frequency table truncated",
            decode_tables.OUT_OF_RANGE: "frequency table out of range"}.get(
                err, "frequency table corrupt (more distinct symbols than table slots)")
    return IntegrityError(f"tensor {spec.name!r}: {what}")


def _row_shifts(values: np.ndarray, lay: Layout, nrows: int, ncols: int) -> np.ndarray:
    """Per row, how many low raw bits are zero in every element (e.g. fp16-exact fp32 rows)."""
    if lay.p == 0 or lay.rbits == 0:
        return np.zeros(nrows, np.int64)
    from . import context

    return context._row_low_zeros(values, lay.p, nrows, ncols)  # one pass, no temporaries


def _count_contexts(hi: np.ndarray, cl: context.Clustering, ncols: int, alpha: int) -> np.ndarray:
    """Exponent counts per context over every element.

    One pass of the numba counting kernel of ``context`` (the same integer counts as a
    ``bincount`` of ``ctx * alpha + e``, without its int64 temporaries: ~3x faster)."""
    from . import context

    nrows = cl.row_map.shape[0]
    return context._ctx_table(hi.reshape(nrows, ncols), cl.row_map.astype(np.int64),
                              cl.col_map.astype(np.int64), cl.kc, cl.n_contexts, alpha)


class FieldCodec(Codec):
    """Four lanes over the chunk's quarters (spec §14). Subclasses (``field8``) keep the model,
    head and parameters and replace only the chunk layout: ``lanes``, ``_encode_chunks`` and
    ``_kernels``."""

    codec_id = "field"
    lanes = LANES
    compact_rows = False  # the kernel's freq | cum rows: 256 entries (``build_tables``)

    def encode(self, data: np.ndarray, spec: TensorSpec, chunk_units: int, *,
               level: str = "default") -> TensorPlan | None:
        model = self.model(data, spec, level)
        return None if model is None else self.plan(model, chunk_units)

    def model(self, data: np.ndarray, spec: TensorSpec, level: str = "default",
              sign: bool | None = None) -> EncModel | None:
        """The tensor's model and side information (spec §14.1-14.4): everything but the
        chunks, and the same for every codec of this family (``field``, ``field8``,
        ``fieldp`` differ only in the chunks), so one model can be planned by any of them
        (``auto.encode``). None when the family does not apply."""
        from . import context, enc_tables, rans

        lay0 = base_layout(spec)
        if lay0 is None or spec.numel == 0:
            return None
        values = data.view(_UINT[lay0.width // 8])
        n = values.shape[0]
        if sign is None:  # ``sign``: decided already on the whole tensor (``bigsmall scan``)
            sign = bool(spec.info.itemsize) and _sign_pays(values, lay0, spec, contexts=level != "fast")
        if sign and _sign_fits(lay0, spec):
            lay0 = Layout(lay0.width, lay0.p, lay0.eb + 1, 0)
        lay, whole, top = _choose_layout_counts(values, lay0, spec)
        if spec.info.itemsize == 0:
            nrows, ncols = 1, n
        else:
            nrows, ncols = spec.matrix
        alpha = 1 << lay.eb
        # counts of the whole field ``hi << mb | lo``, straight from the values: the mantissa
        # tables' counts and, with one context, the exponent counts (its row sums) and the
        # joint counts ``auto.estimate`` needs, so ``--level fast`` makes one counting pass
        # instead of four (the same integers: the same files)
        field_counts = None
        if (lay.mb or level == "fast") and whole is not None and lay.p + lay.c == lay0.p + lay0.eb \
                and lay.mb <= top:
            # the layout search counted (exponent, top mantissa bits) over every element: the
            # chosen field's counts are its sums over the low bits the field leaves out
            field_counts = whole.reshape(-1, 1 << (top - lay.mb)).sum(axis=1).reshape(alpha, -1)
        elif lay.mb or level == "fast":
            field_counts = context._field_counts(values, lay.p, lay.c).reshape(alpha, -1)
        joint_counts = None
        if level == "fast":  # no context search: one exponent table per tensor
            assert field_counts is not None
            cl = context.trivial(nrows, ncols)
            counts = field_counts.sum(axis=1).reshape(1, alpha)
            joint_counts = field_counts.reshape(1, -1)
        else:
            hi, _ = _fields(values, lay, lo=False)
            cl = context.choose(hi.reshape(nrows, ncols), alpha)
            # the joint counts per context that ``auto.estimate`` needs, counted here once:
            # the exponent counts are their sums over the mantissa part (the same integers),
            # and without mantissa bits the field *is* the exponent (two passes over the
            # tensor fewer: 2 x bit_field + ctx_table)
            if lay.mb:
                joint = context._bit_field(values, lay.p, lay.c)
                joint_counts = _count_contexts(joint, cl, ncols, 1 << lay.c)
                counts = joint_counts.reshape(cl.n_contexts, alpha, 1 << lay.mb).sum(axis=2)
            else:
                counts = joint_counts = _count_contexts(hi, cl, ncols, alpha)
        qexp = enc_tables.quantize_counts(counts)
        qmant = None
        if lay.mb:
            assert field_counts is not None
            qmant = enc_tables.quantize_counts(field_counts)
        freq = enc_tables.normalize_codes(qexp, PROB_BITS)
        cum = rans.cumulative(freq)
        mfreq, mcum, mrow = _mantissa_tables(qmant, lay.eb, MANT_PROB_BITS)
        head = bytearray()
        if cl.kr > 1:
            head += cl.row_map.tobytes()
        if cl.kc > 1:
            head += cl.col_map.tobytes()
        head += enc_tables.pack_rows(qexp)
        if qmant is not None:
            head += enc_tables.pack_rows(qmant)
        rshift = _row_shifts(values, lay, nrows, ncols)
        if rshift.any():
            head += rshift.astype(np.uint8).tobytes()
        head_z = zstd_compress(19, bytes(head))
        return EncModel(values, lay, cl, nrows, ncols, freq, cum, mfreq, mcum, mrow, rshift,
                        head_z, joint_counts)

    def plan(self, m: EncModel, chunk_units: int) -> TensorPlan:
        """The tensor coded with this codec's chunks under the model ``m``."""
        chunks = self._encode_chunks(m.values, chunk_units, m.ncols, m.cl.row_ctx(),
                                     m.cl.col_ctx(), m.freq, m.cum, m.mfreq, m.mcum, m.mrow,
                                     m.lay, m.rshift)
        params = {
            "layout": [m.lay.width, m.lay.p, m.lay.eb, m.lay.mb],
            "grid": [m.cl.kr, m.cl.kc],
            "matrix": [m.nrows, m.ncols],
            "prob_bits": [PROB_BITS, MANT_PROB_BITS],
            "lanes": self.lanes,
            "chunk": chunk_units,
            "row_shift": bool(m.rshift.any()),
        }
        return TensorPlan(self.codec_id, params, m.head_z, chunks)

    def _encode_chunks(self, values: np.ndarray, chunk_units: int, ncols: int,
                       rowctx: np.ndarray, colctx: np.ndarray, freq: np.ndarray, cum: np.ndarray,
                       mfreq: np.ndarray, mcum: np.ndarray, mrow: np.ndarray, lay: Layout,
                       rshift: np.ndarray) -> tuple[bytes, ...]:
        """The coded chunks of ``values`` (spec §14.5-14.8)."""
        from . import rans, rans_encode

        assert rans.LANES == LANES
        etab = rans.encoder_table(freq, cum, PROB_BITS)  # once per tensor, shared by its chunks
        mtab = rans.encoder_table(mfreq, mcum, MANT_PROB_BITS)
        return tuple(
            rans_encode.encode_chunk_fast(
                values[k0 : k0 + chunk_units], k0, ncols, rowctx, colctx, etab, freq.shape[1],
                mtab, mrow, mfreq.shape[1], lay.p, lay.eb, lay.mb, rshift,
            ).tobytes()
            for k0 in range(0, values.shape[0], chunk_units)
        )

    def _kernels(self) -> tuple[Any, Any]:
        """(one-chunk kernel, strided multi-chunk kernel) of this chunk layout."""
        from ._generated.decode4 import decode_chunk, decode_chunks

        return decode_chunk, decode_chunks

    def prepare(self, spec: TensorSpec, params: dict[str, Any], head: bytes) -> _Model:
        from ..native import enc_kernels

        h = self._parse_head(spec, params, head)
        lay = h.lay
        builder = enc_kernels()  # the C port (same tables; no numba import) unless disabled/absent
        if builder is None:
            from . import decode_tables as builder
        tsym, tfc, msym, mfc, pos, err = builder.build_tables(
            h.raw, h.pos, h.cl.n_contexts, lay.eb, lay.mb, h.prob_bits, h.mprob_bits,
            self.compact_rows)
        if err:
            raise table_error(spec, err)
        rshift = self._stored_row_shifts(spec, params, h, pos)
        return _Model(lay, h.cl, tsym, tfc, h.prob_bits, msym, mfc, h.mprob_bits, h.cl.row_ctx(),
                      h.cl.col_ctx(), rshift)

    def _parse_head(self, spec: TensorSpec, params: dict[str, Any], head: bytes) -> _Head:
        """The parameters checked and the side information unpacked up to the frequency
        tables (spec §14.3): what every ``field``-model codec reads the same way."""
        from . import context

        width, p, eb, mb = _ints(spec, params, "layout", 4)
        kr, kc = _ints(spec, params, "grid", 2)
        nrows, ncols = _ints(spec, params, "matrix", 2)
        prob_bits, mprob_bits = _ints(spec, params, "prob_bits", 2)
        (lanes,) = _ints(spec, params, "lanes", 0)
        lay = Layout(width, p, eb, mb)
        unit = spec.info.itemsize or 1
        # Every value a kernel or table builder trusts, bounded here (the kernels index
        # without checks): widths and field positions, grid and table sizes, a matrix that is
        # exactly the tensor (row and column context arrays are indexed by k // ncols, k % ncols).
        if (
            width != unit * 8 or not 1 <= eb <= 8 or not 0 <= mb <= 8 or p < 0
            or p + lay.c > width or lay.rbits > 56 or nrows < 1 or ncols < 1
            or nrows * ncols * unit != spec.nbytes
            or not 1 <= kr <= 256 or not 1 <= kc <= 256 or not 8 <= prob_bits <= 12
            or not 8 <= mprob_bits <= 12 or kr * kc > 256 or lanes != self.lanes
        ):
            raise FormatError(f"tensor {spec.name!r}: inconsistent {self.codec_id} codec parameters "
                              f"(layout {[width, p, eb, mb]}, grid {[kr, kc]}, matrix {[nrows, ncols]})")
        raw = zstd_decompress(head, _head_limit(nrows, ncols), f"tensor {spec.name!r}: side information")
        pos = 0
        row_map = np.zeros(nrows, np.uint8)
        col_map = np.zeros(ncols, np.uint8)
        if pos + (nrows if kr > 1 else 0) + (ncols if kc > 1 else 0) > len(raw):
            raise IntegrityError(f"tensor {spec.name!r}: side information truncated")
        if kr > 1:
            row_map = np.frombuffer(raw, np.uint8, nrows, pos).copy()
            pos += nrows
        if kc > 1:
            col_map = np.frombuffer(raw, np.uint8, ncols, pos).copy()
            pos += ncols
        if (row_map >= kr).any() or (col_map >= kc).any():
            raise IntegrityError(f"tensor {spec.name!r}: cluster maps corrupt")
        cl = context.Clustering(kr, kc, row_map, col_map)
        return _Head(lay, cl, np.frombuffer(raw, np.uint8), pos, prob_bits, mprob_bits, nrows)

    @staticmethod
    def _stored_row_shifts(spec: TensorSpec, params: dict[str, Any], h: _Head, pos: int) -> np.ndarray:
        """The row shifts stored after the frequency tables (spec §14.3), or zeros."""
        nrows = h.nrows
        if not params.get("row_shift"):
            return np.zeros(nrows, np.int64)
        if pos + nrows > h.raw.shape[0]:
            raise IntegrityError(f"tensor {spec.name!r}: row shifts truncated")
        rshift = h.raw[pos: pos + nrows].astype(np.int64)
        if (rshift > h.lay.p).any():
            raise IntegrityError(f"tensor {spec.name!r}: row shifts corrupt")
        return rshift

    def decode_chunk(
        self, state: _Model, spec: TensorSpec, params: dict[str, Any], index: int,
        chunk: bytes | memoryview, out: np.ndarray,
    ) -> None:
        decode_chunk, _ = self._kernels()
        lay = state.lay
        buf = np.frombuffer(chunk, dtype=np.uint8)
        dst = out.view(_UINT[lay.width // 8])
        k0 = index * int(params["chunk"])
        ncols = int(params["matrix"][1])
        rc = decode_chunk(
            dst, k0, ncols, state.rowctx, state.colctx, state.tsym, state.tfc, state.prob_bits,
            state.msym, state.mfc, state.mprob_bits, lay.p, lay.eb, lay.mb, state.rshift, buf,
        )
        if rc != 0:
            raise IntegrityError(f"tensor {spec.name!r}: chunk {index} does not decode (corrupt data)")


    def decode_strided(
        self, state: _Model, spec: TensorSpec, params: dict[str, Any], blob: np.ndarray,
        offsets: np.ndarray, first: int, step: int, out: np.ndarray,
    ) -> bool:
        _, decode_chunks = self._kernels()
        lay = state.lay
        bad = decode_chunks(
            out.view(_UINT[lay.width // 8]), first, step, int(params["chunk"]),
            int(params["matrix"][1]), state.rowctx, state.colctx, state.tsym, state.tfc,
            state.prob_bits, state.msym, state.mfc, state.mprob_bits, lay.p, lay.eb, lay.mb,
            state.rshift, blob, offsets,
        )
        if bad >= 0:
            raise IntegrityError(f"tensor {spec.name!r}: chunk {bad} does not decode (corrupt data)")
        return True

register(FieldCodec())
