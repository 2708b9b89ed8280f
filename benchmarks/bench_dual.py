"""The dual-fidelity ``.bsd`` against the lossless ``.bs``: size, fast member, speeds, create RSS.

    .venv/bin/python benchmarks/bench_dual.py [--repeat 3] [--json] [--models minilm-bf16,...]

Per corpus model (MiniLM bf16 and fp32, Whisper tiny fp16):

* sizes in percent of the raw file: ``.bs``, ``.bsd``, their difference in points (issue 20's
  target: <= +1.0 on bf16, +1.5 on fp16/fp32), the fast member (target <= 22 % of raw bf16,
  <= 12 % of fp32);
* create time of the ``.bsd`` vs ``bigsmall.compress`` of the ``.bs`` (target >= 0.5x);
* restore (``decompress``, no fsync) from the ``.bsd`` vs from the ``.bs`` (target >= 0.8x);
* ``bigsmall.load(bsd, mode="fast")`` vs ``bigsmall.load(bsd)``: bytes read and time (target:
  reads <= 1.05x the fast member, >= 2x faster);
* the fast member's weight error (RMS of dequantized - original over RMS of the original, over
  the quantized matrices) and the create's peak RSS (in a child process) against the promise
  2 x largest tensor + 300 MB.

Timings are medians of ``--repeat`` interleaved runs (variants alternate, so machine load hits
both alike); compare ratios, not absolute numbers across runs.

``--kernels``: the C decode kernels alone on each model's ``.bsd`` chunks, CPU time of one
thread (best of ``--repeat``): the fast chunk's codes (``decode_codes``) on the same codes,
contexts and tables coded with one rANS state (2.0/3.0), with ``dual_fast.LANES`` (8, 4.0) and
``dual_fast.LANES5`` (16, 5.0) interleaved states -- with the contexts per code, and
(``codes_8_lanes_groups_ns``, ``codes_16_lanes_groups_ns``) as ``decode_fast`` calls it, one zero
bin per group and mode 2's column clusters, the contexts built in the kernel -- and the exact
chunk's keys (``decode_lookup``, 3.0/4.0 files; ``exact_cells_ns``: 5.0's value cells,
``native._cells.decode``), in ns per weight; ``dequant_ns``: the codes dequantized into the
model's dtype (``native._dual.dequantize``), ns per weight;
then the 8- and 16-state codes per context mode (0, 1, 2) with the scalar step and the AVX2 step
forced (``_set_isa``, where the CPU has AVX2), interleaved (``codes_{8,16}_mode{m}_{isa}_ns``),
and the dequantization the same way (``dequant_{isa}_ns``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bigsmall
from bigsmall.io import dual
from bigsmall.testing import corpus

MODELS = {
    "minilm-bf16": lambda c: corpus.minilm_bf16(c),
    "minilm-fp32": lambda c: corpus.minilm_safetensors(),
    "whisper-tiny-fp16": lambda c: corpus.whisper_tiny_safetensors(c),
}


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _create_rss(src: Path, dst: Path) -> int:
    """Peak RSS (bytes) of a child process that creates the .bsd (imports included)."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child of this (large,
    # torch-holding) process would report the parent's peak
    code = ("import sys; from bigsmall.io import dual; "
            "dual.create(sys.argv[1], sys.argv[2], force=True, durable=False); "
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    out = subprocess.run([sys.executable, "-c", code, str(src), str(dst)], check=True,
                         capture_output=True, text=True).stdout
    return int(out.split()[-1]) * 1024


def _weight_error(src: Path, fast: dict[str, Any]) -> float:
    from safetensors.torch import load_file

    ref = load_file(str(src))
    err = tot = 0.0
    with dual.DualFile(Path(str(src) + ".bench.bsd")) as d:
        quantized = [s.name for s, t in zip(d.specs, d.doc["tensors"], strict=True) if t["kind"] == "q"]
    for name in quantized:
        a, b = ref[name].double(), fast[name].double()
        err += float(((a - b) ** 2).sum())
        tot += float((a * a).sum())
    return (err / tot) ** 0.5 if tot else 0.0


def bench(name: str, src: Path, repeat: int, d: Path) -> dict[str, Any]:
    raw = src.stat().st_size
    bs, bsd = d / f"{name}.bs", d / f"{name}.bsd"
    t_bs, t_bsd = [], []
    for _ in range(repeat):
        t_bs.append(_timed(lambda: bigsmall.compress(src, bs, force=True)))
        t_bsd.append(_timed(lambda: dual.create(src, bsd, force=True, durable=False)))
    r_bs, r_bsd, l_fast, l_exact = [], [], [], []
    out = d / "restored.safetensors"
    rep_fast: dict[str, int] = {}
    rep_exact: dict[str, int] = {}
    for _ in range(repeat):
        # the output removed outside the clock (as peers.py does): renaming over last round's
        # file made the kernel free its pages inside the timed call, ~29 ms of MiniLM bf16's
        out.unlink(missing_ok=True)
        r_bs.append(_timed(lambda: bigsmall.decompress(bs, out, durable=False)))
        out.unlink(missing_ok=True)
        r_bsd.append(_timed(lambda: bigsmall.decompress(bsd, out, durable=False)))
        l_fast.append(_timed(lambda: bigsmall.load(bsd, mode="fast", report=rep_fast)))
        l_exact.append(_timed(lambda: bigsmall.load(bsd, report=rep_exact)))
    with dual.DualFile(bsd) as f:
        info = f.info()
    link = Path(str(src) + ".bench.bsd")
    fast = bigsmall.load(bsd, mode="fast")
    try:
        link.symlink_to(bsd)
        err = _weight_error(src, fast)
    finally:
        link.unlink(missing_ok=True)
    largest = max(s.nbytes for s in dual.DualFile(bsd).specs)
    rss = _create_rss(src, d / "rss.bsd")
    med = statistics.median
    bs_pct, bsd_pct = 100 * bs.stat().st_size / raw, 100 * bsd.stat().st_size / raw
    return {
        "raw_bytes": raw, "bs_pct": round(bs_pct, 2), "bsd_pct": round(bsd_pct, 2),
        "bsd_minus_bs_points": round(bsd_pct - bs_pct, 2),
        "fast_member_pct": round(100 * info["fast_member_bytes"] / raw, 2),
        "quantized": info["quantized"], "tensors": info["tensors"],
        "create_s": round(med(t_bsd), 3), "compress_s": round(med(t_bs), 3),
        "create_speed_vs_compress": round(med(t_bs) / med(t_bsd), 2),
        "restore_bsd_s": round(med(r_bsd), 3), "restore_bs_s": round(med(r_bs), 3),
        "restore_speed_vs_bs": round(med(r_bs) / med(r_bsd), 2),
        "fast_load_s": round(med(l_fast), 3), "exact_load_s": round(med(l_exact), 3),
        "fast_load_speedup": round(med(l_exact) / med(l_fast), 2),
        "fast_load_bytes": rep_fast["bytes_read"], "exact_load_bytes": rep_exact["bytes_read"],
        "fast_load_bytes_vs_member": round(rep_fast["bytes_read"] / info["fast_member_bytes"], 4),
        "fast_weight_rel_rms_error": round(err, 4),
        "create_peak_rss_mb": round(rss / 1e6, 1),
        "rss_promise_mb": round((2 * largest + 300e6) / 1e6, 1),
    }


def kernels(name: str, src: Path, repeat: int, d: Path) -> dict[str, Any]:
    """ns per weight of the C kernels alone (see the module's docstring)."""
    import numpy as np

    from bigsmall import native
    from bigsmall.codecs import dual as v1
    from bigsmall.codecs import dual_cells as cells
    from bigsmall.codecs import dual_fast as fastc
    from bigsmall.codecs import dual_lookup as lookup

    nat = native.dual()
    if nat is None:
        return {"error": "bigsmall.native._dual is not built"}
    bsd = d / f"{name}.bsd"
    dual.create(src, bsd, force=True, durable=False)
    codes: dict[int, list[tuple[Any, ...]]] = {1: [], fastc.LANES: [], fastc.LANES5: []}
    deq: list[tuple[Any, ...]] = []
    keys: list[tuple[Any, ...]] = []
    cell_calls: list[tuple[Any, ...]] = []
    grouped: dict[int, list[tuple[Any, ...]]] = {fastc.LANES: [], fastc.LANES5: []}
    with dual.DualFile(bsd) as f:
        for spec, t, e in zip(f.specs, f.doc["tensors"], f.exact_chunks(), strict=True):
            if t["kind"] != "q":
                continue
            cols = spec.shape[1]
            for c, ec in zip(t["chunks"], e, strict=True):
                chunk = f._chunk(c, spec.name)
                q, s16, lo16 = f._decode_fast(chunk, c[2], cols)
                deq.append((q, np.ascontiguousarray(s16).view(np.uint16), np.ascontiguousarray(lo16).view(np.uint16),
                            cols, fastc._DTYPE_CODE[spec.dtype],
                            np.empty(q.shape, np.uint32 if spec.dtype == "F32" else np.uint16)))
                mode = chunk[0]
                z = np.ascontiguousarray(v1._zero_bin(s16, lo16, cols), dtype=np.int32)
                zg = np.ascontiguousarray(v1._zero_bin_groups(s16, lo16), dtype=np.int32)
                ctx, nctx = (fastc._up_ctx(q, z), 16 * fastc.UP) if mode == 1 else (z, 16)
                cm, k = np.zeros(0, np.uint8), 0
                if mode == 2:  # the chunk's own column clusters
                    buf = memoryview(chunk)
                    pos = 1 + 4 + v1._U32.unpack(buf[1:5])[0]
                    k, n = int(buf[pos]), v1._U32.unpack(buf[pos + 1:pos + 5])[0]
                    cm = np.frombuffer(v1.zstd_decompress(buf[pos + 5:pos + 5 + n], cols, "x"), np.uint8)
                    z = ctx = np.ascontiguousarray(z * k + cm[None, :].astype(np.int32))
                    nctx = 16 * k
                for lanes in codes:
                    words, _r, freq, cum, lut, ok = v1._parse_stream(fastc.encode_codes(q, ctx, nctx, lanes),
                                                                     nctx, 16, with_lut=False)
                    codes[lanes].append((words, z, freq, cum, lut, ok, np.empty_like(q), cols, int(mode == 1),
                                         lanes))
                    if lanes in grouped:  # as decode_fast calls it
                        grouped[lanes].append((words, zg, freq, cum, lut, ok, np.empty_like(q), cols, int(mode == 1), lanes,
                                        cm, k))
                if f.head["major"] in (3, 4):  # the lookup exact chunk
                    head, _low = lookup.kernel_args(f._read(ec[0], ec[1]), q, s16, lo16, spec.dtype)
                    keys.append((*head, np.empty(q.size, np.int32)))
                elif f.head["major"] == 5:  # the value cells (native._cells)
                    head, _low = cells.kernel_args(f._read(ec[0], ec[1]), q, s16, lo16, spec.dtype)
                    cell_calls.append((*head, np.empty(q.size, np.uint16)))
    n = sum(a[6].size for a in codes[1])
    out: dict[str, Any] = {"weights": n}
    runs = [(f"codes_{lanes}_lanes_ns", nat.decode_codes, codes[lanes]) for lanes in codes]
    runs += [(f"codes_{lanes}_lanes_groups_ns", nat.decode_codes, grouped[lanes]) for lanes in grouped]
    runs.append(("dequant_ns", nat.dequantize, deq))
    if keys:
        runs.append(("exact_keys_ns", nat.decode_lookup, keys))
    ncells = native.cells()
    if cell_calls and ncells is not None:
        runs.append(("exact_cells_ns", ncells.decode, cell_calls))
    for label, fn, calls in runs:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.thread_time()
            for a in calls:
                if fn(*a):
                    raise RuntimeError(f"{label}: a chunk did not decode")
            best = min(best, time.thread_time() - t0)
        out[label] = round(best / n * 1e9, 2)
    # 4.0's and 5.0's codes per context mode (0: z, 1: z and the row above, 2: column clusters)
    # with each instruction set forced (native._dual._set_isa), interleaved: scalar, avx2, ...
    isas = ["scalar", "avx2"] if nat.isa() == "avx2" else ["scalar"]
    default = nat.isa()
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for lanes in (fastc.LANES, fastc.LANES5):
        for a in codes[lanes]:
            groups.setdefault(f"codes_{lanes}_mode{2 if a[3].shape[0] > 16 * fastc.UP else int(a[8])}", []).append(a)
    groups = dict(sorted(groups.items(), key=lambda kv: (kv[0].split("_")[2], int(kv[0].split("_")[1]))))
    groups["dequant"] = deq
    try:
        for label, calls in groups.items():
            fn = nat.dequantize if label == "dequant" else nat.decode_codes
            m = sum(a[0 if label == "dequant" else 6].size for a in calls)
            best_isa = {i: float("inf") for i in isas}
            for _ in range(repeat):
                for isa in isas:
                    nat._set_isa(isa)
                    t0 = time.thread_time()
                    for a in calls:
                        if fn(*a):
                            raise RuntimeError(f"{label} ({isa}): a chunk did not decode")
                    best_isa[isa] = min(best_isa[isa], time.thread_time() - t0)
            out[f"{label}_weights"] = m
            for isa in isas:
                out[f"{label}_{isa}_ns"] = round(best_isa[isa] / m * 1e9, 2)
    finally:
        nat._set_isa(default)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--kernels", action="store_true", help="the C decode kernels alone (ns per weight)")
    args = ap.parse_args()
    cache = corpus.default_cache_dir()
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            res[name] = (kernels if args.kernels else bench)(name, MODELS[name](cache), args.repeat, Path(tmp))
            if not args.json:
                print(name, json.dumps(res[name]), flush=True)
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
