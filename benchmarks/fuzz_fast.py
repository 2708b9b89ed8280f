"""The fuzzer's fast mode (``benchmarks/fuzz.py --fast``): a million mutants in well under an hour.

What the full mode spends per mutant, beyond the decoding itself, is harness work: the
sandbox walked and every file in it hashed before and after each of eleven entry points, a
pipe message per outcome, a ``faulthandler`` timer thread armed per entry. The fast mode keeps
what *classifies* and drops what only repeats it:

- ``read`` (``bigsmall.open`` + ``read_bytes`` and ``read`` of every tensor, each compared
  with the original tensors: what tells ``wrong`` from ``identical``) runs on **every**
  mutant.
- The other entry points chosen (default ``verify-full``, ``decompress`` and ``compress``)
  run on a deterministic sample: mutant ids divisible by ``K`` (``--fast K``, default 20),
  and every replayed vector. Only sampled ids may be malformed-safetensors mutants (the
  ``compress`` inputs, 12 % of them): an unsampled id is always a container mutant, so no
  mutant is made for nothing. Mutant ``i`` stays a pure function of (seed, ``i``, entry
  points, ``K``).
- A read-only entry point is checked for escapes by a stat snapshot (type, size, mtime of
  every entry in the sandbox, no file read) taken just before and after it; only if it
  differs is the full hashed comparison run (and it decides). Entry points that write
  (``decompress``, ``cli-decompress``, ``compress``) always get the full comparison.
- One result message per batch of mutants; a crash or hang is still pinned to its mutant and
  entry point through the shared ``state`` array, and the mutants of the batch before it are
  run again by the new worker (deterministic: they give the same outcomes).
- No timer per entry: on a hang the parent sends ``SIGUSR1`` and ``faulthandler`` writes every
  thread's stack before the worker is killed.
- The sandbox lives on ``/dev/shm`` when there is one.

Crash, hang and ``untyped`` are caught the same way in both modes; ``wrong`` too (``read``
compares every decoded tensor on every mutant, and ``verify-full`` on a sampled mutant whose
``read`` is wrong is itself ``wrong``); ``tests/test_fuzz.py`` checks that the fast mode still
calls the forged container ``wrong`` and the good seeds ``identical``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import fuzz_entries
from fuzz_entries import ALL_ENTRIES, CONTAINER_ENTRIES, Outcome

if TYPE_CHECKING:
    from fuzz_pool import Mutant

FAST_SAMPLE = 20
"""Default ``K``: the sampled entry points run on mutant ids divisible by it."""
FAST_ENTRIES = ("read", "verify-full", "decompress", "compress")
"""The entry points of a fast campaign unless ``--entries`` names others."""
EVERY = frozenset({"read"})
"""Entry points a fast campaign runs on every mutant (the rest: one in ``K``)."""
WRITERS = frozenset({"decompress", "cli-decompress", "compress"})
"""Entry points that write: always the full (hashed) sandbox comparison."""


def sampled(item: int | str, k: int) -> bool:
    """Whether mutant ``item`` runs the sampled entry points: ids divisible by ``k``, and
    every replayed vector (a path)."""
    return isinstance(item, str) or k <= 1 or item % k == 0


def entries_for(item: int | str, entries: Sequence[str], k: int) -> list[str]:
    """The entry points mutant ``item`` runs (and is made for) in fast mode."""
    return [e for e in entries if e in EVERY or sampled(item, k)]


def run_fast(m: Mutant, judge: fuzz_entries.Judge, sandbox: fuzz_entries.Sandbox,
             cfg: dict[str, Any], state: Any) -> list[Outcome]:
    """The chosen entry points on one mutant, fast mode; returns the outcomes (the worker
    sends them with the rest of its batch)."""
    entries = entries_for(m.item, cfg["entries"], int(cfg["fast"]))
    outcomes: list[Outcome] = []
    if m.target == "safetensors":
        if "compress" in entries:
            path = sandbox.box / "model.safetensors"
            path.write_bytes(m.data)
            state[1], state[2] = ALL_ENTRIES.index("compress"), time.time()
            outcomes.append(judge.compress(path, m.data))
            path.unlink(missing_ok=True)
        return outcomes
    path = sandbox.box / ("shardmodel.bs" if m.seed == "folder" else "model.bs")
    path.write_bytes(m.data)
    for e in entries:
        if e not in CONTAINER_ENTRIES and not e.startswith("selftest-"):
            continue
        state[1], state[2] = ALL_ENTRIES.index(e), time.time()
        outcomes.append(judge.run(e, path, m.data, light=e not in WRITERS))
    wrong = next((o for o in outcomes if o.cls == "wrong"), None)
    if wrong is not None:  # verify must not call a file good whose decoding is wrong
        outcomes = [Outcome(o.entry, "wrong", f"verify passed a file whose {wrong.entry} is wrong: {wrong.message}")
                    if o.entry in ("verify-full", "cli-verify") and o.cls == "identical" else o
                    for o in outcomes]
    path.unlink(missing_ok=True)
    return outcomes
