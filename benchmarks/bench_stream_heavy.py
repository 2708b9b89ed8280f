"""Streaming an embedding-heavy model: promise vs measured peak, full load, rows on demand.

The model: ``bigsmall.testing.embedding_heavy`` (BERT-shaped, 24 layers, a 262144 x 768 bf16
token embedding = 400 MB of 570 MB, random weights, MiniLM's tokenizer), compressed once into
``--work``. Each repetition runs, in separate processes and interleaved:

- ``stream``: ``bigsmall run --stream`` (the embedding read by row, ``bigsmall/torch/rows.py``);
- ``stream-resident``: the same with the table loaded whole (``ROWS_MIN`` raised in-process), the
  behaviour before rows on demand, for the forward-time comparison;
- ``full``: ``bigsmall run --mode perfect``.

Prints medians over ``--repeat`` of the process peak, the printed promise, the forward time
(``run_seconds``), the share of the table's coded bytes a forward decoded, and the sha256 of each
output (all must be equal). Usage::

    .venv/bin/python benchmarks/bench_stream_heavy.py --repeat 3 [--prompt-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

RESIDENT = ("import sys, bigsmall.torch.executor as e; e.ROWS_MIN = 1 << 62; "
            "from bigsmall.cli import main; sys.exit(main(sys.argv[1:]))")


def build(work: Path) -> Path:
    import bigsmall
    from bigsmall.testing.embedding_heavy import embedding_heavy_folder

    bs = work / "heavy.bs"
    if not bs.exists():
        folder = embedding_heavy_folder(work / "model")
        bigsmall.compress(folder, bs)
        (folder / "model.safetensors").unlink()
    return bs


def run(kind: str, bs: Path, prompt: str) -> dict:
    args = ["run", str(bs), "--json", "--no-progress", "--prompt", prompt]
    args += {"stream": ["--stream"], "stream-resident": ["--stream"], "full": ["--mode", "perfect"]}[kind]
    head = [sys.executable, "-c", RESIDENT] if kind == "stream-resident" else [sys.executable, "-m", "bigsmall"]
    r = subprocess.run([*head, *args], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "bigsmall" / "bench-heavy")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    bs = build(a.work)
    words = "streaming keeps its promise on models whose embedding table is most of the weights".split()
    prompt = " ".join(words[i % len(words)] + str(i) for i in range(a.prompt_tokens // 3))
    kinds = ("stream", "stream-resident", "full")
    res: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(a.repeat):
        for k in kinds:
            res[k].append(run(k, bs, prompt))
    shas = {r["output"]["sha256"] for rs in res.values() for r in rs}
    print(f"{bs}: {res['full'][0]['weight_bytes'] / 1e6:.0f} MB of weights; input {res['full'][0]['output']['input']}")
    for k in kinds:
        rs = res[k]
        line = (f"{k:16s} peak {statistics.median(r['peak_rss'] for r in rs) / 1e6:6.0f} MB, "
                f"forward {statistics.median(r['run_seconds'] for r in rs):.3f} s, "
                f"load {statistics.median(r['load_seconds'] for r in rs):.2f} s")
        if rs[0]["promise"]:
            line += f", promise {statistics.median(r['promise']['process_bytes'] for r in rs) / 1e6:.0f} MB"
            kept = all(r["peak_rss"] <= r["promise"]["process_bytes"] for r in rs)
            line += " (kept)" if kept else " (BROKEN)"
            s = rs[0]["stream"]
            if s.get("row_tables"):
                line += (f", rows decoded {s['row_decoded_coded_bytes'] / 1e6:.2f} of "
                         f"{s['row_coded_bytes'] / 1e6:.0f} MB coded "
                         f"({100 * s['row_decoded_coded_bytes'] / s['row_coded_bytes']:.2f} %)")
        print(line)
    print(f"outputs: {'bit-identical' if len(shas) == 1 else 'DIFFER'} (sha256 {sorted(shas)[0][:16]}...)")


if __name__ == "__main__":
    main()
