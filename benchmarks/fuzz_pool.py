"""The fuzzer's mutants and its pool of worker processes (``benchmarks/fuzz.py`` drives them).

Why worker processes: a mutant may segfault a kernel or hang; a worker takes that, the parent
never does. The parent hands out batches of mutant ids, the worker regenerates each mutant
from (campaign seed, id), runs it through the entry points (``fuzz_entries``) and sends the
outcomes back; shared memory says which mutant and entry point a worker is on, so that a
worker that dies (``crash``) or is killed past the time limit (``hang``) is recorded against
the right one. Two ways to run a mutant: the full one (``_run_mutant``: every entry point, the
sandbox hashed before and after each, each outcome sent as it is known) and the fast one
(``fuzz_fast``: ``read`` on every mutant, the writing entry points on a sample, one message
per batch).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import random
import re
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import attrs
import fuzz_entries
import fuzz_fast
import fuzz_mutate
import fuzz_seeds
from fuzz_entries import ALL_ENTRIES, CONTAINER_ENTRIES, SELFTEST_ENTRIES, ST_ENTRIES, Outcome

ST_SHARE = 0.12  # share of mutants that are malformed ``compress`` inputs
BATCH = 8  # mutants per message to a worker
FAST_BATCH = 64  # the same in fast mode (one result message per batch)
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
                cache: dict[str, bytes] | None = None, fast: int = 0) -> Mutant:
    """Mutant ``mid`` of campaign ``seed``: a pure function of both, the entry points (which
    decide whether a safetensors mutant may be drawn), ``fast`` (its sample) and the seeds."""
    if fast:
        entries = fuzz_fast.entries_for(mid, entries, fast)
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



# ---------------------------------------------------------------- the worker

def _worker(conn: Connection, wid: int, cfg: dict[str, Any], state: Any) -> None:
    """A worker process: decodes the mutants it is sent, one result message per mutant (fast
    mode: one message per batch).

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
    fast = int(cfg.get("fast") or 0)
    if fast:  # no timer armed per entry: the parent asks for the stacks of a hang with SIGUSR1
        faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
    cfg = {**cfg, "stacks": stacks}
    judges: dict[str, fuzz_entries.Judge] = {}
    sandbox = fuzz_entries.Sandbox(Path(cfg["work"]) / f"w{wid}")
    cache: dict[str, bytes] = {}
    conn.send(("ready", wid))
    while True:
        batch = conn.recv()
        if batch is None:
            return
        results: list[Result] = []
        for pos, item in enumerate(batch):
            state[0], state[1], state[2] = pos, -1, time.time()
            try:
                m = (load_vector(Path(item)) if isinstance(item, str)
                     else make_mutant(seeds, cfg["seed"], item, cfg["entries"], cache, fast))
                judge = judges.get(m.seed)
                if judge is None:
                    files, tensors = fuzz_seeds.originals(m.seed)
                    judge = judges[m.seed] = fuzz_entries.Judge(sandbox, files, tensors)
                outcomes = (fuzz_fast.run_fast(m, judge, sandbox, cfg, state) if fast
                            else _run_mutant(m, judge, sandbox, cfg, state, conn))
            except Exception:  # noqa: BLE001 - a bug of the harness, not a finding: stop the run
                conn.send(("harness-error", item, traceback.format_exc()))
                return
            state[2] = 0.0
            r = Result(item, m.seed, m.target, m.kind, m.desc, m.sha, tuple(outcomes))
            if fast:
                results.append(r)
            else:
                conn.send(("result", r))
        if fast:
            conn.send(("results", results))
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


def seed_json(s: fuzz_seeds.Seed) -> dict[str, Any]:
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
        self.lost: list[str] = []  # workers that died on no mutant (between batches): why, for the report
        self._next = 0
        self.batch = FAST_BATCH if cfg.get("fast") else BATCH
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
                    s.batch = [pending.popleft() for _ in range(min(self.batch, len(pending)))]
                    s.done = 0
                    s.state[0], s.state[1] = 0, -1  # not the last batch's position (the worker is idle)
                    s.conn.send(s.batch)
            ready = wait([s.conn for s in self.slots] + [s.proc.sentinel for s in self.slots], timeout=0.2)
            for i, s in enumerate(list(self.slots)):
                if s.conn in ready:
                    self._drain(s, on_result)
                if s.proc.sentinel in ready or not s.proc.is_alive():
                    self._drain(s, on_result)
                    self._lost(i, s, "crash", pending, on_result, make)
                elif s.batch and (t := s.state[2]) and time.time() - t > self.time_limit:
                    # ``state[2]`` read once: read twice, the worker could zero it in between
                    # (its entry just ended) and ``time() - 0`` made a finished entry a "hang"
                    if self.cfg.get("fast"):  # its stacks first (the full mode dumps them on a timer)
                        with contextlib.suppress(OSError):
                            os.kill(s.proc.pid, signal.SIGUSR1)
                        time.sleep(0.5)
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
                elif msg[0] == "results":  # fast mode: a whole batch
                    for r in msg[1]:
                        s.done += 1
                        on_result(r)
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
        # the mutant it was on: results come per mutant (full mode: ``done`` is its position)
        # or per batch (fast mode: those before it are not reported yet and run again)
        pos = max(int(s.state[0]), s.done)
        rest = s.batch[pos:]
        pending.extendleft(reversed(s.batch[s.done : pos]))
        code = s.proc.exitcode
        why = (f"worker killed after {self.time_limit:g} s" if cls == "hang"
               else f"worker died: exit code {code}{_signame(code)}")
        where = _stacks_tail(Path(self.cfg["work"]) / f"w{s.wid}.stacks")
        if where:
            why += f"; stacks: {where}"
        if not rest:  # it was on no mutant: nothing to blame, but say that it happened
            self.lost.append(f"worker {s.wid} ({cls}) between batches, at {time.strftime('%H:%M:%S')}: {why}")
        else:
            item = rest[0]
            eidx = int(s.state[1])
            entry = ALL_ENTRIES[eidx] if eidx >= 0 else "mutant"
            m = make(item)
            t0 = s.state[2]
            outcomes = (*s.partial, Outcome(entry, cls, why, time.time() - t0 if t0 else 0.0))
            pending.extendleft(reversed(rest[1:]))
            on_result(Result(item, m.seed, m.target, m.kind, m.desc, m.sha, outcomes))
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
