"""The fuzzing harness (``benchmarks/fuzz.py``) as tests: its classifier, its crash isolation,
the saved regression vectors, and a seeded sample of mutants.

Why through the harness's pool rather than in this process: a mutant may segfault a kernel or
hang; a worker process takes that, the pytest process never does. Why a classifier test: a
fuzzer that cannot tell ``wrong`` from ``identical`` proves nothing, so a hand-forged container
whose checksums all pass but whose bytes differ must come out ``wrong`` on every entry point.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import fuzz  # noqa: E402
import fuzz_seeds  # noqa: E402
from fuzz_entries import BAD, CONTAINER_ENTRIES, ENTRIES  # noqa: E402

VECTORS = Path(__file__).resolve().parent / "fuzz_vectors"
SAMPLE_SEED = 22
SAMPLE_COUNT = 2400
"""Mutants of the CI sample: ~25 mutants/s with 2 workers on the 2-core development VM
(``docs/fuzzing.md``), so about 100 s plus ~10 s of start-up."""


def _vector(folder: Path, name: str, data: bytes, seed: str) -> Path:
    p = folder / name
    p.write_bytes(data)
    p.with_suffix(".json").write_text(json.dumps({"seed": seed, "mutation": name}))
    return p


def _outcomes(rep: fuzz.Report, item: str) -> dict[str, str]:
    """{entry: class} of one replayed vector (only bad outcomes are in ``findings``)."""
    for f in rep.findings:
        if f["item"] == item:
            return {o["entry"]: o["cls"] for o in f["outcomes"]}
    return {}


@pytest.fixture(scope="module")
def forged_vectors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The good seeds and a forged-wrong copy of each, saved as vectors."""
    folder = tmp_path_factory.mktemp("forged")
    seeds = fuzz_seeds.make_seeds(folder / "seeds")
    paths: dict[str, Path] = {}
    for s in seeds:
        if s.kind != "container":
            continue
        paths[f"good-{s.name}"] = _vector(folder, f"good-{s.name}.bs", s.data, s.name)
        paths[f"wrong-{s.name}"] = _vector(folder, f"wrong-{s.name}.bs", fuzz.forge_wrong(s), s.name)
    return paths


@pytest.fixture(scope="module")
def forged(forged_vectors: dict[str, Path]) -> tuple[fuzz.Report, dict[str, Path]]:
    """The forged vectors replayed through the pool, every entry point."""
    rep = fuzz.campaign(0, vectors=list(forged_vectors.values()), out=None, findings=None, progress=False,
                        workers=2)
    return rep, forged_vectors


def test_good_seeds_are_identical(forged: tuple[fuzz.Report, dict[str, Path]]) -> None:
    rep, paths = forged
    for name, p in paths.items():
        if name.startswith("good-"):
            assert _outcomes(rep, str(p)) == {}, (name, _outcomes(rep, str(p)))
    n_good = sum(1 for k in paths if k.startswith("good-"))
    for e in CONTAINER_ENTRIES:
        assert rep.by_entry[e]["identical"] >= n_good, (e, rep.by_entry[e])


def test_forged_wrong_is_classified_wrong(forged: tuple[fuzz.Report, dict[str, Path]]) -> None:
    """Every checksum of the forged file passes, so nothing may raise, and every entry point
    that decodes (verify included: it called the file good) must be judged ``wrong``."""
    rep, paths = forged
    for name, p in paths.items():
        if not name.startswith("wrong-"):
            continue
        got = _outcomes(rep, str(p))
        expect = {e: "wrong" for e in CONTAINER_ENTRIES if e not in ("verify-fast", "verify-sample", "cli-info")}
        assert {e: got.get(e) for e in expect} == expect, (name, got)


def test_fast_mode_still_tells_wrong_from_identical(forged_vectors: dict[str, Path]) -> None:
    """Speed must not blind it: in fast mode the good seeds are ``identical`` and the forged
    containers ``wrong`` on every entry point it runs (a replayed vector runs them all)."""
    rep = fuzz.campaign(0, vectors=list(forged_vectors.values()), out=None, findings=None, progress=False,
                        workers=2, fast=fuzz.FAST_SAMPLE)
    assert rep.mode.startswith("fast")
    for name, p in forged_vectors.items():
        got = _outcomes(rep, str(p))
        if name.startswith("good-"):
            assert got == {}, (name, got)
        else:
            assert got == {"read": "wrong", "verify-full": "wrong", "decompress": "wrong"}, (name, got)
    n_good = sum(1 for k in forged_vectors if k.startswith("good-"))
    for e in ("read", "verify-full", "decompress"):
        assert rep.by_entry[e]["identical"] == n_good, (e, rep.by_entry[e])


def test_fast_mode_samples_as_documented() -> None:
    """``read`` on every mutant, the other entry points on ids divisible by K; only sampled
    ids are ``compress`` inputs; no findings."""
    k = 10
    rep = fuzz.campaign(300, seed=3, out=None, findings=None, progress=False, workers=2, fast=k)
    assert rep.count == 300
    n_read = sum(rep.by_entry["read"].values())
    n_full = sum(rep.by_entry["verify-full"].values())
    n_st = sum(rep.by_entry["compress"].values())
    assert n_full == sum(rep.by_entry["decompress"].values())
    assert n_full + n_st == 300 // k
    assert n_read == 300 - n_st
    assert rep.bad == 0, _bad_summary(rep)


def test_crash_and_hang_are_isolated(tmp_path: Path) -> None:
    """A worker that segfaults or sleeps forever is recorded as ``crash`` / ``hang`` of the
    mutant it was on, replaced, and the run goes on to the end."""
    rep = fuzz.campaign(6, seed=1, entries=["read", "selftest-crash"], out=None, findings=None,
                        progress=False, workers=2)
    assert rep.count == 6
    assert rep.by_entry["selftest-crash"]["crash"] == 6
    assert sum(rep.by_entry["read"].values()) == 6
    assert rep.restarts == 6
    assert all("SIGSEGV" in o["message"] for f in rep.findings for o in f["outcomes"])
    rep = fuzz.campaign(2, seed=1, entries=["selftest-hang"], out=None, findings=None,
                        progress=False, workers=2, time_limit=2.0)
    assert rep.by_entry["selftest-hang"]["hang"] == 2
    # fast mode: results come per batch; the crash is still pinned to its mutant, the others
    # of the batch are run again, and a hang gets its stacks through SIGUSR1
    rep = fuzz.campaign(6, seed=1, entries=["read", "selftest-crash"], out=None, findings=None,
                        progress=False, workers=2, fast=3)
    assert rep.count == 6
    assert rep.by_entry["selftest-crash"]["crash"] == 2  # ids 0 and 3
    assert sorted(f["item"] for f in rep.findings) == [0, 3]
    assert sum(rep.by_entry["read"].values()) == 4
    rep = fuzz.campaign(1, seed=1, entries=["selftest-hang"], out=None, findings=None,
                        progress=False, workers=1, time_limit=2.0, fast=1)
    assert rep.by_entry["selftest-hang"]["hang"] == 1
    assert "stacks:" in rep.findings[0]["outcomes"][0]["message"]


def test_mutants_are_reproducible() -> None:
    """Mutant i of seed S is the same bytes in every run (and different for other ids)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        seeds = fuzz_seeds.make_seeds(Path(d))
        a = [fuzz.make_mutant(seeds, 5, i, ENTRIES).sha for i in range(40)]
        b = [fuzz.make_mutant(seeds, 5, i, ENTRIES).sha for i in range(40)]
    assert a == b
    assert len(set(a)) > 30


def _bad_summary(rep: fuzz.Report) -> str:
    lines = []
    seen: set[str] = set()
    for f in rep.findings:
        for o in f["outcomes"]:
            sig = fuzz.signature(o["cls"], o["entry"], o["message"])
            if sig not in seen:
                seen.add(sig)
                lines.append(f"{o['cls']} {o['entry']} [{f['mutation'][:60]}] {o['message'][:200]}")
    return "\n".join(lines)


@pytest.mark.skipif(not any(VECTORS.glob("*.json")), reason="no saved fuzz vectors")
def test_saved_vectors_replay_typed_or_identical() -> None:
    """Every saved regression vector now raises a typed error or restores the original,
    through every entry point, writing nothing outside its output."""
    vectors = sorted(p for p in VECTORS.iterdir() if p.suffix in (".bs", ".safetensors"))
    rep = fuzz.campaign(0, vectors=vectors, out=None, findings=None, progress=False, workers=2)
    assert rep.count == len(vectors)
    assert rep.bad == 0, _bad_summary(rep)


def test_seeded_sample_has_no_findings() -> None:
    """A fixed sample of mutants (container and safetensors): zero crash, hang, wrong,
    untyped or escape outcomes."""
    rep = fuzz.campaign(SAMPLE_COUNT, seed=SAMPLE_SEED, out=None, findings=None, progress=False,
                        workers=2)
    assert rep.count == SAMPLE_COUNT
    counts = Counter({k: sum(c[k] for c in rep.by_entry.values()) for k in BAD})
    assert rep.bad == 0, f"{dict(counts)}\n{_bad_summary(rep)}"
