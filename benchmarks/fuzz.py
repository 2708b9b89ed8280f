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

Mutant ``i`` of seed ``S`` is a pure function of (S, i) and the seed containers, which are
made deterministically from synthetic tensors at start-up (their digest is printed: two runs
with the same digest made the same mutants).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import re
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import attrs
import xxhash

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import fuzz_entries  # noqa: E402
import fuzz_mutate  # noqa: E402
import fuzz_seeds  # noqa: E402
from fuzz_entries import (  # noqa: E402
    ALL_ENTRIES,
    BAD,
    CLASSES,
    CONTAINER_ENTRIES,
    ENTRIES,
    SELFTEST_ENTRIES,
    ST_ENTRIES,
    Outcome,
)

VECTORS = HERE.parent / "tests" / "fuzz_vectors"
FINDINGS = Path("/tmp/fuzz_findings.md")
ST_SHARE = 0.12  # share of mutants that are malformed ``compress`` inputs
SEVERITY = ("identical", "typed", "wrong", "escape", "untyped", "hang", "crash")
BATCH = 8  # mutants per message to a worker
MEM_LIMIT = 6 << 30  # address space of a worker: a huge allocation fails instead of swapping


@attrs.frozen
class Mutant:
    item: int | str  # mutant id, or the path of a saved vector
    seed: str  # the seed's name
    target: str  # container | safetensors
    kind: str
    desc: str
    data: bytes = attrs.field(repr=False)

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@attrs.frozen
class Result:
    item: int | str
    seed: str
    target: str
    kind: str
    desc: str
    sha: str
    outcomes: tuple[Outcome, ...]


# ---------------------------------------------------------------- mutants

def make_mutant(seeds: Sequence[fuzz_seeds.Seed], seed: int, mid: int, entries: Sequence[str],
                cache: dict[str, bytes] | None = None) -> Mutant:
    """Mutant ``mid`` of campaign ``seed``: a pure function of both and the seeds' bytes."""
    rng = random.Random(f"bigsmall-fuzz:{seed}:{mid}")
    cache = {} if cache is None else cache
    want_st = any(e in ST_ENTRIES for e in entries)
    want_c = any(e in CONTAINER_ENTRIES or e in SELFTEST_ENTRIES for e in entries)
    st = rng.random() < ST_SHARE
    if (st and want_st) or not want_c:
        s = next(x for x in seeds if x.kind == "safetensors")
        data = cache.setdefault(s.name, s.data)
        kind, out, desc = fuzz_mutate.mutate_safetensors(data, rng)
        return Mutant(mid, s.name, "safetensors", kind, desc, out)
    s = rng.choice([x for x in seeds if x.kind == "container"])
    data = cache.setdefault(s.name, s.data)
    kind, out, desc = fuzz_mutate.mutate_container(data, rng)
    return Mutant(mid, s.name, "container", kind, desc, out)


def load_vector(path: Path) -> Mutant:
    """A saved regression vector: its bytes and the json written next to it."""
    meta = json.loads(path.with_suffix(".json").read_text())
    target = "safetensors" if path.suffix == ".safetensors" else "container"
    return Mutant(str(path), meta["seed"], target, meta.get("kind", "vector"), meta.get("mutation", ""),
                  path.read_bytes())


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


# ---------------------------------------------------------------- the worker

def _worker(conn: Connection, wid: int, cfg: dict[str, Any], state: Any) -> None:
    """A worker process: decodes the mutants it is sent, one result message per mutant.

    ``state`` (shared doubles) says where it is: [position in the batch, entry index, start
    time of that entry]; the parent reads it to name the mutant and entry of a crash or hang."""
    import resource

    if cfg["mem_limit"]:
        resource.setrlimit(resource.RLIMIT_AS, (cfg["mem_limit"], cfg["mem_limit"]))
    os.environ.setdefault("BIGSMALL_NO_PROGRESS", "1")
    import numpy  # noqa: F401 - imported before the first mutant, not timed against it

    import bigsmall.io.reader  # noqa: F401
    if any(e in ("load", "stream") for e in cfg["entries"]):
        import torch  # noqa: F401
    seeds = [_seed_from_json(d) for d in cfg["seeds"]]
    _warm(seeds, cfg["entries"])
    import faulthandler

    stacks = open(Path(cfg["work"]) / f"w{wid}.stacks", "w+")  # noqa: SIM115 - lives as long as the worker
    faulthandler.enable(stacks)  # a segfault writes the Python stacks here; the parent reads them
    cfg = {**cfg, "stacks": stacks}
    judges: dict[str, fuzz_entries.Judge] = {}
    sandbox = fuzz_entries.Sandbox(Path(cfg["work"]) / f"w{wid}")
    cache: dict[str, bytes] = {}
    conn.send(("ready", wid))
    while True:
        batch = conn.recv()
        if batch is None:
            return
        for pos, item in enumerate(batch):
            state[0], state[1], state[2] = pos, -1, time.time()
            m = (load_vector(Path(item)) if isinstance(item, str)
                 else make_mutant(seeds, cfg["seed"], item, cfg["entries"], cache))
            judge = judges.get(m.seed)
            if judge is None:
                files, tensors = fuzz_seeds.originals(m.seed)
                judge = judges[m.seed] = fuzz_entries.Judge(sandbox, files, tensors)
            try:
                outcomes = _run_mutant(m, judge, sandbox, cfg, state, conn)
            except Exception:  # noqa: BLE001 - a bug of the harness, not a finding: stop the run
                conn.send(("harness-error", item, traceback.format_exc()))
                return
            state[2] = 0.0
            conn.send(("result", Result(item, m.seed, m.target, m.kind, m.desc, m.sha, tuple(outcomes))))
        conn.send(("idle", wid))


def _arm(stacks: Any, limit: float) -> None:
    """Empty the stacks file and have faulthandler write every thread's stack into it just
    before the parent's time limit: a hang is reported with where it hung."""
    import faulthandler

    stacks.seek(0)
    stacks.truncate()
    faulthandler.dump_traceback_later(max(0.5, limit - 1.0), file=stacks)


def _stacks_tail(path: Path) -> str:
    """The innermost frames of each thread from a worker's stacks file (after a crash or hang)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    out = []
    for block in text.split("\n\n"):
        lines = [ln.strip() for ln in block.strip().splitlines()]
        if not lines:
            continue
        frames = [ln for ln in lines[1:] if ln.startswith("File ")][:3]
        short = [re.sub(r'File ".*/([^/]+)", line (\d+) in (\S+)', r"\1:\2 \3", f) for f in frames]
        if short:
            out.append(f"{lines[0].rstrip(':')}: " + " <- ".join(short))
    out.sort(key=lambda b: not b.startswith("Current thread"))  # the thread that crashed or hung first
    return " | ".join(out)[:1500]


def _warm(seeds: Sequence[fuzz_seeds.Seed], entries: Sequence[str]) -> None:
    """Decode every seed once before the first mutant: the kernels load from numba's cache
    (seconds, once) outside any mutant's time limit. Then freeze what is alive: the garbage
    collector's full passes over numba's and torch's objects cost ~0.2 s each, more than a
    mutant."""
    import gc

    import bigsmall

    for s in seeds:
        if s.kind == "container":
            with bigsmall.open(s.path, threads=1) as f:
                for name in f.names():
                    f.read_bytes(name)
            if "load" in entries or "stream" in entries:
                bigsmall.load(s.path, threads=1)
    gc.collect()
    gc.freeze()


def _run_mutant(m: Mutant, judge: fuzz_entries.Judge, sandbox: fuzz_entries.Sandbox,
                cfg: dict[str, Any], state: Any, conn: Connection) -> list[Outcome]:
    """Every entry on one mutant; each outcome is also sent as it is known, so that those
    before a crash are not lost with the worker."""
    import faulthandler

    outcomes: list[Outcome] = []
    stacks, limit = cfg["stacks"], cfg["time_limit"]
    if m.target == "safetensors":
        if "compress" in cfg["entries"]:
            path = sandbox.box / "model.safetensors"
            path.write_bytes(m.data)
            state[1], state[2] = ALL_ENTRIES.index("compress"), time.time()
            _arm(stacks, limit)
            outcomes.append(judge.compress(path, m.data))
            faulthandler.cancel_dump_traceback_later()
            path.unlink(missing_ok=True)
        return outcomes
    name = "shardmodel.bs" if m.seed == "folder" else "model.bs"
    path = sandbox.box / name
    path.write_bytes(m.data)
    sandbox.baseline = {**sandbox.baseline}
    for e in cfg["entries"]:
        if e not in CONTAINER_ENTRIES and e not in SELFTEST_ENTRIES:
            continue
        state[1], state[2] = ALL_ENTRIES.index(e), time.time()
        _arm(stacks, limit)
        outcomes.append(judge.run(e, path, m.data))
        faulthandler.cancel_dump_traceback_later()
        conn.send(("outcome", outcomes[-1]))
    # verify must not call a file good whose decoding is wrong
    wrong = next((o for o in outcomes if o.cls == "wrong"), None)
    if wrong is not None:
        outcomes = [Outcome(o.entry, "wrong", f"verify passed a file whose {wrong.entry} is wrong: {wrong.message}")
                    if o.entry in ("verify-full", "cli-verify") and o.cls == "identical" else o
                    for o in outcomes]
    path.unlink(missing_ok=True)
    return outcomes


def _seed_json(s: fuzz_seeds.Seed) -> dict[str, Any]:
    return {"name": s.name, "kind": s.kind, "path": str(s.path), "root": s.root}


def _seed_from_json(d: dict[str, Any]) -> fuzz_seeds.Seed:
    return fuzz_seeds.Seed(d["name"], d["kind"], Path(d["path"]), d["root"], {}, {})


# ---------------------------------------------------------------- the pool

@attrs.define
class _Slot:
    wid: int
    proc: Any
    conn: Connection
    state: Any
    batch: list[int | str] = attrs.field(factory=list)
    done: int = 0  # results received for ``batch``
    partial: list[Outcome] = attrs.field(factory=list)  # outcomes of the mutant in progress
    ready: bool = False


class Pool:
    """Persistent worker processes (``forkserver``: a crash takes down one worker, never the
    parent); the parent hands out batches, reads results, and turns a dead worker into a
    ``crash`` and a worker past ``time_limit`` into a ``hang`` of the mutant it was on."""

    def __init__(self, workers: int, cfg: dict[str, Any], time_limit: float):
        self.ctx = mp.get_context("forkserver")
        self.cfg = cfg
        self.time_limit = time_limit
        self.slots: list[_Slot] = []
        self.restarts = 0
        self._next = 0
        for _ in range(workers):
            self.slots.append(self._start())

    def _start(self) -> _Slot:
        parent, child = self.ctx.Pipe()
        state = self.ctx.Array("d", [0.0, -1.0, 0.0], lock=False)
        wid = self._next
        self._next += 1
        proc = self.ctx.Process(target=_worker, args=(child, wid, self.cfg, state), daemon=True)
        proc.start()
        child.close()
        return _Slot(wid, proc, parent, state)

    def close(self) -> None:
        for s in self.slots:
            try:
                s.conn.send(None)
            except OSError:
                pass
        for s in self.slots:
            s.proc.join(timeout=5)
            if s.proc.is_alive():
                s.proc.kill()
                s.proc.join()

    def run(self, items: Iterable[int | str], on_result: Callable[[Result], None],
            make: Callable[[int | str], Mutant]) -> None:
        """Run every item; ``make`` regenerates a mutant in the parent (for a crash or hang)."""
        pending: deque[int | str] = deque(items)
        while pending or any(s.batch for s in self.slots):
            for s in self.slots:
                if s.ready and not s.batch and pending:
                    s.batch = [pending.popleft() for _ in range(min(BATCH, len(pending)))]
                    s.done = 0
                    s.conn.send(s.batch)
            ready = wait([s.conn for s in self.slots] + [s.proc.sentinel for s in self.slots], timeout=0.2)
            for i, s in enumerate(list(self.slots)):
                if s.conn in ready:
                    self._drain(s, on_result)
                if s.proc.sentinel in ready or not s.proc.is_alive():
                    self._drain(s, on_result)
                    self._lost(i, s, "crash", pending, on_result, make)
                elif s.batch and s.state[2] and time.time() - s.state[2] > self.time_limit:
                    s.proc.kill()
                    s.proc.join()
                    self._drain(s, on_result)
                    self._lost(i, s, "hang", pending, on_result, make)

    def _drain(self, s: _Slot, on_result: Callable[[Result], None]) -> None:
        try:
            while s.conn.poll():
                msg = s.conn.recv()
                if msg[0] == "ready":
                    s.ready = True
                elif msg[0] == "outcome":
                    s.partial.append(msg[1])
                elif msg[0] == "result":
                    s.done += 1
                    s.partial = []
                    on_result(msg[1])
                elif msg[0] == "idle":
                    s.batch = []
                elif msg[0] == "harness-error":
                    raise HarnessError(f"the fuzz harness failed on mutant {msg[1]}:\n{msg[2]}")
        except (EOFError, OSError):
            pass

    def _lost(self, i: int, s: _Slot, cls: str, pending: deque[int | str],
              on_result: Callable[[Result], None], make: Callable[[int | str], Mutant]) -> None:
        """Worker ``s`` died (``crash``) or was killed (``hang``): record the mutant it was on,
        give the rest of its batch back, start another worker."""
        if not s.ready:
            raise RuntimeError(f"fuzz worker {s.wid} died while starting (exit code {s.proc.exitcode})")
        rest = s.batch[s.done :]
        if rest:
            item = rest[0]
            eidx = int(s.state[1])
            entry = ALL_ENTRIES[eidx] if eidx >= 0 else "mutant"
            code = s.proc.exitcode
            why = (f"worker killed after {self.time_limit:g} s" if cls == "hang"
                   else f"worker died: exit code {code}{_signame(code)}")
            where = _stacks_tail(Path(self.cfg["work"]) / f"w{s.wid}.stacks")
            if where:
                why += f"; stacks: {where}"
            m = make(item)
            outcomes = (*s.partial, Outcome(entry, cls, why, time.time() - s.state[2] if s.state[2] else 0.0))
            on_result(Result(item, m.seed, m.target, m.kind, m.desc, m.sha, outcomes))
            pending.extendleft(reversed(rest[1:]))
        s.conn.close()
        self.restarts += 1
        self.slots[i] = self._start()


class HarnessError(RuntimeError):
    """The harness itself failed (not the code under test): the run stops."""


def _signame(code: int | None) -> str:
    import signal

    if code is not None and code < 0:
        try:
            return f" ({signal.Signals(-code).name})"
        except ValueError:
            return ""
    return ""


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
                "entry_seconds": {k: round(v, 2) for k, v in self.entry_seconds.items()}}


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
             entries: Sequence[str] = ENTRIES, out: Path | None = VECTORS,
             findings: Path | None = FINDINGS, vectors: Sequence[Path] = (),
             progress: bool = True, work: Path | None = None, start: int = 0,
             mem_limit: int = MEM_LIMIT) -> Report:
    """Run mutants ``start .. start+count-1`` of ``seed`` (and/or the saved ``vectors``)
    through ``entries``; save new findings to ``out`` (None: save nothing) and note them in
    ``findings``. Returns the report; never raises on a finding."""
    tmp = tempfile.TemporaryDirectory(prefix="bigsmall-fuzz-", dir=work)
    root = Path(tmp.name)
    try:
        seeds = fuzz_seeds.make_seeds(root / "seeds")
        cfg = {"seeds": [_seed_json(s) for s in seeds], "seed": seed, "entries": list(entries),
               "work": str(root / "work"), "mem_limit": mem_limit, "time_limit": time_limit}
        (root / "work").mkdir(parents=True, exist_ok=True)
        cache: dict[str, bytes] = {}

        def make(item: int | str) -> Mutant:
            return load_vector(Path(item)) if isinstance(item, str) else make_mutant(seeds, seed, item, entries, cache)

        by_entry: dict[str, Counter[str]] = defaultdict(Counter)
        by_kind: dict[str, Counter[str]] = defaultdict(Counter)
        entry_s: dict[str, float] = defaultdict(float)
        found: list[dict[str, Any]] = []
        known = existing_signatures(out) if out is not None else set()
        seen: set[str] = set()
        n = 0
        t0 = time.perf_counter()
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
                dt = time.perf_counter() - t0
                nbad = sum(c[k] for c in by_entry.values() for k in BAD)
                sys.stderr.write(f"\rfuzz: {n}/{total} mutants  {n / dt:.1f}/s  bad outcomes {nbad}  "
                                 f"distinct {len(seen)}   ")
                sys.stderr.flush()

        pool = Pool(workers, cfg, time_limit)
        try:
            pool.run(items, on_result, make)
        finally:
            pool.close()
        if progress:
            sys.stderr.write("\n")
        return Report(seed, n, time.perf_counter() - t0, fuzz_seeds.seed_digest(seeds), dict(by_entry),
                      dict(by_kind), found, pool.restarts, coverage(seeds), dict(entry_s))
    finally:
        tmp.cleanup()


def summary(rep: Report) -> str:
    """The final table: counts per class per entry point, per mutation kind (worst class of a
    mutant over its entry points), the rate and the distinct findings."""
    lines = [f"mutants {rep.count} in {rep.seconds:.1f} s = {rep.count / max(rep.seconds, 1e-9):.1f} mutants/s "
             f"(seed {rep.seed}, seeds digest {rep.seed_digest}, worker restarts {rep.restarts})",
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
    p.add_argument("--entries", nargs="+", default=list(ENTRIES), choices=ALL_ENTRIES, metavar="ENTRY",
                   help=f"entry points (default all: {' '.join(ENTRIES)})")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--out", type=Path, default=VECTORS, help="where new regression vectors go")
    p.add_argument("--no-save", action="store_true", help="save no vectors and note no findings")
    p.add_argument("--findings", type=Path, default=FINDINGS, help="file new findings are appended to")
    p.add_argument("--replay", type=Path, nargs="*", default=None,
                   help="replay saved vectors (default with no path: every vector in --out) instead of mutants")
    p.add_argument("--mem-limit-gib", type=float, default=MEM_LIMIT / 2**30, help="address space of a worker")
    args = p.parse_args(argv)
    vectors: list[Path] = []
    count = args.count
    if args.replay is not None:
        vectors = args.replay or sorted(x for x in args.out.glob("*") if x.suffix in (".bs", ".safetensors"))
        count = 0
    rep = campaign(count, args.seed, args.workers, args.time_limit, args.entries,
                   None if args.no_save else args.out, None if args.no_save else args.findings,
                   vectors, progress=True, start=args.start, mem_limit=int(args.mem_limit_gib * 2**30))
    if args.json:
        print(json.dumps(rep.to_json(), default=str))
    else:
        print(summary(rep))
    return 1 if rep.bad else 0


if __name__ == "__main__":
    sys.exit(main())
