"""Codec parameters from a stranger's index against bounds-checked kernels (run as a script).

Why: the decode kernels index without bounds checks, trusting the parameters that ``prepare``
and ``plan_decode`` accept (layout widths, grid, matrix, probability bits, chunk size, row
shifts) and the tables built from the side information. This sweep feeds them parameter sets
a hostile index could hold (each field nudged, zeroed, negated, made huge, swapped; side
information and chunks mutated) with every kernel rebuilt so that an out-of-bounds access
raises ``IndexError``: the generated decode kernels through ``checked_loads`` (their unchecked
load/store intrinsics replaced), the table builders and everything else by numba's own
``NUMBA_BOUNDSCHECK=1``. Every case must end in a typed ``BigsmallError`` or in output; an
``IndexError`` means some accepted parameter set reaches outside an array.

Run in a fresh process (the environment variables must be set before numba loads, and the
bounds-checked builds must not share the production kernel cache):
``NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=$(mktemp -d) python -m property_tests.hostile_params N SEED``
prints one JSON line of counts and exits 1 on any finding.
"""

from __future__ import annotations

import copy
import json
import sys
import traceback
from typing import Any

import numpy as np
import zstandard


def install_checked_kernels() -> None:
    """Swap every generated decode kernel for its bounds-checked build."""
    from bigsmall.codecs import fieldp
    from bigsmall.codecs._generated import (
        decode4,
        decode8,
        decodep,
        gen_decode,
        gen_decode8,
        gen_decodep,
    )

    from .checked_loads import checked_build

    for mod, gen in ((decode4, gen_decode), (decode8, gen_decode8), (decodep, gen_decodep)):
        ns = checked_build(gen.TARGET.read_text(), mod.__name__)
        mod.decode_chunk = ns["decode_chunk"]  # type: ignore[attr-defined]
        mod.decode_chunks = ns["decode_chunks"]  # type: ignore[attr-defined]
    cache: dict[tuple[int, ...], Any] = {}

    def checked_layout(lay: tuple[int, int, int, int]) -> Any:
        if lay not in cache:
            path = gen_decodep.LAYOUT_DIR / f"k_{'_'.join(map(str, lay))}.py"
            cache[lay] = (checked_build(path.read_text(), path.stem)["decode_chunks"]
                          if path.exists() else None)
        return cache[lay]

    fieldp.layout_kernel = checked_layout  # type: ignore[assignment]


def base_cases() -> list[tuple[Any, str, Any]]:
    """(spec, codec id, plan) of small real-looking tensors under every field-model codec,
    with several chunks and row shifts."""
    from bigsmall.codecs.base import get_codec
    from bigsmall.core.types import TensorSpec

    rng = np.random.default_rng(0)
    x = (rng.standard_t(5, (24, 37)) * 0.02).astype(np.float32)
    bf = (x.view(np.uint32) >> 16).astype(np.uint16)
    bf[::5] &= 0xFFE0
    f16 = x.astype(np.float16)
    u8 = np.clip(rng.normal(128, 9, x.size), 0, 255).astype(np.uint8)
    fp8 = np.clip(rng.normal(60, 6, x.size), 0, 255).astype(np.uint8)
    raw = {"BF16": bf.view(np.uint8).reshape(-1), "F16": f16.view(np.uint8).reshape(-1),
           "F32": x.view(np.uint8).reshape(-1), "U8": u8, "F8_E4M3": fp8}
    out = []
    for dtype, data in raw.items():
        unit = {"F32": 4, "BF16": 2, "F16": 2}.get(dtype, 1)
        spec = TensorSpec("t", dtype, (24, 37), 0, data.size)
        for codec_id in ("field", "field8", "fieldp"):
            for chunk in (100, 1 << 20):
                plan = get_codec(codec_id).encode(data, spec, chunk)
                if plan is not None and plan.chunks:
                    out.append((spec, codec_id, plan))
        del unit
    lut_vals = rng.integers(0, 7, x.size).astype(np.uint16) * 1000
    spec = TensorSpec("l", "BF16", (24, 37), 0, lut_vals.size * 2)
    plan = get_codec("lut").encode(lut_vals.view(np.uint8), spec, 100)
    if plan is not None:
        out.append((spec, "lut", plan))
    return out


_FIELDS = {"layout": 4, "grid": 2, "matrix": 2, "prob_bits": 2}


def mutate_params(rng: np.random.Generator, params: dict[str, Any], units: int) -> dict[str, Any]:
    p = copy.deepcopy(params)
    target = p["inner"] if "inner" in p and rng.random() < 0.7 else p
    for _ in range(int(rng.integers(1, 4))):
        key = str(rng.choice([*_FIELDS, "chunk", "lanes", "row_shift"]))
        if key in _FIELDS:
            vals = list(target.get(key, [0] * _FIELDS[key]))
            i = int(rng.integers(len(vals)))
            how = int(rng.integers(6))
            v = int(vals[i])
            vals[i] = [v + int(rng.integers(-3, 4)), -v, 0, 1 << int(rng.integers(1, 63)),
                       -int(rng.integers(1, 40)), int(rng.integers(0, 40))][how]
            if key == "layout" and key in target and rng.random() < 0.5:  # keep eb + mb, move the split
                d = int(rng.integers(-9, 10))
                vals[2], vals[3] = int(target[key][2]) + d, int(target[key][3]) - d
            if key == "matrix" and rng.random() < 0.5:  # same product, other factors
                a = int(rng.choice([1, 2, 3, 4, 6, 8, 12, 24, 37, -1, -37]))
                vals = [a, units // a] if a and units % abs(a) == 0 else [units, 1]
            target[key] = vals
        elif key == "chunk":
            c = [1, 7, 100, units - 1, units, units + 1, 1 << 40][int(rng.integers(7))]
            target["chunk"] = max(1, c)
            if target is not p:
                p["chunk"] = target["chunk"]
        elif key == "lanes":
            target["lanes"] = int(rng.choice([0, 1, 4, 8, 16, -4]))
        else:
            target["row_shift"] = not target.get("row_shift")
    return p


def mutate_bytes(rng: np.random.Generator, data: bytes) -> bytes:
    b = bytearray(data)
    how = int(rng.integers(5))
    if how == 0 and b:
        for _ in range(int(rng.integers(1, 8))):
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
    elif how == 1 and b:
        del b[int(rng.integers(len(b))):]
    elif how == 2:
        b += rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif how == 3 and b:
        z = int(rng.integers(len(b)))
        b[z:] = bytes([int(rng.choice([0, 255]))]) * (len(b) - z)
    return bytes(b)


def mutate_head(rng: np.random.Generator, head: bytes) -> bytes:
    """Side information changed under its zstd frame (so it still decompresses) or raw."""
    if rng.random() < 0.3 or not head:
        return mutate_bytes(rng, head)
    try:
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(head)
    except zstandard.ZstdError:  # lut: a value table before the inner side information
        return mutate_bytes(rng, head)
    return zstandard.ZstdCompressor(level=1).compress(mutate_bytes(rng, raw))


def run(n: int, seed: int) -> dict[str, Any]:
    from bigsmall.codecs.base import n_units
    from bigsmall.errors import BigsmallError
    from bigsmall.plan.decode import plan_decode

    install_checked_kernels()
    cases = base_cases()
    rng = np.random.default_rng(seed)
    counts = {"cases": 0, "typed": 0, "decoded": 0, "findings": 0}
    findings: list[str] = []
    for _ in range(n):
        spec, codec_id, plan = cases[int(rng.integers(len(cases)))]
        units = n_units(spec)
        params = plan.params if rng.random() < 0.1 else mutate_params(rng, plan.params, units)
        head = plan.head if rng.random() < 0.5 else mutate_head(rng, plan.head)
        body = b"".join(plan.chunks)
        if rng.random() < 0.5:
            body = mutate_bytes(rng, body)
        per = int(params.get("chunk", 1))
        k = -(-units // per) if per > 0 else 1
        if k > len(body) + 1:
            k = int(rng.integers(1, 4))
        cuts = np.sort(rng.integers(0, len(body) + 1, max(k - 1, 0)))
        lens = tuple(int(x) for x in np.diff(np.concatenate(([0], cuts, [len(body)]))))
        if codec_id != "lut" and rng.random() < 0.5 and len(lens) == len(plan.chunks):
            lens = tuple(len(c) for c in plan.chunks) if len(body) == sum(
                len(c) for c in plan.chunks) else lens
        blob = head + body
        counts["cases"] += 1
        out = np.empty(spec.nbytes, np.uint8)
        try:
            job = plan_decode(spec, codec_id, params, blob, len(head), lens)
            job.run_all(out)
            for g in (2, 3):
                for first in range(g):
                    job.run_group(first, g, out)
            for a, b, _lo, _hi in job.ranges(2, 64):
                job.run_range(a, b, out)
            counts["decoded"] += 1
        except BigsmallError:
            counts["typed"] += 1
        except Exception:  # noqa: BLE001 - every other exception is a finding
            counts["findings"] += 1
            if len(findings) < 5:
                findings.append(f"{codec_id} {spec.dtype} params={json.dumps(params)} "
                                f"lens={lens[:8]}:\n{traceback.format_exc(limit=4)}")
    return {**counts, "examples": findings}


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    result = run(n, seed)
    for f in result["examples"]:
        sys.stderr.write(f + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "examples"}))
    return 1 if result["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
