"""Streaming an embedding-heavy model: promise vs measured peak, full load, rows on demand.

The model: ``bigsmall.testing.embedding_heavy`` (BERT-shaped, 24 layers, a 262144 x 768 bf16
token embedding = 400 MB of 570 MB, random weights, MiniLM's tokenizer), compressed once into
``--work``, twice: as ``compress`` writes it (the table in row groups of 10 rows,
``plan/rowgroups.py``) and with the table in the default 256 KiB chunks (~170 rows), the layout
before row groups. A tied variant (``BertForMaskedLM``, head = the embedding) is compressed too.
Each repetition runs, in separate processes and interleaved, on a prompt of ``--prompt-tokens``
tokens:

- ``stream``: ``bigsmall run --stream`` (the embedding read by row, ``bigsmall/torch/rows.py``);
- ``stream-resident``: the same with the table loaded whole (``ROWS_MIN`` raised in-process), for
  the forward-time comparison (the issue: rows on demand add <= 20 % to the streamed forward);
- ``stream-256k``: ``--stream`` on the container whose table has 256 KiB chunks;
- ``full``: ``bigsmall run --mode perfect``;
- ``tied-stream`` / ``tied-full``: the tied variant streamed (its head computed in row blocks)
  and fully loaded.

Prints medians over ``--repeat`` of the process peak, the printed promise, the forward time
(``run_seconds``), the share of the table's coded bytes a forward's lookups decoded (the issue:
<= 1 % for 128 tokens), and whether the outputs of each model are one sha256. ``--ratio`` also
prints what row groups cost in size: the heavy table's coded bytes both ways, and MiniLM bf16
(its 23 MB table is below the 32 MiB threshold: no change), MiniLM fp32 and Whisper tiny fp16
compressed both ways, and the time of a whole read of the heavy table both
ways (a full load's cost of row groups). Usage::

    .venv/bin/python benchmarks/bench_stream_heavy.py --repeat 3 [--prompt-tokens 128] [--ratio]

(``--repeat 0 --ratio``: the size and whole-read figures alone.) The forward times of a shared
machine are noisy; ``lookups ... % of the forward`` (``report().row_lookup_seconds``, timed in
the same process) is what rows on demand add to a forward.
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

RESIDENT = ("import sys, bigsmall.torch.executor as e; e.ROWS_MIN = 1 << 62; "
            "from bigsmall.cli import main; sys.exit(main(sys.argv[1:]))")
TABLE = "embeddings.word_embeddings.weight"


def _compress(folder: Path, out: Path, row_groups: bool) -> None:
    """Compress ``folder``; without ``row_groups`` the table keeps the default chunks."""
    import bigsmall
    from bigsmall.plan import rowgroups

    saved = rowgroups.ROW_TABLE_MIN_BYTES
    if not row_groups:
        rowgroups.ROW_TABLE_MIN_BYTES = 1 << 62
    try:
        bigsmall.compress(folder, out, force=True)
    finally:
        rowgroups.ROW_TABLE_MIN_BYTES = saved


def build(work: Path) -> dict[str, Path]:
    from bigsmall.testing.embedding_heavy import embedding_heavy_folder

    out = {"heavy": work / "heavy.bs", "heavy-256k": work / "heavy-256k.bs", "tied": work / "tied.bs"}
    if not (out["heavy"].exists() and out["heavy-256k"].exists()):
        folder = embedding_heavy_folder(work / "model")
        _compress(folder, out["heavy"], True)
        _compress(folder, out["heavy-256k"], False)
        (folder / "model.safetensors").unlink()
    if not out["tied"].exists():
        folder = embedding_heavy_folder(work / "tied-model", tied_head=True)
        _compress(folder, out["tied"], True)
        (folder / "model.safetensors").unlink()
    return out


KINDS = {  # kind: (container, run arguments, in-process resident table)
    "stream": ("heavy", ["--stream"], False),
    "stream-resident": ("heavy", ["--stream"], True),
    "stream-256k": ("heavy-256k", ["--stream"], False),
    "full": ("heavy", ["--mode", "perfect"], False),
    "tied-stream": ("tied", ["--stream"], False),
    "tied-full": ("tied", ["--mode", "perfect"], False),
}


def run(kind: str, files: dict[str, Path], prompt: str) -> dict:
    which, extra, resident = KINDS[kind]
    args = ["run", str(files[which]), "--json", "--no-progress", "--prompt", prompt, *extra]
    head = [sys.executable, "-c", RESIDENT] if resident else [sys.executable, "-m", "bigsmall"]
    r = subprocess.run([*head, *args], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def ratio(files: dict[str, Path]) -> None:
    """Size cost of row groups: the heavy table both ways; corpus models compressed both ways."""
    import bigsmall
    from bigsmall.testing.corpus import minilm_bf16, whisper_tiny_safetensors
    from bigsmall.testing.sources import minilm_dir

    sizes = {}
    for which in ("heavy", "heavy-256k"):
        with bigsmall.open(files[which]) as bs:
            e = bs.entry(TABLE)
            sizes[which] = (e.length, len(e.chunk_lens), e.codec, files[which].stat().st_size)
    (a, na, ca, fa), (b, nb, cb, fb) = sizes["heavy"], sizes["heavy-256k"]
    print(f"heavy table: row groups {a} B ({na} chunks, {ca}) vs 256 KiB chunks {b} B ({nb} chunks, "
          f"{cb}): {100 * (a / b - 1):+.3f} %; file {100 * (fa / fb - 1):+.3f} %")
    # what row groups cost a full decode of the table (a full load): 5 interleaved reads each
    times: dict[str, list[float]] = {"heavy": [], "heavy-256k": []}
    opened = {k: bigsmall.open(files[k]) for k in times}
    try:
        for _ in range(5):
            for k, f in opened.items():
                t0 = time.perf_counter()
                f.read(TABLE)
                times[k].append(time.perf_counter() - t0)
    finally:
        for f in opened.values():
            f.close()
    ta, tb = (statistics.median(times[k]) for k in ("heavy", "heavy-256k"))
    print(f"heavy table, whole read: row groups {ta:.3f} s vs 256 KiB chunks {tb:.3f} s "
          f"({ta / tb:.2f}x; medians of 5 interleaved)")
    corpus_models = {"MiniLM bf16": minilm_bf16(), "MiniLM fp32": minilm_dir() / "model.safetensors",
                     "Whisper tiny fp16": whisper_tiny_safetensors()}
    for label, src in corpus_models.items():
        with tempfile.TemporaryDirectory() as d:
            got = {}
            for rg in (True, False):
                out = Path(d) / f"m{int(rg)}.bs"
                _compress(src, out, rg)
                with bigsmall.open(out) as bs:
                    e = max(bs.container.tensors, key=lambda t: t.spec.nbytes if "embed" in t.name else 0)
                    got[rg] = (e.length, len(e.chunk_lens), e.codec, out.stat().st_size, src.stat().st_size)
        (a, na, ca, fa, raw), (b, nb, cb, fb, _) = got[True], got[False]
        print(f"{label} table {e.spec.shape}: row groups {a} B ({na} chunks, {ca}) vs {b} B ({nb} chunks, "
              f"{cb}): {100 * (a / b - 1):+.3f} %; file {100 * fa / raw:.3f} vs {100 * fb / raw:.3f} % of "
              f"{raw} B ({100 * (fa / fb - 1):+.3f} %)")


def main() -> None:
    from bigsmall.testing.embedding_heavy import prompt_of_tokens

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "bigsmall" / "bench-heavy-rg")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of " + ", ".join(KINDS))
    ap.add_argument("--ratio", action="store_true", help="also print the size cost of row groups")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    files = build(a.work)
    if a.ratio:
        ratio(files)
    if a.repeat == 0:
        return
    prompt = prompt_of_tokens(a.prompt_tokens)
    kinds = a.kinds.split(",")
    res: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(a.repeat):
        for k in kinds:
            res[k].append(run(k, files, prompt))
    first = next(iter(res.values()))[0]
    print(f"input {first['output']['input'][:60]}...")
    for k in kinds:
        rs = res[k]
        line = (f"{k:16s} peak {statistics.median(r['peak_rss'] for r in rs) / 1e6:6.0f} MB, "
                f"forward {statistics.median(r['run_seconds'] for r in rs):.3f} s "
                f"({', '.join(format(r['run_seconds'], '.2f') for r in rs)}), "
                f"load {statistics.median(r['load_seconds'] for r in rs):.2f} s")
        if rs[0]["promise"]:
            line += f", promise {statistics.median(r['promise']['process_bytes'] for r in rs) / 1e6:.0f} MB"
            kept = all(r["peak_rss"] <= r["promise"]["process_bytes"] for r in rs)
            line += " (kept)" if kept else " (BROKEN)"
            s = rs[0]["stream"]
            if s.get("row_tables"):
                line += (f", rows decoded {s['row_decoded_coded_bytes'] / 1e6:.3f} of "
                         f"{s['row_coded_bytes'] / 1e6:.0f} MB coded "
                         f"({100 * s['row_decoded_coded_bytes'] / s['row_coded_bytes']:.3f} %)")
                look = statistics.median(r["stream"]["row_lookup_seconds"] for r in rs)
                fwd = statistics.median(r["run_seconds"] for r in rs)
                line += f", lookups {look * 1e3:.0f} ms = {100 * look / fwd:.1f} % of the forward"
            if s.get("row_heads"):
                line += f", head streamed in row blocks ({s['row_head_passes']} pass)"
        print(line)
    for model in ("heavy", "tied"):
        shas = {r["output"]["sha256"] for k, rs in res.items() if KINDS[k][0].startswith(model) for r in rs}
        if shas:
            print(f"{model} outputs: {'bit-identical' if len(shas) == 1 else 'DIFFER'} "
                  f"(sha256 {sorted(shas)[0][:16]}...)")
    if "stream" in res and "stream-resident" in res:
        t = statistics.median(r["run_seconds"] for r in res["stream"])
        t0 = statistics.median(r["run_seconds"] for r in res["stream-resident"])
        print(f"rows on demand vs resident table: forward {100 * (t / t0 - 1):+.1f} %")


if __name__ == "__main__":
    main()
