"""Build (or find cached) the base / fine-tune pairs of ``bigsmall/testing/finetune.py`` and print
where they are, with the share of values each fine-tune changed.

    python scripts/make_finetune_pairs.py                      # the benchmark's pairs
    python scripts/make_finetune_pairs.py --pairs bf16-40,whisper-3

Pairs: ``bf16-N`` / ``fp32-N`` (MiniLM, N AdamW steps, lr 2e-5, seed 0) and ``whisper-N``
(Whisper tiny.en fp16, decoder only). Cached under ``~/.cache/bigsmall/corpus/finetune``
(``$BIGSMALL_CORPUS_CACHE/finetune``); a cached pair is returned at once. Seeded and built on one
torch thread: the same torch version gives the same files.
"""

from __future__ import annotations

import argparse
import time

from bigsmall.io.delta import diff
from bigsmall.testing.finetune import finetune_pair, whisper_pair


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default="bf16-40,bf16-300,fp32-40,whisper-40",
                    help="comma-separated: bf16-N, fp32-N, whisper-N")
    args = ap.parse_args(argv)
    for label in args.pairs.split(","):
        kind, steps = label.split("-")
        t = time.perf_counter()
        base, ft = whisper_pair(int(steps)) if kind == "whisper" else finetune_pair(kind, int(steps))
        r = diff(base, ft)
        print(f"{label:12s} {r['fraction_changed'] * 100:5.1f} % of values changed  "
              f"({time.perf_counter() - t:.0f} s)\n  base {base}\n  ft   {ft}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
