"""Shared harness of the entropy-stage prototypes (``proto_*.py``): the real ``field`` tensors of
a corpus file, their current plans (today's codec), and the model parts an experimental coder
needs (layout, contexts, normalised tables, row shifts), parsed back from the plan's head.

Plans are cached in ``/tmp/bigsmall-proto`` (planning a file takes seconds to minutes).
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import attrs
import numpy as np
import zstandard

from bigsmall.codecs import rans, tables
from bigsmall.codecs.field import _UINT, FieldCodec, Layout
from bigsmall.core.planner import plan_tensor
from bigsmall.core.safetensors_header import parse_header

CACHE = Path("/tmp/bigsmall-proto")


@attrs.frozen
class FieldTensor:
    name: str
    values: np.ndarray  # uint16/uint32 view of the tensor's elements
    spec: object
    plan: object  # today's TensorPlan (codec "field")
    state: object  # today's prepared decoder state
    lay: Layout
    nrows: int
    ncols: int
    rowctx: np.ndarray
    colctx: np.ndarray
    freq: np.ndarray  # int64[nctx, 2**eb], rows sum to 2**12
    mfreq: np.ndarray  # int64[2**eb, 2**mb] indexed by exponent (zero rows if absent), 2**10
    eweights: np.ndarray  # dequantised stored weights (exponent), int64[nctx, 2**eb]
    mweights: np.ndarray  # int64[2**eb, 2**mb]
    rshift: np.ndarray

    @property
    def current_size(self) -> int:
        return len(self.plan.head) + sum(len(c) for c in self.plan.chunks)


def _read(path: Path):
    data = path.read_bytes()
    (hl,) = struct.unpack("<Q", data[:8])
    hdr = parse_header(data[: 8 + hl], len(data))
    return hdr, memoryview(data)[8 + hl:]


def load(model: str, limit: int | None = None) -> list[FieldTensor]:
    from bigsmall.testing import corpus

    path = Path(corpus.reference_models()[model])
    CACHE.mkdir(exist_ok=True)
    cache = CACHE / f"{model}.pkl"
    hdr, body = _read(path)
    if cache.exists():
        plans = pickle.loads(cache.read_bytes())
    else:
        plans = {}
        for spec in hdr.tensors:
            data = np.frombuffer(body[spec.begin: spec.end], np.uint8)
            plan = plan_tensor(data, spec)
            if plan.codec == "field":
                plans[spec.name] = plan
        cache.write_bytes(pickle.dumps(plans))
    codec = FieldCodec()
    out = []
    for spec in hdr.tensors:
        if spec.name not in plans:
            continue
        plan = plans[spec.name]
        st = codec.prepare(spec, plan.params, plan.head)
        lay = st.lay
        values = np.frombuffer(body[spec.begin: spec.end], np.uint8).view(_UINT[lay.width // 8])
        nrows, ncols = plan.params["matrix"]
        raw = zstandard.ZstdDecompressor().decompress(plan.head, max_output_size=1 << 30)
        kr, kc = plan.params["grid"]
        pos = (nrows if kr > 1 else 0) + (ncols if kc > 1 else 0)
        alpha = 1 << lay.eb
        qexp, pos = tables.unpack_rows(raw, pos, kr * kc, alpha)
        ew = tables.dequantize(qexp)
        freq = rans.normalize_weights(ew, 12)
        if lay.mb:
            qm, pos = tables.unpack_rows(raw, pos, alpha, 1 << lay.mb)
            mw = tables.dequantize(qm)
            mfreq = rans.normalize_weights(mw, 10)
        else:
            mw = np.zeros((alpha, 1), np.int64)
            mfreq = np.zeros((alpha, 1), np.int64)
        out.append(FieldTensor(spec.name, values, spec, plan, st, lay, nrows, ncols,
                               st.rowctx.astype(np.int64), st.colctx.astype(np.int64), freq,
                               mfreq, ew, mw, st.rshift.astype(np.int64)))
        if limit and len(out) >= limit:
            break
    return out


def current_decode(t: FieldTensor, out: np.ndarray) -> None:
    """Today's decoder on the whole tensor, one thread (the production entry point)."""
    from bigsmall.codecs._decode4 import decode_chunks

    plan = t.plan
    offs = np.zeros(len(plan.chunks) + 1, np.int64)
    np.cumsum([len(c) for c in plan.chunks], out=offs[1:])
    blob = np.frombuffer(b"".join(plan.chunks), np.uint8)
    st = t.state
    lay = st.lay
    bad = decode_chunks(out, 0, 1, int(plan.params["chunk"]), t.ncols, st.rowctx, st.colctx,
                        st.tsym, st.tfc, st.prob_bits, st.msym, st.mfc, st.mprob_bits, lay.p,
                        lay.eb, lay.mb, st.rshift, blob, offs)
    assert bad < 0


def current_job(t: FieldTensor):
    """(callable decoding the whole tensor once into a fresh buffer kept by the closure, buffer)."""
    from bigsmall.codecs._decode4 import decode_chunks

    plan = t.plan
    offs = np.zeros(len(plan.chunks) + 1, np.int64)
    np.cumsum([len(c) for c in plan.chunks], out=offs[1:])
    blob = np.frombuffer(b"".join(plan.chunks), np.uint8)
    st = t.state
    lay = st.lay
    out = np.empty_like(t.values)
    per = int(plan.params["chunk"])

    def run() -> None:
        bad = decode_chunks(out, 0, 1, per, t.ncols, st.rowctx, st.colctx, st.tsym, st.tfc,
                            st.prob_bits, st.msym, st.mfc, st.mprob_bits, lay.p, lay.eb, lay.mb,
                            st.rshift, blob, offs)
        assert bad < 0

    return run, out


def summary(ts: list[FieldTensor]) -> str:
    n = sum(t.values.size for t in ts)
    raw = sum(t.values.nbytes for t in ts)
    cur = sum(t.current_size for t in ts)
    return (f"{len(ts)} field tensors, {n / 1e6:.2f} M elements, {raw / 1e6:.1f} MB raw, "
            f"today's coded {cur / raw * 100:.2f}%")


if __name__ == "__main__":
    import sys

    for m in sys.argv[1:] or ["minilm-bf16", "whisper-tiny-fp16"]:
        ts = load(m)
        print(m, summary(ts))
        layouts = {}
        for t in ts:
            key = (tuple(t.plan.params["layout"]), tuple(t.plan.params["grid"]))
            layouts[key] = layouts.get(key, 0) + t.values.size
        print(json.dumps({str(k): v for k, v in sorted(layouts.items(), key=lambda kv: -kv[1])}))
