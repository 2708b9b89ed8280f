"""Draw the charts of saved benchmark results (no measuring): the README's picture and any
rerun of it. matplotlib is needed (``pip install -e ".[plot]"``).

    python benchmarks/plots.py peers RESULTS.json -o docs/img/peers.png
    python benchmarks/plots.py benchmark RESULT.json -o model.png

``peers``: what ``benchmarks/peers.py --json`` prints (a list of rows), or an object with the
rows under ``"rows"`` and a ``"source"`` line saying where they came from (as
``docs/img/peers-2026-11-30.json``). ``benchmark``: what ``bigsmall benchmark SRC --json``
prints. Keeping the data next to the PNG means the picture can be redrawn, checked against
its numbers, and rerun on another machine with the command in the data's ``source``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bigsmall.io.plot import plot_benchmark, plot_peers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=("peers", "benchmark"))
    ap.add_argument("results", type=Path, help="the saved --json output")
    ap.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    ap.add_argument("--title", help="chart title (peers; default: none)")
    args = ap.parse_args()
    data = json.loads(args.results.read_text())
    if args.kind == "peers":
        rows = data["rows"] if isinstance(data, dict) else data
        out = plot_peers(rows, args.output, title=args.title)
    else:
        out = plot_benchmark(data, args.output)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
