"""The fieldp chunk encoders on one chunk of weight-like data, per unit (issue 17).

For bf16, fp16 and fp32 (normal weights, sigma 0.05, 131072 units; one context, an arbitrary
but fixed code table over the symbols present), times the C encoders that ``codecs/fieldp.py``
picks from: the general one (``_kernels.encodep_chunk``: row and column walk), the one-context
one (``_enc.encodep_flat``) and the table ones (``_enc.encodep_flat16`` for 16-bit units,
``_enc.encodep_rows32`` for fp32, row shifts allowed), plus the cost of building their table.
Every output is checked equal to the general encoder's. Medians of ``--repeat`` calls, each
build of the flat encoders (``plain`` and ``bmi2`` where the CPU has it).

    python benchmarks/bench_encoders.py [--repeat 51]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from timing import median_time  # benchmarks/timing.py (the script's folder is on sys.path)

from bigsmall.codecs._generated.encodep import code_entries
from bigsmall.native import _enc, kernels

LAYOUTS = {"bf16": (4, 8, 3), "fp16": (7, 6, 3), "fp32": (20, 8, 3)}  # p, eb, mb (corpus)


def _data(dtype: str, n: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(0, 0.05, n).astype(np.float32)
    if dtype == "bf16":
        return (x.view(np.uint32) >> 16).astype(np.uint16)
    if dtype == "fp16":
        return x.astype(np.float16).view(np.uint16)
    return x.view(np.uint32)


def _table(values: np.ndarray, p: int, c: int, rng: np.random.Generator) -> np.ndarray:
    """Code entries for the symbols present (lengths from their counts, at most 15 bits; not
    a complete prefix code: only the bytes are compared, nothing is decoded)."""
    nsym = 1 << c
    cnt = np.bincount((values >> p) & (nsym - 1), minlength=nsym)
    lens = np.where(cnt > 0, np.clip(15 - np.log2(cnt + 1).astype(np.int64), 1, 15), 0)[None]
    codes = rng.integers(0, 1 << 15, (1, nsym)) & ((1 << lens) - 1)
    return code_entries((cnt > 0).astype(np.int64)[None], lens.astype(np.int64), codes.astype(np.int64))


def _one(dtype: str, layout: tuple[int, int, int], general: Any, isas: list[str], units: int,
         repeat: int, rng: np.random.Generator) -> str:
    """One dtype's line: every encoder's ns a unit (checked equal to the general one's bytes)."""
    p, eb, mb = layout
    c = eb + mb
    x = _data(dtype, units, rng)
    tab = _table(x, p, c, rng)
    nsym, ncols = 1 << c, 384
    rows = units // ncols + 1
    zr, zc, rs = np.zeros(rows, np.int64), np.zeros(ncols, np.int64), np.zeros(rows, np.int64)
    ref = general.encodep_chunk(x, 0, ncols, zr, zc, tab, nsym, p, eb, mb, rs)
    cases: dict[str, Callable[[], bytes]] = {
        "general": lambda: general.encodep_chunk(x, 0, ncols, zr, zc, tab, nsym, p, eb, mb, rs),
    }
    if dtype == "fp32":
        t32 = _enc.encodep_table32h(tab, nsym, p, eb, mb)
        build = median_time(lambda: _enc.encodep_table32h(tab, nsym, p, eb, mb), repeat)
        cases["rows32"] = lambda: _enc.encodep_rows32(x, t32, 0, ncols, rs, p, eb, mb)
    else:
        t16 = _enc.encodep_table16(tab, nsym, p, eb, mb)
        build = median_time(lambda: _enc.encodep_table16(tab, nsym, p, eb, mb), repeat)
        cases["flat16"] = lambda: _enc.encodep_flat16(x, t16)
    cases["flat"] = lambda: _enc.encodep_flat(x, tab, nsym, p, eb, mb)
    line = []
    for isa in isas:
        _enc._set_isa("scalar" if isa == "plain" else isa)
        for name, f in cases.items():
            if name == "general" and isa != isas[0]:
                continue  # not one of _enc's builds
            if f() != ref:
                raise SystemExit(f"{dtype} {name} ({isa}): bytes differ from the general encoder")
            label = name if name == "general" else f"{name} ({isa})"
            line.append(f"{label} {median_time(f, repeat) / units * 1e9:.2f}")
    return f"{dtype}: " + ", ".join(line) + f"; table {build * 1e6:.0f} us"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=51)
    ap.add_argument("--units", type=int, default=1 << 17)
    args = ap.parse_args(argv)
    general = kernels("fieldp")
    if general is None:
        print("the C kernels are not built (pip install -e .)", file=sys.stderr)
        return 1
    rng = np.random.default_rng(1)
    isas = ["plain"]
    try:
        _enc._set_isa("bmi2")
        isas.append("bmi2")
    except ValueError:
        pass
    print(f"{args.units} units, one context, medians of {args.repeat} calls; ns a unit")
    for dtype, layout in LAYOUTS.items():
        print(_one(dtype, layout, general, isas, args.units, args.repeat, rng))
    if "bmi2" in isas:
        _enc._set_isa("bmi2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
