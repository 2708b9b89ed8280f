"""Prototype entropy stages of the ``field`` codec (``benchmarks/proto/experimental_entropy.py``)
against today's kernel, on the real ``field`` tensors of corpus files.

For every variant: encode every chunk of every tensor, check the decode is bit-exact, report
the coded size (today's side information + the variant's chunks) against today's, and the
single-thread kernel speed (CPU time of this thread), variants timed *interleaved*
(A, B, C, A, B, C, ...; medians), so machine load hits all alike.

    python benchmarks/proto_entropy.py [--models minilm-bf16 whisper-tiny-fp16]
        [--variants current two:4 two64:8 joint:8:12 ...] [--repeat 7]

A variant is ``mode:lanes[:joint_prob_bits][:c][:pe][:pm][:nr][:pd]`` (``c``: layout compiled in
as constants; ``pe``/``pm``/``nr``: decoder-only options of ``experimental_entropy._gen``); ``current`` is today's codec and kernel;
``huff:lanes:L`` is the joint prefix code of ``experimental_huffman`` with code lengths <= L
(``huff:lanes:t``: optimal lengths <= 15 with two-level tables, ``tb``: branch-free;
``pd``: raw bits placed by BMI2 pdep, ``nr``: loop without row shift);
``hyb:lanes`` is ``experimental_hybrid`` (exponent rANS + mantissa prefix code).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import experimental_entropy as xe  # noqa: E402
import experimental_huffman as xh  # noqa: E402
import experimental_hybrid as xy  # noqa: E402
import proto_common as pc  # noqa: E402


class Variant:
    def __init__(self, spec: str, ts: list[pc.FieldTensor]):
        self.spec = spec
        self.ts = ts
        if spec == "current":
            self.jobs = [pc.current_job(t) for t in ts]
            self.size = sum(t.current_size for t in ts)
            return
        parts = spec.split(":")
        self.mode, self.N = parts[0], int(parts[1])
        nums = [int(x) for x in parts[2:] if x.isdigit()]
        self.jp = nums[0] if nums else 12
        self.const = "c" in parts[2:]  # layout as compile-time constants (a kernel per layout)
        self.opts = frozenset(parts[2:]) & {"pe", "pm", "nr", "pd"}  # decoder-only options
        if self.mode == "huff":
            self._init_huff(ts)
            return
        if self.mode == "hyb":
            self._init_hyb(ts)
            return
        self.jobs = []
        self.size = 0
        dummy8 = np.zeros(1, np.uint8)
        dummy32 = np.zeros(1, np.uint32)
        dummy64 = np.zeros(1, np.uint64)
        for t in ts:
            lay = t.lay
            st = t.state
            k = xe.kernel(self.mode, self.N, (lay.p, lay.eb, lay.mb) if self.const else None,
                          self.opts)
            per = int(t.plan.params["chunk"])
            joint = self.mode in ("joint", "joint64")
            jfreq = xe.joint_freq(t.freq, t.mfreq, lay.eb, lay.mb, self.jp) if joint else None
            jt = xe.joint_table(jfreq, self.jp) if joint else dummy64
            chunks = []
            for k0 in range(0, t.values.size, per):
                part = t.values[k0: k0 + per]
                chunks.append(np.frombuffer(xe.encode_chunk(
                    self.mode, self.N, part, k0, t.ncols, t.rowctx, t.colctx, t.freq, t.mfreq,
                    jfreq, lay, t.rshift, self.jp), np.uint8))
            self.size += len(t.plan.head) + sum(c.size - 8 for c in chunks)  # padding not counted
            out = np.empty_like(t.values)
            if joint:
                args = (dummy8, dummy32, dummy8, dummy32, jt, self.jp, 0)
            elif self.mode == "raw":
                args = (dummy8, dummy32, dummy8, dummy32, dummy64, 12, 10)
            else:
                tsym = xe.packed_exp(st.tsym, st.tfc, 12) if "pe" in self.opts else st.tsym
                msym = (xe.packed_mant(st.msym, st.mfc, 10) if "pm" in self.opts and lay.mb
                        else st.msym)
                args = (tsym, st.tfc, msym, st.mfc, dummy64, 12, 10)
            calls = [(out[k0: k0 + per], k0, c) for k0, c in zip(range(0, t.values.size, per), chunks, strict=True)]
            rowctx = t.rowctx.astype(np.int64)
            colctx = t.colctx.astype(np.int64)
            rsh = t.rshift.astype(np.int64)

            def run(calls=calls, ncols=t.ncols, rowctx=rowctx, colctx=colctx, args=args,
                    lay=lay, rsh=rsh, k=k):
                for o, k0, c in calls:
                    rc = k(o, k0, ncols, rowctx, colctx, *args, lay.p, lay.eb, lay.mb, rsh, c)
                    if rc != 0:
                        raise RuntimeError(f"kernel returned {rc}")

            self.jobs.append((run, out))

    def _init_huff(self, ts: list[pc.FieldTensor]) -> None:
        """``huff:N:L``: joint prefix code per context, length limit L (experimental_huffman)."""
        flags = self.spec.split(":")[2:]
        two: bool | str = ("branchless" if "tb" in flags else
                           "t" in flags)  # two-level tables, lengths <= 15
        L = xh.L1 if two else self.jp
        k = xh.kernel(self.N, L, two, frozenset(flags) & {"pd", "nr"})
        self.jobs = []
        self.size = 0
        for t in ts:
            lay = t.lay
            per = int(t.plan.params["chunk"])
            nctx = t.freq.shape[0]
            if lay.mb:
                jw = (t.freq[:, :, None] * t.mfreq[None, :, :]).reshape(nctx, -1)
            else:
                jw = t.freq
            if two:
                lens, codes, dec, t2, dirs = xh.tables2(jw)
            else:
                lens, codes, dec = xh.tables(jw, L)
                t2, dirs = np.zeros(1, np.uint16), np.zeros(1, np.int64)
            chunks = []
            for k0 in range(0, t.values.size, per):
                chunks.append(np.frombuffer(xh.encode_chunk(
                    self.N, t.values[k0: k0 + per], k0, t.ncols, t.rowctx, t.colctx, lens, codes,
                    lay, t.rshift), np.uint8))
            self.size += len(t.plan.head) + sum(c.size - 8 for c in chunks)
            out = np.empty_like(t.values)
            calls = [(out[k0: k0 + per], k0, c) for k0, c in zip(range(0, t.values.size, per), chunks, strict=True)]

            def run(calls=calls, ncols=t.ncols, rowctx=t.rowctx, colctx=t.colctx, dec=dec,
                    t2=t2, dirs=dirs, lay=lay, rsh=t.rshift, k=k):
                for o, k0, c in calls:
                    rc = k(o, k0, ncols, rowctx, colctx, dec, t2, dirs, lay.p, lay.eb, lay.mb,
                           rsh, c)
                    if rc != 0:
                        raise RuntimeError(f"kernel returned {rc}")

            self.jobs.append((run, out))

    def _init_hyb(self, ts: list[pc.FieldTensor]) -> None:
        """``hyb:N``: exponent by rANS (63-bit states), mantissa-top by a per-exponent prefix
        code read with the raw bits (experimental_hybrid)."""
        k = xy.kernel(self.N)
        self.jobs = []
        self.size = 0
        for t in ts:
            lay = t.lay
            st = t.state
            per = int(t.plan.params["chunk"])
            mlens, mcodes, mdec = xy.mantissa_code(t.mfreq, lay.mb)
            chunks = []
            for k0 in range(0, t.values.size, per):
                chunks.append(np.frombuffer(xy.encode_chunk(
                    self.N, t.values[k0: k0 + per], k0, t.ncols, t.rowctx, t.colctx, t.freq,
                    mlens, mcodes, lay, t.rshift), np.uint8))
            self.size += len(t.plan.head) + sum(c.size - 8 for c in chunks)
            out = np.empty_like(t.values)
            calls = [(out[k0: k0 + per], k0, c) for k0, c in zip(range(0, t.values.size, per), chunks, strict=True)]

            def run(calls=calls, ncols=t.ncols, rowctx=t.rowctx, colctx=t.colctx, st=st,
                    mdec=mdec, lay=lay, rsh=t.rshift, k=k):
                for o, k0, c in calls:
                    rc = k(o, k0, ncols, rowctx, colctx, st.tsym, st.tfc, mdec, lay.p, lay.eb,
                           lay.mb, rsh, c)
                    if rc != 0:
                        raise RuntimeError(f"kernel returned {rc}")

            self.jobs.append((run, out))

    def run(self) -> float:
        t0 = time.thread_time()
        for run, _ in self.jobs:
            run()
        return time.thread_time() - t0

    def check(self) -> None:
        for t, (_, out) in zip(self.ts, self.jobs, strict=True):
            if not np.array_equal(out, t.values):
                bad = np.flatnonzero(out != t.values)
                raise AssertionError(f"{self.spec}: {t.name} differs at {bad[:5]} of {out.size}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["minilm-bf16", "whisper-tiny-fp16"])
    ap.add_argument("--variants", nargs="+",
                    default=["current", "two:4", "two:8", "split:4", "two64:4", "two64:8",
                             "joint:8:12", "joint64:8:16", "raw:8"])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--limit", type=int, default=None, help="first N field tensors only")
    args = ap.parse_args(argv)
    for model in args.models:
        ts = pc.load(model, args.limit)
        n = sum(t.values.size for t in ts)
        raw = sum(t.values.nbytes for t in ts)
        print(f"== {model}: {pc.summary(ts)}", flush=True)
        vs = []
        for spec in args.variants:
            t0 = time.perf_counter()
            v = Variant(spec, ts)
            v.run()  # compile + warm
            v.check()
            vs.append(v)
            print(f"   {spec}: encoded+checked in {time.perf_counter() - t0:.1f}s", flush=True)
        times: dict[str, list[float]] = {v.spec: [] for v in vs}
        for _ in range(args.repeat):
            for v in vs:
                times[v.spec].append(v.run())
        base = next((v for v in vs if v.spec == "current"), vs[0])
        bt = statistics.median(times[base.spec])
        print(f"   {'variant':<14} {'M el/s':>8} {'best':>8} {'speed-up':>8} {'size %':>8} "
              f"{'vs current pp':>13}")
        for v in vs:
            med = statistics.median(times[v.spec])
            print(f"   {v.spec:<14} {n / med / 1e6:8.1f} {n / min(times[v.spec]) / 1e6:8.1f} "
                  f"x{bt / med:7.2f} {v.size / raw * 100:8.3f} "
                  f"{(v.size - base.size) / raw * 100:+13.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
