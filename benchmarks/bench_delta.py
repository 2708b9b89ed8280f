"""The figures of docs/delta.md: fine-tune patches against their base, per pair.

Pairs (``bigsmall/testing/finetune.py``, built once and cached): MiniLM bf16 after 40 and 300
AdamW steps (lr 2e-5, fp32 master weights cast to bf16 after every step), MiniLM fp32 after
40 steps, and Whisper tiny.en fp16 with only its decoder fine-tuned for 40 steps (``whisper-40``). For each: the fraction of values changed; the patch (``compress --delta-from``) as a
% of the fine-tune's file, next to the standalone ``.bs`` and to XOR with the base + zstd -19
(per tensor, the published baseline); then, interleaved, ``compress`` with and without
``delta_from``, ``apply`` against ``decompress`` of the standalone ``.bs`` (both without
fsync: the disk is not what is compared), and ``load(patch, base=)`` against ``load`` of the
standalone ``.bs`` (into memory), medians of ``--repeat``; the same two for the patch written in
delta version 2 (four rANS states a chunk: what bigsmall wrote before version 3's 32), so that
the gain of version 3 is read from one run.

    python benchmarks/bench_delta.py [--repeat 3] [--pairs bf16-40,bf16-300,fp32-40,whisper-40] [--json]
    python benchmarks/bench_delta.py --contexts [--pairs bf16-40]
    python benchmarks/bench_delta.py --kernels [--pairs ...] [--repeat 7]

Peak RSS (each in a fresh process, VmHWM above the process's baseline after import): ``apply``
against ``decompress`` of the standalone ``.bs``, and ``load(patch, base=)`` against ``load``;
the bound for ``apply`` is the restore's (2 x the largest tensor + 200 MB) plus one base tensor.

``--kernels``: the delta decoder alone on every chunk of the patch's delta tensors, the numba
reference against the C port (``bigsmall.native._delta``, AVX2 and plain builds; and the AVX2
build on the version 2 patch's chunks), interleaved,
in ns of CPU time (``time.thread_time``: a busy shared machine deschedules the thread, it does
not slow its instructions) per element: the best of ``--repeat`` passes.

``--contexts``: why the codec's contexts (docs/delta.md): the order-0 entropy of the codec's
symbols (+ its raw bits) alone, given the base value's exponent, given the exponent and the
previous element's symbol, given the exponent and the base's top mantissa bit, and given the
exponent and a 4-way row cluster (+ 2 bits a row), in % of the fine-tune's file (no table costs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import zstandard
from timing import median_time  # benchmarks/timing.py (the script's folder is on sys.path)

import bigsmall
from bigsmall.io.delta import BaseModel, diff
from bigsmall.testing.finetune import finetune_pair, whisper_pair


def xor_zstd(base: Path, ft: Path) -> int:
    """XOR with the base tensor, then zstd -19, per tensor (tensors absent from the base: alone)."""
    cctx = zstandard.ZstdCompressor(level=19)
    total = 0
    with BaseModel(base) as b, BaseModel(ft) as f:
        for name, (spec, _s, _o) in f.specs.items():
            x = f.data(name)
            have = b.specs.get(name)
            if have is not None and have[0].nbytes == spec.nbytes:
                x = x ^ b.data(name)
            total += len(cctx.compress(x.tobytes()))
    return total


def _h(sym: Any, ctx: Any) -> float:
    """Bits to code ``sym`` with an ideal static model per context (conditional entropy)."""
    import numpy as np

    joint = np.unique(ctx.astype(np.int64) * 4096 + sym, return_counts=True)[1].astype(np.float64)
    marg = np.unique(ctx, return_counts=True)[1].astype(np.float64)
    return float((marg * np.log2(marg)).sum() - (joint * np.log2(joint)).sum())


def context_study(base: Path, ft: Path) -> dict[str, float]:
    import numpy as np

    from bigsmall.codecs import delta as dc

    bits = dict.fromkeys(("alone", "exponent", "exponent+previous", "exponent+mantissa bit",
                          "exponent+row cluster"), 0.0)
    with BaseModel(base) as b, BaseModel(ft) as f:
        for name, (spec, _s, _o) in f.specs.items():
            have = b.specs.get(name)
            if have is None or have[0].dtype != spec.dtype or have[0].shape != spec.shape:
                continue
            wb, wbits, kind, mbits, ebits = dc._layout(spec)
            bw = b.data(name).view(dc._WORDS[wb])
            fw = f.data(name).view(dc._WORDS[wb])
            if bw.size == 0 or np.array_equal(bw, fw):
                continue
            e = ((bw >> mbits) & ((1 << ebits) - 1)).astype(np.int64) if kind == 2 else np.zeros(bw.size, np.int64)
            sym, ce = dc._symbols(bw, fw, wbits, kind, mbits, ebits, int(e.max()) - 15, 16)
            sym = sym.astype(np.int64)
            raw = float(np.maximum(sym // 2 - 1, 0)[sym >= 4].sum())
            rows, cols = dc._rows(spec, bw.size)
            prev = np.concatenate([[0], np.minimum(sym[:-1], 2)])
            top = ((bw >> max(mbits - 1, 0)) & 1).astype(np.int64) if mbits else np.zeros(bw.size, np.int64)
            rc = np.repeat(dc._row_clusters(sym, rows, cols, 4), cols) if rows >= 64 else np.zeros(bw.size, np.int64)
            bits["alone"] += _h(sym, np.zeros(sym.size, np.int64)) + raw
            bits["exponent"] += _h(sym, ce) + raw
            bits["exponent+previous"] += _h(sym, ce * 3 + prev) + raw
            bits["exponent+mantissa bit"] += _h(sym, ce * 2 + top) + raw
            bits["exponent+row cluster"] += _h(sym, ce * 4 + rc) + raw + (2 * rows if rows >= 64 else 0)
    size = ft.stat().st_size
    return {k: 100 * v / 8 / size for k, v in bits.items()}


_RSS_CHILD = r"""
import json, sys
import bigsmall
from bigsmall.codecs import delta, rans  # kernels loaded (cached) before the baseline
from bigsmall.io import delta as delta_io
def hwm(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
base = hwm("VmRSS:")
what, src, out, basem = sys.argv[1:5]
if what == "apply":
    bigsmall.apply(basem, src, out, force=True, durable=False)
elif what == "decompress":
    bigsmall.decompress(src, out, force=True, durable=False)
elif what == "load_base":
    sd = bigsmall.load(src, base=basem)
else:
    sd = bigsmall.load(src)
print(json.dumps({"baseline": base, "peak": hwm("VmHWM:")}))
"""


def peak_rss(what: str, src: Path, out: Path, base: Path) -> int:
    """Peak RSS above the baseline of a fresh process running ``what`` (bytes)."""
    child = subprocess.run([sys.executable, "-c", _RSS_CHILD, what, str(src), str(out), str(base)],
                           check=True, capture_output=True, text=True)
    r = json.loads(child.stdout.strip().splitlines()[-1])
    return int(r["peak"] - r["baseline"])


def patch_v2(ft: Path, out: Path, base: Path) -> None:
    """The patch as bigsmall wrote it before delta version 3 (four states a chunk, PB 13)."""
    from bigsmall.codecs import delta as dc

    enc = dc.encode
    dc.encode = lambda b, f, s, version=2: enc(b, f, s, version=2)  # type: ignore[assignment]
    try:
        bigsmall.compress(ft, out, delta_from=base, force=True)
    finally:
        dc.encode = enc  # type: ignore[assignment]


def kernel_study(label: str, base: Path, ft: Path, repeat: int, tmp: Path) -> dict[str, float]:
    """ns of CPU time per element of the delta decoder: numba, C (AVX2), C (plain), on the
    version 3 patch (the default) and the version 2 one."""
    import time

    import numpy as np

    from bigsmall import native
    from bigsmall.codecs import delta as dc
    from bigsmall.io.reader import BsFile
    from bigsmall.plan.decode import split_blob

    c = native.delta()
    if c is None:
        raise SystemExit("bigsmall.native._delta is not built (or BIGSMALL_NATIVE=0)")
    jobs: dict[int, list[Any]] = {2: [], 3: []}
    for version, patch in ((3, tmp / f"{label}.patch.bs"), (2, tmp / f"{label}.v2.patch.bs")):
        if version == 3:
            bigsmall.compress(ft, patch, delta_from=base, force=True)
        else:
            patch_v2(ft, patch, base)
        with BsFile(patch, base=base) as f:
            for t in f.container.tensors:
                if t.codec != dc.CODEC_ID:
                    continue
                head, chunks = split_blob(bytes(f.source.read(t.offset, t.length)), t.head_len, t.chunk_lens)
                st = dc.prepare(t.spec, t.params, head)
                bd = np.array(f.base.data(t.params["of"]))
                wb, wbits, kind, mbits, ebits, elo, nk, nr, cols, rowctx, tsym, tfc, det, skip, lanes, pb, per = st
                dt = dc._WORDS[wb]
                for i, (lo, hi) in enumerate(dc.chunk_ranges(st, t.spec, len(chunks))):
                    args = (np.frombuffer(bytes(chunks[i]), np.uint8), bd[lo:hi].view(dt),
                            np.empty(hi - lo, np.uint8).view(dt), i * per, wbits, kind, mbits, ebits, elo,
                            nk, cols, rowctx, nr, tsym, tfc, 2 * wbits, pb, det, skip, dc.ZLEAD, dc.RAWN, lanes)
                    jobs[version].append((args, bytes(f.read_bytes(t.name)[lo:hi])))
    n = sum(a[1].size for a, _ in jobs[3])
    isa = c.isa()
    variants = {"numba": (dc._decode, isa, 3), "C v2": (c.decode, isa, 2), "C": (c.decode, isa, 3),
                "C plain": (c.decode, "scalar", 3)}
    best = dict.fromkeys(variants, float("inf"))
    try:
        for _ in range(repeat):  # interleaved
            for name, (fn, want, version) in variants.items():
                c._set_isa(want)
                t0 = time.thread_time()
                for args, _ in jobs[version]:
                    assert fn(*args) == 0
                best[name] = min(best[name], time.thread_time() - t0)
                assert all(a[2].tobytes() == ref for a, ref in jobs[version]), name
    finally:
        c._set_isa(isa)
    return {"elements": n, **{k: 1e9 * v / n for k, v in best.items()}}


def measure(label: str, dtype: str, steps: int, repeat: int, tmp: Path) -> dict[str, Any]:
    base, ft = whisper_pair(steps) if dtype == "whisper" else finetune_pair(dtype, steps)
    size = ft.stat().st_size
    patch, alone = tmp / f"{label}.patch.bs", tmp / f"{label}.bs"
    bigsmall.compress(ft, patch, delta_from=base, force=True)  # warm-up: kernels load
    bigsmall.compress(ft, alone, force=True)
    patch2 = tmp / f"{label}.v2.patch.bs"  # the same patch in delta version 2 (before 32 states)
    patch_v2(ft, patch2, base)
    td_apply2: list[float] = []
    tl_patch2: list[float] = []
    tc_alone: list[float] = []
    tc_patch: list[float] = []
    td_alone: list[float] = []
    td_apply: list[float] = []
    tl_alone: list[float] = []
    tl_patch: list[float] = []
    for _ in range(repeat):  # interleaved: the machine is shared, load drifts
        tc_alone.append(bigsmall.compress(ft, alone, force=True).seconds)
        tc_patch.append(bigsmall.compress(ft, patch, delta_from=base, force=True).seconds)
        td_alone.append(bigsmall.decompress(alone, tmp / "o1", force=True, durable=False).seconds)
        td_apply.append(bigsmall.apply(base, patch, tmp / "o2", force=True, durable=False).seconds)
        tl_alone.append(median_time(lambda: bigsmall.load(alone), 1))
        tl_patch.append(median_time(lambda: bigsmall.load(patch, base=base), 1))
        td_apply2.append(bigsmall.apply(base, patch2, tmp / "o4", force=True, durable=False).seconds)
        tl_patch2.append(median_time(lambda: bigsmall.load(patch2, base=base), 1))
    assert (tmp / "o2").read_bytes() == ft.read_bytes() == (tmp / "o4").read_bytes()
    rss = {w: peak_rss(w, patch if w in ("apply", "load_base") else alone, tmp / "o3", base)
           for w in ("apply", "decompress", "load_base", "load")}
    with BaseModel(ft) as f:
        largest = max(spec.nbytes for spec, _s, _o in f.specs.values())
    with BaseModel(base) as b:
        largest_base = max(spec.nbytes for spec, _s, _o in b.specs.values())
    d = diff(base, ft)
    xz = xor_zstd(base, ft)
    ps, ss = patch.stat().st_size, alone.stat().st_size
    m = statistics.median
    return {
        "pair": label, "dtype": dtype, "steps": steps, "file_bytes": size,
        "fraction_changed": d["fraction_changed"],
        "patch_bytes": ps, "patch_pct": 100 * ps / size,
        "patch_v2_bytes": patch2.stat().st_size, "patch_v2_pct": 100 * patch2.stat().st_size / size,
        "standalone_bytes": ss, "standalone_pct": 100 * ss / size,
        "xor_zstd19_bytes": xz, "xor_zstd19_pct": 100 * xz / size,
        "patch_vs_xor_zstd": ps / xz,
        "compress_s": m(tc_alone), "compress_delta_s": m(tc_patch),
        "compress_speed_ratio": m(tc_alone) / m(tc_patch),
        "decompress_s": m(td_alone), "apply_s": m(td_apply),
        "apply_speed_ratio": m(td_alone) / m(td_apply),
        "load_s": m(tl_alone), "load_base_s": m(tl_patch),
        "load_speed_ratio": m(tl_alone) / m(tl_patch),
        "apply_v2_s": m(td_apply2), "apply_v2_speed_ratio": m(td_alone) / m(td_apply2),
        "load_base_v2_s": m(tl_patch2), "load_v2_speed_ratio": m(tl_alone) / m(tl_patch2),
        **{f"{w}_peak_rss_MB": v / 1e6 for w, v in rss.items()},
        "apply_rss_bound_MB": (2 * largest + 200_000_000 + largest_base) / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pairs", default="bf16-40,bf16-300,fp32-40,whisper-40")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--contexts", action="store_true", help="the context study instead of the timings")
    ap.add_argument("--kernels", action="store_true", help="the decoder kernels alone: numba vs C")
    args = ap.parse_args(argv)
    if args.kernels:
        with tempfile.TemporaryDirectory() as t:
            for label in args.pairs.split(","):
                dtype, steps = label.split("-")
                base, ft = whisper_pair(int(steps)) if dtype == "whisper" else finetune_pair(dtype, int(steps))
                r = kernel_study(label, base, ft, args.repeat, Path(t))
                print(f"{label}: {r.pop('elements') / 1e6:.1f}M elements, ns of CPU a element: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in r.items())
                      + f" (C x{r['numba'] / r['C']:.2f} of numba's speed, x{r['C v2'] / r['C']:.2f} of"
                      " the version 2 chunks')")
        return 0
    if args.contexts:
        for label in args.pairs.split(","):
            dtype, steps = label.split("-")
            base, ft = whisper_pair(int(steps)) if dtype == "whisper" else finetune_pair(dtype, int(steps))
            r = context_study(base, ft)
            print(f"{label}: xor+zstd19 {100 * xor_zstd(base, ft) / ft.stat().st_size:.2f} %, "
                  + ", ".join(f"{k} {v:.2f} %" for k, v in r.items()))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as t:
        for label in args.pairs.split(","):
            dtype, steps = label.split("-")
            rows.append(measure(label, dtype, int(steps), args.repeat, Path(t)))
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    print("| pair | values changed | patch | standalone .bs | XOR + zstd-19 | patch / XOR+zstd | "
          "compress --delta-from vs compress | apply vs decompress | load(patch, base=) vs load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        model = "Whisper tiny fp16 (decoder)" if r["dtype"] == "whisper" else f"MiniLM {r['dtype']}"
        print(f"| {model}, {r['steps']} steps | {r['fraction_changed'] * 100:.1f} % | "
              f"{r['patch_pct']:.2f} % | {r['standalone_pct']:.2f} % | {r['xor_zstd19_pct']:.2f} % | "
              f"{r['patch_vs_xor_zstd']:.2f} | {r['compress_delta_s']:.2f} s vs {r['compress_s']:.2f} s "
              f"(x{r['compress_speed_ratio']:.2f}) | {r['apply_s']:.2f} s vs {r['decompress_s']:.2f} s "
              f"(x{r['apply_speed_ratio']:.2f}) | {r['load_base_s']:.2f} s vs {r['load_s']:.2f} s "
              f"(x{r['load_speed_ratio']:.2f}) |")
    print("\n| pair | patch v3 (32 states) | patch v2 (4 states) | apply vs decompress: v3 | v2 | "
          "load(patch, base=) vs load: v3 | v2 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pair']} | {r['patch_pct']:.3f} % | {r['patch_v2_pct']:.3f} % | "
              f"x{r['apply_speed_ratio']:.2f} | x{r['apply_v2_speed_ratio']:.2f} | "
              f"x{r['load_speed_ratio']:.2f} | x{r['load_v2_speed_ratio']:.2f} |")
    print("\n| pair | apply peak RSS | decompress | bound (2 x largest + 200 MB + a base tensor) "
          "| load(patch, base=) | load |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pair']} | {r['apply_peak_rss_MB']:.0f} MB | {r['decompress_peak_rss_MB']:.0f} MB | "
              f"{r['apply_rss_bound_MB']:.0f} MB | {r['load_base_peak_rss_MB']:.0f} MB | "
              f"{r['load_peak_rss_MB']:.0f} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
