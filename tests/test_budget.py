"""The streaming memory budget: decoded layers kept (LRU) within ``max_resident_bytes``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import bigsmall
from bigsmall.errors import InvalidOptionError
from bigsmall.torch.runner import digest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _ids() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (2, 32), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _everything(sm: bigsmall.StreamingModel) -> int:
    ld = sm.loader
    return ld.non_layer_bytes() + ld.row_access_bytes + sum(ld.layer_bytes(i) for i in range(ld.layer_count()))


def test_budget_for_all_layers_decodes_nothing_on_the_second_pass(minilm_bf16_folder_bs: Path) -> None:
    inputs = _ids()
    full = bigsmall.from_pretrained(minilm_bf16_folder_bs)
    with torch.no_grad():
        want = digest(full(**inputs).last_hidden_state)
    with bigsmall.StreamingModel(minilm_bf16_folder_bs) as sm:
        plain = digest(sm(**inputs).last_hidden_state)
    with bigsmall.StreamingModel(minilm_bf16_folder_bs, max_resident_bytes=1 << 40) as sm:
        first = digest(sm(**inputs).last_hidden_state)
        loads = sm.report().layer_loads
        second = digest(sm(**inputs).last_hidden_state)
        rep = sm.report()
        promise = sm.promise_bytes()
        assert promise == _everything(sm)  # the budget is capped at what the whole model needs
    assert want == plain == first == second
    assert loads == 6
    assert rep.layer_loads == 6  # the second pass decoded nothing
    assert rep.cache_hits == 6 and rep.cache_evictions == 0
    assert rep.peak_weight_bytes <= promise


def test_small_budget_keeps_a_fixed_set_and_never_exceeds_it(minilm_bf16_folder_bs: Path) -> None:
    inputs = _ids()
    with bigsmall.StreamingModel(minilm_bf16_folder_bs) as sm:
        want = digest(sm(**inputs).last_hidden_state)
        base = sm.promise_bytes()
        largest = sm.largest_layer_bytes()
    budget = base + 2 * largest + largest // 2  # room for two cached layers, not six
    with bigsmall.StreamingModel(minilm_bf16_folder_bs, max_resident_bytes=budget) as sm:
        outs = [digest(sm(**inputs).last_hidden_state) for _ in range(3)]
        rep = sm.report()
    assert outs == [want] * 3
    assert rep.promise_weight_bytes == budget and rep.budget_bytes == budget
    # cyclic passes: plain LRU would evict the block needed next and never hit; the cache keeps
    # the first two blocks (minilm's six are the same size) and they hit on passes 2 and 3
    assert rep.cache_evictions == 0 and rep.cache_hits == 4
    assert rep.layer_loads <= 18 - 4 + 1  # + the prefetch guessing the next pass's first block
    assert rep.peak_cached_bytes <= 2 * largest
    assert rep.peak_weight_bytes <= budget  # the ledger counts every decoded byte alive


def test_whisper_budget_for_the_decoder_evicts_the_encoder(whisper_folder_bs: Path) -> None:
    cls = transformers.WhisperForConditionalGeneration
    feats = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(2)).to(torch.float16)
    full = bigsmall.from_pretrained(whisper_folder_bs, model_class=cls)
    with torch.no_grad():
        want = full.generate(feats, min_new_tokens=8, max_new_tokens=8)
    with bigsmall.StreamingModel(whisper_folder_bs, model_class=cls) as sm:
        base = sm.promise_bytes()
        decoder = sum(sm.loader.layer_bytes(i) for i in range(4, 8))
    budget = base + decoder
    with bigsmall.StreamingModel(whisper_folder_bs, model_class=cls, max_resident_bytes=budget) as sm:
        with torch.no_grad():
            got = sm.model.generate(feats, min_new_tokens=8, max_new_tokens=8)
        rep = sm.report()
    assert torch.equal(got, want)
    assert rep.cache_evictions > 0  # encoder blocks went stale and made room for the decoder's
    assert rep.peak_weight_bytes <= budget
    tokens = rep.passes
    assert tokens >= 4
    assert rep.layer_loads <= 4 + 4 * 3  # after a few tokens, no decoder block is decoded again


def test_budget_below_the_two_layer_promise_is_refused(minilm_bf16_folder_bs: Path) -> None:
    with pytest.raises(InvalidOptionError, match="budget"):
        bigsmall.StreamingModel(minilm_bf16_folder_bs, max_resident_bytes=1000)


def test_whisper_generation_with_budget_bit_identical(whisper_folder_bs: Path) -> None:
    cls = transformers.WhisperForConditionalGeneration
    feats = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(1)).to(torch.float16)
    full = bigsmall.from_pretrained(whisper_folder_bs, model_class=cls)
    with torch.no_grad():
        want = full.generate(feats, min_new_tokens=6, max_new_tokens=6)
    with bigsmall.StreamingModel(whisper_folder_bs, model_class=cls, max_resident_bytes=1 << 40) as sm:
        with torch.no_grad():
            got = sm.model.generate(feats, min_new_tokens=6, max_new_tokens=6)
        rep = sm.report()
    assert torch.equal(got, want)
    assert rep.layer_loads == 8  # every block decoded once, whatever the number of tokens
    assert rep.cache_hits > 0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigsmall", *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("bad", ["", "-1", "two", "1XB", "0"])
def test_bad_budget_is_a_usage_error(bad: str) -> None:
    r = _cli("run", "whatever.bs", "--budget", bad)
    assert r.returncode == 2
    assert "--budget" in r.stderr


def test_budget_with_perfect_mode_is_refused(minilm_bf16_folder_bs: Path) -> None:
    r = _cli("run", str(minilm_bf16_folder_bs), "--mode", "perfect", "--budget", "1GB")
    assert r.returncode != 0
    assert "--budget applies to --mode stream" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_budget_implies_stream_and_matches_full_load(minilm_bf16_folder_bs: Path) -> None:
    src = str(minilm_bf16_folder_bs)
    full = _cli("run", src, "--json")
    budgeted = _cli("run", src, "--budget", "1GB", "--json")
    assert full.returncode == 0 and budgeted.returncode == 0, budgeted.stderr
    a, b = json.loads(full.stdout), json.loads(budgeted.stdout)
    assert b["mode"] == "stream"
    assert a["output"]["sha256"] == b["output"]["sha256"]
    assert b["stream"]["budget_bytes"] == 10**9
    assert b["stream"]["peak_weight_bytes"] <= b["promise"]["weight_bytes"] <= 10**9
