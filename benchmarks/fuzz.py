"""Seeded, reproducible mutation fuzzer of bigsmall's decoder (and of ``compress``'s parser).

    python benchmarks/fuzz.py --count 2000 --seed 1 --workers 2

Why: a ``.bs`` file is input from strangers (downloaded models). Whatever its bytes, every
entry point must either raise a ``BigsmallError`` or return exactly the original bytes; it
must never crash the process, hang, return wrong bytes, raise an untyped exception or touch
anything outside its named output. This harness makes mutants of small real containers
(``fuzz_seeds``) with blind and structure-aware mutations (``fuzz_mutate``: checksums
recomputed so that the index's *content* reaches the decoders), runs each through every entry
point (``fuzz_entries``) in a pool of worker processes that a segfault or a hang cannot take
down, and saves every new finding as a regression vector in ``tests/fuzz_vectors/``
(replayed by ``tests/test_fuzz.py``). See ``docs/fuzzing.md``.

``--fast [K]`` (``fuzz_fast``): ``read`` on every mutant, ``verify-full``, ``decompress`` and
``compress`` on ids divisible by K (default 20), cheap escape checks for read-only entry
points, one message per batch: ~10x the rate, for million-mutant campaigns.

Mutant ``i`` of seed ``S`` is a pure function of (S, i) and the seed containers, which are
made deterministically from synthetic tensors at start-up (their digest is printed: two runs
with the same digest made the same mutants).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import xxhash

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import fuzz_fast  # noqa: E402
import fuzz_mutate  # noqa: E402
import fuzz_seeds  # noqa: E402
from fuzz_entries import ALL_ENTRIES, BAD, CLASSES, ENTRIES, Outcome  # noqa: E402
from fuzz_fast import FAST_ENTRIES, FAST_SAMPLE  # noqa: E402
from fuzz_pool import (  # noqa: E402  (re-exported: the tests and callers use ``fuzz.X``)
    BATCH,
    MEM_LIMIT,
    ST_SHARE,
    HarnessError,
    Mutant,
    Pool,
    Result,
    load_vector,
    make_mutant,
    seed_json,
)

__all__ = ["BATCH", "FAST_ENTRIES", "FAST_SAMPLE", "MEM_LIMIT", "ST_SHARE", "HarnessError", "Mutant",
           "Pool", "Result", "campaign", "forge_wrong", "load_vector", "main", "make_mutant",
           "signature", "summary"]

VECTORS = HERE.parent / "tests" / "fuzz_vectors"
FINDINGS = Path("/tmp/fuzz_findings.md")
SEVERITY = ("identical", "typed", "wrong", "escape", "untyped", "hang", "crash")


def forge_wrong(seed: fuzz_seeds.Seed) -> bytes:
    """A container that is *genuinely wrong*: one byte of a ``raw`` tensor changed, and its
    receipt, its file's sha256, the index digest and the header checksum all recomputed to
    match. Every check passes, yet it does not restore the original: the classifier must call
    it ``wrong`` (``tests/test_fuzz.py`` checks that it does, for every entry point)."""
    import base64

    data = bytearray(seed.data)
    doc = fuzz_mutate.index_doc(bytes(data))
    refs = {t["params"].get("of") for t in doc["tensors"] if t["codec"] == "ref"}
    t = next(t for t in doc["tensors"] if t["codec"] == "raw" and sum(t["blob"][2]) and t["name"] not in refs)
    off, head, _lens = t["blob"]
    data[off + head] ^= 1
    tensor = bytearray(seed.tensors[t["name"]])
    tensor[0] ^= 1
    t["xxh3"] = xxhash.xxh3_128_hexdigest(bytes(tensor))
    f = doc["files"][t["file"]]
    orig = bytearray(seed.files[f["path"]])
    orig[len(base64.b64decode(f["header"])) + t["offsets"][0]] ^= 1
    f["sha256"] = hashlib.sha256(bytes(orig)).hexdigest()
    return fuzz_mutate.reseal(bytes(data), doc, random.Random(0))


# ---------------------------------------------------------------- findings

def signature(cls: str, entry: str, message: str) -> str:
    """What makes two findings the same bug: class, entry point and the message with numbers
    and quoted values blanked (one vector per signature, not one per mutant)."""
    msg = re.sub(r"'[^']*'|\"[^\"]*\"", "Q", message)
    msg = re.sub(r"\d+", "N", msg)
    msg = re.sub(r"\(entry outcome.*|; stacks:.*", "", msg)
    return f"{cls}|{entry}|{msg[:160]}"


def existing_signatures(folder: Path) -> set[str]:
    out: set[str] = set()
    for p in folder.glob("*.json"):
        try:
            out.update(json.loads(p.read_text()).get("signatures", []))
        except (OSError, ValueError):
            continue
    return out


def save_vector(folder: Path, m: Mutant, o: Outcome, seed: int | None, sigs: list[str]) -> Path:
    """``<class>-<entry>-<sha8>.bs`` (or ``.safetensors``) and its json, unless already there."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".safetensors" if m.target == "safetensors" else ".bs"
    path = folder / f"{o.cls}-{o.entry}-{m.sha[:8]}{ext}"
    if not path.exists():
        path.write_bytes(m.data)
        meta = {"seed": m.seed, "campaign_seed": seed, "id": m.item if isinstance(m.item, int) else None,
                "kind": m.kind, "mutation": m.desc, "class": o.cls, "entry": o.entry,
                "message": o.message, "signatures": sigs}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1, ensure_ascii=True) + "\n")
    return path


def note_finding(findings: Path, m: Mutant, o: Outcome, path: Path | None, seed: int | None) -> None:
    """Append one new finding to the shared findings file (read by whoever fixes it)."""
    with open(findings, "a", encoding="utf-8") as fh:
        fh.write(f"- **{o.cls}** `{o.entry}` seed={m.seed} campaign={seed} id={m.item} kind={m.kind}\n"
                 f"  - mutation: `{m.desc}`\n  - message: `{o.message[:600]}`\n"
                 f"  - vector: `{path}`\n")


# ---------------------------------------------------------------- a campaign

@attrs.define
class Report:
    seed: int | None
    count: int
    seconds: float
    seed_digest: str
    by_entry: dict[str, Counter[str]]
    by_kind: dict[str, Counter[str]]
    findings: list[dict[str, Any]]
    restarts: int
    coverage: dict[str, int]
    entry_seconds: dict[str, float] = attrs.field(factory=dict)
    mode: str = "full: every entry point on every mutant"
    lost_workers: list[str] = attrs.field(factory=list)

    @property
    def bad(self) -> int:
        return sum(c[k] for c in self.by_entry.values() for k in BAD)

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "mutants": self.count, "seconds": round(self.seconds, 2),
                "mutants_per_s": round(self.count / self.seconds, 2) if self.seconds else None,
                "seed_digest": self.seed_digest, "worker_restarts": self.restarts,
                "by_entry": {k: dict(v) for k, v in self.by_entry.items()},
                "by_kind": {k: dict(v) for k, v in self.by_kind.items()},
                "coverage": self.coverage, "findings": self.findings,
                "entry_seconds": {k: round(v, 2) for k, v in self.entry_seconds.items()},
                "mode": self.mode, "lost_workers": self.lost_workers}


def coverage(seeds: Sequence[fuzz_seeds.Seed]) -> dict[str, int]:
    """Codecs (and row-shifted layouts) the container seeds use: what the mutants start from."""
    import bigsmall

    c: Counter[str] = Counter()
    for s in seeds:
        if s.kind != "container":
            continue
        with bigsmall.open(s.path, threads=1) as f:
            for t in f.container.tensors:
                c[t.codec] += 1
                if t.params.get("row_shift"):
                    c[f"{t.codec}+row_shift"] += 1
                if len(t.chunk_lens) > 1:
                    c["several chunks"] += 1
                c[f"dtype {t.spec.dtype}"] += 1
    return dict(sorted(c.items()))


def campaign(count: int = 100, seed: int = 0, workers: int = 2, time_limit: float = 20.0,
             entries: Sequence[str] | None = None, out: Path | None = VECTORS,
             findings: Path | None = FINDINGS, vectors: Sequence[Path] = (),
             progress: bool = True, work: Path | None = None, start: int = 0,
             mem_limit: int = MEM_LIMIT, fast: int = 0, snapshot: Path | None = None) -> Report:
    """Run mutants ``start .. start+count-1`` of ``seed`` (and/or the saved ``vectors``)
    through ``entries`` (default: all, or ``FAST_ENTRIES`` in fast mode); save new findings to
    ``out`` (None: save nothing) and note them in ``findings``. ``fast=K``: the fast mode
    (``fuzz_fast``: ``read`` and ``compress`` on every mutant, the other entries on ids
    divisible by K). ``snapshot``: the report so far is rewritten there (JSON) with each progress
    line, so that a long run stopped early still has its figures. Returns the report; never
    raises on a finding."""
    if entries is None:
        entries = FAST_ENTRIES if fast else ENTRIES
    if work is None and fast and os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        work = Path("/dev/shm")
    tmp = tempfile.TemporaryDirectory(prefix="bigsmall-fuzz-", dir=work)
    root = Path(tmp.name)
    try:
        seeds = fuzz_seeds.make_seeds(root / "seeds")
        cfg = {"seeds": [seed_json(s) for s in seeds], "seed": seed, "entries": list(entries),
               "work": str(root / "work"), "mem_limit": mem_limit, "time_limit": time_limit, "fast": fast}
        (root / "work").mkdir(parents=True, exist_ok=True)
        cache: dict[str, bytes] = {}

        def make(item: int | str) -> Mutant:
            return load_vector(Path(item)) if isinstance(item, str) else make_mutant(seeds, seed, item, entries, cache, fast)

        by_entry: dict[str, Counter[str]] = defaultdict(Counter)
        by_kind: dict[str, Counter[str]] = defaultdict(Counter)
        entry_s: dict[str, float] = defaultdict(float)
        found: list[dict[str, Any]] = []
        known = existing_signatures(out) if out is not None else set()
        seen: set[str] = set()
        n = 0
        t0 = time.perf_counter()
        tty = sys.stderr.isatty()
        last = [t0]  # when the last progress line was written (not a tty: a line every 15 s)
        cov = coverage(seeds)
        digest = fuzz_seeds.seed_digest(seeds)
        pool: Pool | None = None

        def report() -> Report:
            return Report(seed, n, time.perf_counter() - t0, digest, dict(by_entry), dict(by_kind), found,
                          pool.restarts if pool else 0, cov, dict(entry_s), fast_note(fast, entries),
                          list(pool.lost) if pool else [])
        items: list[int | str] = [str(v) for v in vectors] + list(range(start, start + count))
        total = len(items)

        def on_result(r: Result) -> None:
            nonlocal n
            n += 1
            for o in r.outcomes:
                by_entry[o.entry][o.cls] += 1
                entry_s[o.entry] += o.seconds
            if r.outcomes:
                by_kind[r.kind][max((o.cls for o in r.outcomes), key=SEVERITY.index)] += 1
            bad = [o for o in r.outcomes if o.cls in BAD]
            if bad:
                m = make(r.item)
                sigs = sorted({signature(o.cls, o.entry, o.message) for o in bad})
                new = [s for s in sigs if s not in known and s not in seen]
                path = None
                if new and out is not None and isinstance(r.item, int):
                    path = save_vector(out, m, bad[0], seed, sigs)
                for o in bad:
                    sig = signature(o.cls, o.entry, o.message)
                    if sig in new and sig not in seen:
                        seen.add(sig)
                        if findings is not None and isinstance(r.item, int):
                            note_finding(findings, m, o, path, seed)
                found.append({"item": r.item, "seed": r.seed, "kind": r.kind, "mutation": r.desc,
                              "outcomes": [attrs.asdict(o) for o in bad], "vector": str(path) if path else None,
                              "new": bool(new)})
            if progress and (n % 20 == 0 or n == total):
                now = time.perf_counter()
                if not tty and now - last[0] < 15 and n != total:
                    return
                last[0] = now
                nbad = sum(c[k] for c in by_entry.values() for k in BAD)
                line = (f"fuzz: {n}/{total} mutants  {n / (now - t0):.1f}/s  bad outcomes {nbad}  "
                        f"distinct {len(seen)}  {now - t0:.0f} s")
                sys.stderr.write(f"\r{line}   " if tty else f"{time.strftime('%H:%M:%S')} {line}\n")
                sys.stderr.flush()
                if snapshot is not None:
                    tmp_snap = snapshot.with_name(snapshot.name + ".tmp")
                    tmp_snap.write_text(json.dumps(report().to_json(), default=str))
                    os.replace(tmp_snap, snapshot)

        pool = Pool(workers, cfg, time_limit)
        try:
            pool.run(items, on_result, make)
        finally:
            pool.close()
        if progress:
            sys.stderr.write("\n")
        return report()
    finally:
        tmp.cleanup()


def fast_note(fast: int, entries: Sequence[str]) -> str:
    """The mode line of the report: what ran on which mutants."""
    if not fast:
        return "full: every entry point on every mutant"
    every = [e for e in entries if e in fuzz_fast.EVERY]
    some = [e for e in entries if e not in fuzz_fast.EVERY]
    return (f"fast (K={fast}): {' '.join(every) or 'nothing'} on every mutant; "
            f"{' '.join(some) or 'nothing'} on mutant ids divisible by {fast} (and every replayed vector); "
            "read-only entries checked for escapes by stat snapshot, hashed when it differs")


def summary(rep: Report) -> str:
    """The final table: counts per class per entry point, per mutation kind (worst class of a
    mutant over its entry points), the rate and the distinct findings."""
    lines = [f"mutants {rep.count} in {rep.seconds:.1f} s = {rep.count / max(rep.seconds, 1e-9):.1f} mutants/s "
             f"(seed {rep.seed}, seeds digest {rep.seed_digest}, worker restarts {rep.restarts})",
             f"mode: {rep.mode}",
             *(f"worker lost on no mutant: {x}" for x in rep.lost_workers),
             "seed coverage: " + ", ".join(f"{k} {v}" for k, v in rep.coverage.items()), ""]
    w = max([len(k) for k in list(rep.by_entry) + list(rep.by_kind)] + [10])
    head = f"{'':{w}}  " + "  ".join(f"{c:>9}" for c in CLASSES)
    for title, table in (("per entry point (outcomes; ms: mean time per mutant)", rep.by_entry),
                         ("per mutation kind (worst outcome of a mutant)", rep.by_kind)):
        lines += [title, head + ("         ms" if table is rep.by_entry else "")]
        for k in sorted(table, key=lambda x: (ALL_ENTRIES.index(x) if x in ALL_ENTRIES else 99, x)):
            ms = (f"  {1000 * rep.entry_seconds.get(k, 0) / max(1, sum(table[k].values())):>9.1f}"
                  if table is rep.by_entry else "")
            lines.append(f"{k:{w}}  " + "  ".join(f"{table[k][c]:>9}" for c in CLASSES) + ms)
        lines.append("")
    distinct: dict[str, dict[str, Any]] = {}
    for f in rep.findings:
        for o in f["outcomes"]:
            distinct.setdefault(signature(o["cls"], o["entry"], o["message"]), {**f, "o": o})
    lines.append(f"distinct findings: {len(distinct)}")
    for _sig, f in sorted(distinct.items()):
        o = f["o"]
        lines.append(f"  {o['cls']:8} {o['entry']:15} [{f['kind']}: {f['mutation'][:70]}] {o['message'][:220]}"
                     + (f"  -> {f['vector']}" if f.get("vector") else ""))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=200, help="mutants to run")
    p.add_argument("--seed", type=int, default=0, help="campaign seed (mutant i of seed S is always the same)")
    p.add_argument("--start", type=int, default=0, help="first mutant id (to rerun a range)")
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument("--time-limit", type=float, default=20.0, help="seconds per entry point before 'hang'")
    p.add_argument("--entries", nargs="+", default=None, choices=ALL_ENTRIES, metavar="ENTRY",
                   help=f"entry points (default all: {' '.join(ENTRIES)}; with --fast: {' '.join(FAST_ENTRIES)})")
    p.add_argument("--fast", type=int, nargs="?", const=FAST_SAMPLE, default=0, metavar="K",
                   help=f"fast mode: read (and compress) on every mutant, the other entries on ids "
                        f"divisible by K (default {FAST_SAMPLE}); see docs/fuzzing.md")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--out", type=Path, default=VECTORS, help="where new regression vectors go")
    p.add_argument("--no-save", action="store_true", help="save no vectors and note no findings")
    p.add_argument("--findings", type=Path, default=FINDINGS, help="file new findings are appended to")
    p.add_argument("--replay", type=Path, nargs="*", default=None,
                   help="replay saved vectors (default with no path: every vector in --out) instead of mutants")
    p.add_argument("--snapshot", type=Path, default=None,
                   help="rewrite the report so far (JSON) to this file with each progress line")
    p.add_argument("--mem-limit-gib", type=float, default=MEM_LIMIT / 2**30, help="address space of a worker")
    args = p.parse_args(argv)
    vectors: list[Path] = []
    count = args.count
    if args.replay is not None:
        vectors = args.replay or sorted(x for x in args.out.glob("*") if x.suffix in (".bs", ".safetensors"))
        count = 0
    rep = campaign(count, args.seed, args.workers, args.time_limit, args.entries,
                   None if args.no_save else args.out, None if args.no_save else args.findings,
                   vectors, progress=True, start=args.start, mem_limit=int(args.mem_limit_gib * 2**30),
                   fast=args.fast, snapshot=args.snapshot)
    if args.json:
        print(json.dumps(rep.to_json(), default=str))
    else:
        print(summary(rep))
    return 1 if rep.bad else 0


if __name__ == "__main__":
    sys.exit(main())
