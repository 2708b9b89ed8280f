"""The ``fieldp`` codec: ``field``'s model with a prefix-code entropy stage (spec §19).

Why: a rANS decoder spends two table lookups, a multiplication and a renormalisation per
coded symbol (``field8``: an exponent step and a mantissa step per element); a prefix code
spends one table lookup and an add. ``fieldp`` codes the joint symbol ``e << mb | m`` of each
element with a canonical prefix code derived from the very tables ``field`` stores (see
``prefix.py``), so the head is unchanged and only the chunks differ. The price is the prefix
code's whole-bit rounding: +0.1-0.2 points of size on the corpus (``benchmarks/peers.py``), for
a kernel about twice as fast as ``field8``'s (``benchmarks/bench_decode.py``). It is what
``compress(coder="prefix")`` writes (format 1.2); the default stays ``field8``.

Chunk of ``n >= 1`` units (little-endian)::

    u32 S_0 .. S_3 | lane 0 stream (S_0 bytes) | ... | lane 3 stream (S_3 bytes)

Unit ``t`` belongs to lane ``t % 4``; a lane's stream is, for each of its units in order, the
code of its joint symbol (most significant bit first) then its raw bits (spec §14.7), LSB
first, zero-padded to a byte.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import attrs
import numpy as np

from ..core.types import TensorSpec
from ..errors import FormatError, IntegrityError
from . import field, spread
from .base import register

# ``prefix``, ``_generated.encodep`` and ``_generated.decodep`` (numba) are imported where they
# are used: importing this module registers the codec and must not pay numba's import (see
# ``field``).

LANES = 4
SYM_BITS = 12  # == prefix.SYM_BITS: joint symbols of at most 12 bits
FLAT16_UNITS = 1 << 17  # a one-context tensor of 16- or 32-bit units this large codes through a table


@attrs.frozen
class _PModel:
    """What the ``fieldp`` kernel needs: the layout, contexts and prefix decode tables."""

    lay: field.Layout
    rowctx: np.ndarray
    colsh: np.ndarray  # colctx << prefix.L1: the kernel's column part of a table index
    rshift: np.ndarray
    t1: np.ndarray
    dirs: np.ndarray
    t2: np.ndarray


class FieldPCodec(field.FieldCodec):
    """``field``'s model, head and parameters (``lanes = 4``), prefix-coded chunks (§19)."""

    codec_id = "fieldp"
    lanes = LANES

    def _encode_chunks(self, values: np.ndarray, chunk_units: int, ncols: int,
                       rowctx: np.ndarray, colctx: np.ndarray, freq: np.ndarray, cum: np.ndarray,
                       mfreq: np.ndarray, mcum: np.ndarray, mrow: np.ndarray, lay: field.Layout,
                       rshift: np.ndarray) -> tuple[bytes, ...]:
        from ..native import enc_kernels, kernels
        from ._generated.encodep import code_entries

        w, lens, codes = joint_code(freq, mfreq, mrow, lay)
        tab = code_entries(w, lens, codes)
        native = kernels("fieldp")  # the C port (the same bytes: test_native.py) unless disabled/absent
        enc = enc_kernels() if native is not None else None
        flat = getattr(enc.ext, "encodep_flat", None) if enc is not None else None
        no_contexts = flat is not None and not (rowctx.any() or colctx.any())
        one_context = no_contexts and not rshift.any()
        flat16 = getattr(enc.ext, "encodep_flat16", None) if enc is not None else None
        rows32 = getattr(enc.ext, "encodep_rows32", None) if enc is not None else None
        if (no_contexts and rows32 is not None and lay.width == 32 and lay.p >= 16
                and values.shape[0] >= FLAT16_UNITS):
            # 32-bit units, the field in the high half (fp32), row shifts or not: a table of
            # the high half (the same bytes; ~2x fewer operations a unit than the row walk)
            assert enc is not None
            t32 = enc.ext.encodep_table32h(tab, w.shape[1], lay.p, lay.eb, lay.mb)

            def encode(v: np.ndarray, k0: int, *_: Any) -> bytes:
                return rows32(v, t32, k0, ncols, rshift, lay.p, lay.eb, lay.mb)  # type: ignore[no-any-return]
        elif one_context and flat16 is not None and lay.width == 16 and values.shape[0] >= FLAT16_UNITS:
            # 16-bit units: each value's coded bits from one table built for the tensor (the
            # same bytes again; ~1.1 instead of ~2.0 ns a unit, the table ~0.07 ms)
            assert enc is not None
            t16 = enc.ext.encodep_table16(tab, w.shape[1], lay.p, lay.eb, lay.mb)

            def encode(v: np.ndarray, k0: int, *_: Any) -> bytes:
                return flat16(v, t16)  # type: ignore[no-any-return]
        elif one_context:
            # one context, no row shifts: the C kernel without the row/column walk (the same
            # bytes: property_tests/test_native_fieldp_flat.py)
            def encode(v: np.ndarray, k0: int, *_: Any) -> bytes:
                return flat(v, tab, w.shape[1], lay.p, lay.eb, lay.mb)  # type: ignore[no-any-return]
        elif native is not None:
            encode = native.encodep_chunk
        else:
            from ._generated.encodep import encode_chunk

            def encode(*args: Any) -> bytes:
                return bytes(encode_chunk(*args).tobytes())

        def one(k0: int) -> bytes:
            chunk = encode(values[k0 : k0 + chunk_units], k0, ncols, rowctx, colctx, tab,
                           w.shape[1], lay.p, lay.eb, lay.mb, rshift)
            if not chunk:
                raise AssertionError(f"fieldp: a symbol without a code at chunk {k0 // chunk_units}")
            return bytes(chunk)

        # independent chunks: spread over the pool ``compress`` lends a large tensor (spread.py)
        return tuple(spread.map_pieces(one, range(0, values.shape[0], chunk_units)))

    def prepare(self, spec: TensorSpec, params: dict[str, Any], head: bytes) -> _PModel:  # type: ignore[override]
        from ..native import enc_kernels

        h = self._parse_head(spec, params, head)  # every parameter checked, exactly typed
        lay = h.lay
        if lay.width > 32 or lay.c > SYM_BITS:
            raise FormatError(f"tensor {spec.name!r}: fieldp needs width <= 32 and eb + mb <= "
                              f"{SYM_BITS}")
        prefix = enc_kernels()  # the C port (same tables, same L1 and NO_CODE; no numba import)
        if prefix is None:
            from . import prefix
        t1, dirs, t2, pos, err = prefix.decode_model(h.raw, h.pos, h.cl.n_contexts, lay.eb,
                                                     lay.mb, h.prob_bits, h.mprob_bits)
        if err == prefix.NO_CODE:
            raise IntegrityError(f"tensor {spec.name!r}: side information corrupt (no prefix code)")
        if err:
            raise field.table_error(spec, err)
        return _PModel(lay, h.cl.row_ctx(), h.cl.col_ctx() << prefix.L1,
                       self._stored_row_shifts(spec, params, h, pos), t1, dirs, t2)

    def decode_chunk(self, state: Any, spec: TensorSpec, params: dict[str, Any], index: int,
                     chunk: bytes | memoryview, out: np.ndarray) -> None:
        from ..native import kernels

        assert isinstance(state, _PModel)
        native = kernels("fieldp")  # the C port (same arguments, same results) unless disabled/absent
        if native is not None:
            decode_chunk = native.decodep_chunk
        else:
            from ._generated.decodep import decode_chunk
        lay = state.lay
        rc = decode_chunk(out.view(field._UINT[lay.width // 8]), index * int(params["chunk"]),
                          int(params["matrix"][1]), state.rowctx, state.colsh, state.t1,
                          state.dirs, state.t2, lay.p, lay.eb, lay.mb, state.rshift,
                          np.frombuffer(chunk, dtype=np.uint8))
        if rc != 0:
            raise IntegrityError(f"tensor {spec.name!r}: chunk {index} does not decode (corrupt data)")

    def decode_strided(self, state: Any, spec: TensorSpec, params: dict[str, Any],
                       blob: np.ndarray, offsets: np.ndarray, first: int, step: int,
                       out: np.ndarray) -> bool:
        assert isinstance(state, _PModel)
        lay = state.lay
        dst = out.view(field._UINT[lay.width // 8])
        per, ncols = int(params["chunk"]), int(params["matrix"][1])
        from ..native import kernels

        native = kernels("fieldp")  # the C port (its own per-layout builds) unless disabled/absent
        if native is not None:
            bad = native.decodep_chunks(dst, first, step, per, ncols, state.rowctx, state.colsh,
                                        state.t1, state.dirs, state.t2, lay.p, lay.eb, lay.mb,
                                        state.rshift, blob, offsets)
        elif (own := layout_kernel((lay.width, lay.p, lay.eb, lay.mb))) is not None:
            # constants folded: faster
            bad = own(dst, first, step, per, ncols, state.rowctx, state.colsh, state.t1,
                      state.dirs, state.t2, state.rshift, blob, offsets)
        else:  # the generic kernel: imported only here (~3 ms of a cold start otherwise)
            from ._generated.decodep import decode_chunks

            bad = decode_chunks(dst, first, step, per, ncols, state.rowctx, state.colsh,
                                state.t1, state.dirs, state.t2, lay.p, lay.eb, lay.mb,
                                state.rshift, blob, offsets)
        if bad >= 0:
            raise IntegrityError(f"tensor {spec.name!r}: chunk {bad} does not decode (corrupt data)")
        return True


def joint_code(freq: np.ndarray, mfreq: np.ndarray, mrow: np.ndarray,
               lay: field.Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, lens, codes), each int64[contexts, 2**(eb + mb)]: the joint weights of every
    (context, symbol ``e << mb | m``) from ``field``'s normalised tables (``freq[ctx, e] *
    mfreq[mrow[e], m]``, or ``freq`` without mantissa bits) and the prefix code derived from
    them (spec §19.2; lengths 0 for absent symbols and a context's only symbol)."""
    from . import enc_tables

    w, lens, codes, ok = enc_tables.joint_code(freq, mfreq, mrow, lay.eb, lay.mb)
    if not ok:
        raise AssertionError("fieldp: incomplete prefix code (package-merge bug)")
    return w, lens, codes


@functools.cache
def layout_kernel(lay: tuple[int, int, int, int]) -> Any:
    """The multi-chunk kernel of layout ``lay`` (width, p, eb, mb) with its constants folded
    in, or None if it has none (the generic ``_generated.decodep.decode_chunks`` then serves). Its
    module is imported on first use: only the layouts a file uses cost import time."""
    from ._generated.decodep_layouts import LAYOUTS

    if lay not in LAYOUTS:
        return None
    mod = importlib.import_module(f"{__package__}._generated.decodep_layouts.k_{'_'.join(map(str, lay))}")
    return mod.decode_chunks


register(FieldPCodec())
