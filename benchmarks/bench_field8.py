"""``field`` (4 lanes) against ``field8`` (8 interleaved lanes, 63-bit states) on the corpus.

Codes every tensor that ``field`` accepts with both codecs (same model, same tables), checks
both round trips bit for bit, and prints per model the coded size of each and the
single-thread kernel speed (M elements/s, CPU time of this thread, the two kernels timed
interleaved, medians over ``--repeat`` runs).

    python benchmarks/bench_field8.py [--models minilm-bf16 whisper-tiny-fp16 minilm-fp32]
        [--repeat 7] [--level default]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time
from pathlib import Path

import numpy as np

from bigsmall.codecs import field
from bigsmall.codecs.base import get_codec
from bigsmall.core.safetensors_header import parse_header
from bigsmall.plan.planner import chunk_units_for


def _kernel(codec_id: str):  # type: ignore[no-untyped-def]
    if codec_id == "field":
        from bigsmall.codecs._generated.decode4 import decode_chunks
    else:
        from bigsmall.codecs._generated.decode8 import decode_chunks
    return decode_chunks


def _job(codec_id: str, spec, data: np.ndarray, level: str):  # type: ignore[no-untyped-def]
    codec = get_codec(codec_id)
    plan = codec.encode(data, spec, chunk_units_for(spec), level=level)
    if plan is None:
        return None
    st = codec.prepare(spec, plan.params, plan.head)
    lay = st.lay
    offs = np.zeros(len(plan.chunks) + 1, np.int64)
    np.cumsum([len(c) for c in plan.chunks], out=offs[1:])
    blob = np.frombuffer(b"".join(plan.chunks), np.uint8)
    out = np.empty(data.size // (lay.width // 8), field._UINT[lay.width // 8])
    per = int(plan.params["chunk"])
    ncols = int(plan.params["matrix"][1])
    kern = _kernel(codec_id)

    def run() -> None:
        bad = kern(out, 0, 1, per, ncols, st.rowctx, st.colctx, st.tsym, st.tfc, st.prob_bits,
                   st.msym, st.mfc, st.mprob_bits, lay.p, lay.eb, lay.mb, st.rshift, blob, offs)
        assert bad < 0, (codec_id, spec.name)

    run()
    assert out.view(np.uint8).tobytes() == data.tobytes(), (codec_id, spec.name)
    size = len(plan.head) + sum(len(c) for c in plan.chunks)
    return run, size, out.size


def main() -> None:
    from bigsmall.testing import corpus

    ap = argparse.ArgumentParser()
    models = corpus.reference_models()
    ap.add_argument("--models", nargs="*", default=list(models))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--level", default="default")
    a = ap.parse_args()
    for name in a.models:
        path = Path(models[name])
        raw = path.read_bytes()
        (hl,) = struct.unpack("<Q", raw[:8])
        hdr = parse_header(raw[: 8 + hl], len(raw))
        body = memoryview(raw)[8 + hl:]
        jobs: dict[str, list] = {"field": [], "field8": []}
        sizes = {"field": 0, "field8": 0}
        nbytes = 0
        units = 0
        t0 = time.perf_counter()
        for spec in hdr.tensors:
            data = np.frombuffer(body[spec.begin: spec.end], np.uint8)
            got = {cid: _job(cid, spec, data, a.level) for cid in jobs}
            if got["field"] is None or got["field8"] is None:
                assert got["field"] is None and got["field8"] is None, spec.name
                continue
            nbytes += data.size
            units += got["field"][2]
            for cid, (run, size, _n) in got.items():
                jobs[cid].append(run)
                sizes[cid] += size
        enc_s = time.perf_counter() - t0
        times: dict[str, list[float]] = {cid: [] for cid in jobs}
        for _ in range(a.repeat):
            for cid, runs in jobs.items():  # interleaved: load hits both alike
                c0 = time.thread_time()
                for run in runs:
                    run()
                times[cid].append(time.thread_time() - c0)
        med = {cid: statistics.median(v) for cid, v in times.items()}
        print(f"{name}: {len(jobs['field'])} field tensors, {units / 1e6:.2f} M units, "
              f"{nbytes / 1e6:.1f} MB (round trips OK; encode both {enc_s:.1f} s)")
        for cid in jobs:
            print(f"  {cid:7s} size {sizes[cid]:>11,d} B ({sizes[cid] / nbytes * 100:.3f}%)  "
                  f"decode {units / med[cid] / 1e6:7.1f} M units/s single thread "
                  f"(median {med[cid] * 1e3:.1f} ms)")
        print(f"  field8/field: size {sizes['field8'] / sizes['field']:.5f}, "
              f"speed x{med['field'] / med['field8']:.2f}")


if __name__ == "__main__":
    main()
