"""Prototype for issue 17's next step: how much faster a prefix decoder runs when each element's
raw low bits live in a bit plane of their own instead of between the codes.

Today's ``fieldp`` streams interleave, per element, the prefix code of its coded field (exponent
and top mantissa bits) and its raw bits, so the serial loop peeks, looks up, extracts the raw
bits, places them and advances by code length + raw width (~27 instructions an element, ~1.9 ns
on this VM). With the raw bits in a separate fixed-width plane the serial loop only peeks, looks
up, stores and advances (three codes from one 64-bit load), and a second, branch-free pass merges
the raw bits (``pdep`` of 8 five-bit fields at a time). Same code lengths and raw bits, so the
same size; only the speed differs.

What this measures, on MiniLM bf16's 2-D tensors (bf16 bits: sign | 8 exponent | 7 mantissa):
symbol = exponent + top 3 mantissa bits (11 bits), raw = sign + low 4 mantissa bits (5 bits),
one length-limited (15-bit) Huffman code over the whole input (no contexts: both decoders would
pay the same context loads), 4 interleaved lanes, a 10-bit first-level table as ``fieldp``'s.
Both decoders are checked to give back every input bit; the C is compiled with ``gcc -O3
-march=native`` into a temporary shared library (needs gcc). Single thread, best of --repeat.

    python benchmarks/proto_split_raw.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import ctypes
import heapq
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

C_SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include <immintrin.h>
static inline uint64_t ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* encode: n symbols (codes[sym], lens[sym], LSB-first) into 4 lane streams; with raw (5 bits an
 * element) inside the stream when inter, else into the raw plane. Returns 0. */
int encode(const uint16_t *sym, const uint8_t *raw, int64_t n, const uint32_t *codes, const uint8_t *lens,
           int inter, uint8_t *lane_buf, int64_t lane_cap, int64_t *lane_bytes, uint8_t *rawplane) {
    for (int L = 0; L < 4; L++) {
        uint8_t *b = lane_buf + L * lane_cap;
        memset(b, 0, lane_cap);
        uint64_t q = 0;
        for (int64_t i = L; i < n; i += 4) {
            uint64_t v = codes[sym[i]], len = lens[sym[i]];
            if (inter) { v |= (uint64_t)raw[i] << len; len += 5; }
            for (uint64_t k = 0; k < len; k++) if ((v >> k) & 1) b[(q + k) >> 3] |= 1 << ((q + k) & 7);
            q += len;
        }
        lane_bytes[L] = (q + 7) >> 3;
    }
    if (!inter) {
        memset(rawplane, 0, (n * 5 + 7) / 8 + 8);
        for (int64_t i = 0; i < n; i++) {
            uint64_t q = (uint64_t)i * 5;
            for (int k = 0; k < 5; k++) if ((raw[i] >> k) & 1) rawplane[(q + k) >> 3] |= 1 << ((q + k) & 7);
        }
    }
    return 0;
}

/* t1: 1024 entries (len << 12 | sym), every code <= 10 bits here or via t2 (long codes): entry
 * with len 0 = escape to t2[(v >> 10) & 31] + base (simplified: one second level of 5 bits). */
#define STEP_I(L) do { uint64_t v = ld64(b##L + (q##L >> 3)) >> (q##L & 7); uint32_t e = t1[v & 1023]; \
    if (__builtin_expect(!(e >> 12), 0)) e = t2[((e & 4095) << 5) | ((v >> 10) & 31)];              \
    uint32_t len = e >> 12; uint32_t r = (v >> len) & 31;                                             \
    out[i + L] = (uint16_t)(((e & 4095) << 4) | rawt[r]); q##L += len + 5; } while (0)

void dec_inter(const uint8_t *lanes, int64_t lane_cap, int64_t n, const uint32_t *t1, const uint32_t *t2,
               uint16_t *out) {
    const uint8_t *b0 = lanes, *b1 = lanes + lane_cap, *b2 = lanes + 2 * lane_cap, *b3 = lanes + 3 * lane_cap;
    uint64_t q0 = 0, q1 = 0, q2 = 0, q3 = 0;
    uint16_t rawt[32];
    for (int r = 0; r < 32; r++) rawt[r] = (uint16_t)(((r >> 4) << 15) | (r & 15));
    for (int64_t i = 0; i + 4 <= n; i += 4) { STEP_I(0); STEP_I(1); STEP_I(2); STEP_I(3); }
}

#define PEEK(L) uint64_t v##L = ld64(b##L + (q##L >> 3)) >> (q##L & 7)
#define STEP_S(L, OFF) do { uint32_t e = t1[v##L & 1023];                                          \
    if (__builtin_expect(!(e >> 12), 0)) e = t2[((e & 4095) << 5) | ((v##L >> 10) & 31)];          \
    uint32_t len = e >> 12; out[i + L + OFF] = (uint16_t)((e & 4095) << 4); v##L >>= len; q##L += len; } while (0)

void dec_split(const uint8_t *lanes, int64_t lane_cap, int64_t n, const uint32_t *t1, const uint32_t *t2,
               const uint8_t *rawplane, uint16_t *out) {
    const uint8_t *b0 = lanes, *b1 = lanes + lane_cap, *b2 = lanes + 2 * lane_cap, *b3 = lanes + 3 * lane_cap;
    uint64_t q0 = 0, q1 = 0, q2 = 0, q3 = 0;
    int64_t i = 0;
    for (; i + 12 <= n; i += 12) { /* three codes per lane from one load (3 x 15 <= 57 bits) */
        PEEK(0); PEEK(1); PEEK(2); PEEK(3);
        STEP_S(0, 0); STEP_S(1, 0); STEP_S(2, 0); STEP_S(3, 0);
        STEP_S(0, 4); STEP_S(1, 4); STEP_S(2, 4); STEP_S(3, 4);
        STEP_S(0, 8); STEP_S(1, 8); STEP_S(2, 8); STEP_S(3, 8);
    }
    for (; i + 4 <= n; i += 4) { PEEK(0); PEEK(1); PEEK(2); PEEK(3);
        STEP_S(0, 0); STEP_S(1, 0); STEP_S(2, 0); STEP_S(3, 0); }
    /* the raw bits: 8 five-bit fields from 40 bits, spread to bytes by pdep, placed by a table */
    uint16_t rawt[32];
    for (int r = 0; r < 32; r++) rawt[r] = (uint16_t)(((r >> 4) << 15) | (r & 15));
    for (int64_t k = 0; k + 8 <= n; k += 8) {
        uint64_t w = _pdep_u64(ld64(rawplane + k / 8 * 5), 0x1F1F1F1F1F1F1F1FULL);
        for (int j = 0; j < 8; j++) out[k + j] |= rawt[(w >> (8 * j)) & 31];
    }
}
"""


def _huffman_lengths(freq: np.ndarray, limit: int = 15) -> np.ndarray:
    """Huffman code lengths of the used symbols, longest ones shortened until Kraft holds."""
    used = np.flatnonzero(freq)
    heap = [(int(freq[s]), int(s), [int(s)]) for s in used]
    heapq.heapify(heap)
    lens = np.zeros(freq.size, np.int64)
    while len(heap) > 1:
        a, sa, la = heapq.heappop(heap)
        b, sb, lb = heapq.heappop(heap)
        for s in la + lb:
            lens[s] += 1
        heapq.heappush(heap, (a + b, min(sa, sb), la + lb))
    lens[used] = np.maximum(lens[used], 1)
    lens = np.minimum(lens, limit)
    while (2.0 ** -lens[used]).sum() > 1:  # lengthen the shortest codes of the rarest symbols
        cand = used[lens[used] < limit]
        s = cand[np.argmin(freq[cand])]
        lens[s] += 1
    return lens


def _canonical(lens: np.ndarray) -> np.ndarray:
    """Canonical codes, bit-reversed for LSB-first reading."""
    codes = np.zeros(lens.size, np.uint32)
    code = 0
    order = sorted((int(lens[s]), s) for s in np.flatnonzero(lens))
    prev = order[0][0]
    for ln, s in order:
        code <<= ln - prev
        prev = ln
        codes[s] = int(f"{code:0{ln}b}"[::-1], 2)
        code += 1
    return codes


def _tables(lens: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """10-bit first level (len << 12 | sym); longer codes: an escape (len 0, its prefix index) to
    a 5-bit second level of (len << 12 | sym)."""
    t1 = np.zeros(1024, np.uint32)
    long_prefix: dict[int, int] = {}
    t2_rows = []
    for s in np.flatnonzero(lens):
        ln, c = int(lens[s]), int(codes[s])
        if ln <= 10:
            for hi in range(1 << (10 - ln)):
                t1[c | (hi << ln)] = (ln << 12) | s
        else:
            pre = c & 1023
            if pre not in long_prefix:
                long_prefix[pre] = len(t2_rows)
                t2_rows.append(np.zeros(32, np.uint32))
                t1[pre] = long_prefix[pre]  # len 0: escape
            rest = c >> 10
            for hi in range(1 << (15 - ln)):
                t2_rows[long_prefix[pre]][rest | (hi << (ln - 10))] = (ln << 12) | s
    t2 = np.concatenate(t2_rows) if t2_rows else np.zeros(32, np.uint32)
    return t1, t2


class _raw_open:  # noqa: N801 - a context manager over a safetensors file's bf16 bits
    """The 2-D bf16 tensors of a safetensors file as uint16 arrays (numpy has no bfloat16)."""

    def __init__(self, path: Path):
        import json

        raw = Path(path).read_bytes()
        n = int.from_bytes(raw[:8], "little")
        head = json.loads(raw[8:8 + n])
        self.t = {k: np.frombuffer(raw, np.uint16, (v["data_offsets"][1] - v["data_offsets"][0]) // 2,
                                   8 + n + v["data_offsets"][0]).reshape(v["shape"])
                  for k, v in head.items() if k != "__metadata__" and v["dtype"] == "BF16"}

    def __enter__(self) -> dict[str, np.ndarray]:
        return self.t

    def __exit__(self, *exc: object) -> None:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    from bigsmall.testing import corpus

    src = corpus.minilm_bf16()
    with _raw_open(src) as f:
        x = np.concatenate([f[name].ravel() for name in f if f[name].ndim == 2])
    x = x[: x.size // 8 * 8]
    n = x.size
    sym = ((x >> 4) & 0x7FF).astype(np.uint16)
    raw = (((x >> 15) << 4) | (x & 0xF)).astype(np.uint8)
    lens = _huffman_lengths(np.bincount(sym, minlength=2048))
    codes = _canonical(lens)
    t1, t2 = _tables(lens, codes)
    with tempfile.TemporaryDirectory() as d:
        c, so = Path(d) / "p.c", Path(d) / "p.so"
        c.write_text(C_SOURCE)
        subprocess.run(["gcc", "-O3", "-march=native", "-shared", "-fPIC", str(c), "-o", str(so)], check=True)
        lib = ctypes.CDLL(str(so))
    p = ctypes.c_void_p
    i64 = ctypes.c_int64
    cap = int(n // 4 * 20 // 8 + 64)
    ptr = lambda a: a.ctypes.data_as(p)  # noqa: E731
    results = {}
    out = np.empty(n, np.uint16)
    lens8 = lens.astype(np.uint8)
    for name, inter in (("interleaved (fieldp-like)", 1), ("split raw plane", 0)):
        lanes = np.zeros(4 * cap, np.uint8)
        nbytes = np.zeros(4, np.int64)
        plane = np.zeros(n * 5 // 8 + 16, np.uint8)
        lib.encode(ptr(sym), ptr(raw), i64(n), ptr(codes), ptr(lens8), ctypes.c_int(inter),
                   ptr(lanes), i64(cap), ptr(nbytes), ptr(plane))
        best = float("inf")
        for _ in range(args.repeat):
            out[:] = 0
            t0 = time.thread_time()
            if inter:
                lib.dec_inter(ptr(lanes), i64(cap), i64(n), ptr(t1), ptr(t2), ptr(out))
            else:
                lib.dec_split(ptr(lanes), i64(cap), i64(n), ptr(t1), ptr(t2), ptr(plane), ptr(out))
            best = min(best, time.thread_time() - t0)
        assert np.array_equal(out, x), name
        size = int(nbytes.sum()) + (0 if inter else n * 5 // 8)
        results[name] = best
        print(f"{name:28s} {best / n * 1e9:5.2f} ns an element  {size / (2 * n) * 100:6.2f} % of raw  "
              f"(bits exact)")
    a, b = results.values()
    print(f"split / interleaved: x{a / b:.2f} faster ({n} elements of MiniLM bf16's matrices, one thread)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
