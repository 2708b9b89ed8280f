"""The streaming executor: outputs bit-identical to a full load, memory within its promise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import bigsmall
from bigsmall.errors import FormatError
from bigsmall.torch.runner import digest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _text_ids() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (4, 48), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0  # padding: exercises the attention mask path
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("which", ["minilm_folder_bs", "minilm_bf16_folder_bs"])
def test_minilm_streamed_outputs_bit_identical(which: str, request: pytest.FixtureRequest) -> None:
    src: Path = request.getfixturevalue(which)
    inputs = _text_ids()
    full = bigsmall.from_pretrained(src)
    with torch.no_grad():
        want = full(**inputs).last_hidden_state
    with bigsmall.StreamingModel(src) as sm:
        got = sm(**inputs).last_hidden_state
        again = sm(**inputs).last_hidden_state  # a second pass re-streams every layer
        rep = sm.report()
        # between passes every block is back on meta: nothing of the layers stays resident
        assert all(p.device.type == "meta" for p in sm.model.encoder.layer.parameters())
    assert digest(got) == digest(want) == digest(again)
    assert want.dtype == (torch.bfloat16 if "bf16" in which else torch.float32)
    assert rep.layers == 6 and rep.passes == 2 and rep.layer_loads >= 12
    assert rep.peak_layers <= 2
    assert rep.peak_weight_bytes <= rep.promise_weight_bytes
    # fp32's 47 MB word embedding is read by row (rows.py; bf16's 23 MB is under ROWS_MIN): the
    # promise counts its 16 MiB cache, not the table
    assert rep.row_tables == (0 if "bf16" in which else 1)
    assert rep.promise_weight_bytes == (rep.non_layer_bytes + 2 * rep.largest_layer_bytes
                                        + rep.row_tables * (16 << 20))
    assert 0.0 <= rep.overlap <= 1.0


def test_whisper_streamed_logits_and_generation_bit_identical(whisper_folder_bs: Path) -> None:
    cls = transformers.WhisperForConditionalGeneration
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(1, 80, 3000, generator=g).to(torch.float16)
    dec = torch.tensor([[50257, 50362, 400, 2068]])
    full = bigsmall.from_pretrained(whisper_folder_bs, model_class=cls)
    with torch.no_grad():
        want = full(input_features=feats, decoder_input_ids=dec).logits
        want_ids = full.generate(feats, max_new_tokens=6)
    with bigsmall.StreamingModel(whisper_folder_bs, model_class=cls) as sm:
        got = sm(input_features=feats, decoder_input_ids=dec).logits
        with torch.no_grad():
            got_ids = sm.model.generate(feats, max_new_tokens=6)
        rep = sm.report()
    assert want.dtype == torch.float16
    assert digest(got) == digest(want)
    assert torch.equal(got_ids, want_ids)
    assert rep.layers == 8 and rep.peak_layers <= 2
    assert rep.peak_weight_bytes <= rep.promise_weight_bytes


def test_wrong_model_class_is_a_clear_error(minilm_folder_bs: Path) -> None:
    with pytest.raises(FormatError, match="model_class"):
        bigsmall.StreamingModel(minilm_folder_bs, model_class=transformers.BertForMaskedLM)


def test_dtype_other_than_stored_is_refused(minilm_folder_bs: Path) -> None:
    with pytest.raises(FormatError, match="bit-exact"):
        bigsmall.from_pretrained(minilm_folder_bs, dtype=torch.bfloat16)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigsmall", *args], capture_output=True,
                          text=True, timeout=600)


def test_cli_run_stream_keeps_its_promise_and_matches_full_load(minilm_bf16_folder_bs: Path) -> None:
    src = str(minilm_bf16_folder_bs)
    full = _cli("run", src, "--prompt", "a sentence to embed", "--json")
    assert full.returncode == 0, full.stderr
    streamed = _cli("run", src, "--prompt", "a sentence to embed", "--stream", "--json")
    assert streamed.returncode == 0, streamed.stderr
    a, b = json.loads(full.stdout), json.loads(streamed.stdout)
    assert a["mode"] == "load" and b["mode"] == "stream"
    assert a["output"]["sha256"] == b["output"]["sha256"]
    assert a["output"]["embedding_dim"] == 384
    promise, stream = b["promise"], b["stream"]
    assert stream["peak_weight_bytes"] <= promise["weight_bytes"]
    assert b["peak_rss"] <= promise["process_bytes"], (b["peak_rss"], promise)


def test_cli_run_text_output(minilm_folder_bs: Path) -> None:
    r = _cli("run", str(minilm_folder_bs), "--stream", "--no-progress")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert ": stream: bit-exact" in lines[0]  # the autopilot's plan, said before anything loads
    assert lines[1].startswith("promise: at most ")  # announced before the run's own report
    assert "promise kept" in r.stdout and "sha256" in r.stdout


def test_cli_run_whisper_transcribes_a_wav(whisper_folder_bs: Path, tmp_path: Path) -> None:
    import wave

    import numpy as np

    from bigsmall.torch.runner import SAMPLE_RATE, tone

    wav = tmp_path / "clip.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((tone(1.0) * 32767).astype(np.int16).tobytes())
    r = _cli("run", str(whisper_folder_bs), "--audio", str(wav), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["output"]
    assert out["kind"] == "transcription" and out["tokens"] and isinstance(out["text"], str)


def test_cli_run_errors_are_one_line(tmp_path: Path, small_model: Path, whisper_folder_bs: Path) -> None:
    bs = tmp_path / "m.bs"
    bigsmall.compress(small_model, bs)
    r = _cli("run", str(bs))
    assert r.returncode == 1 and "config.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    r = _cli("run", str(whisper_folder_bs), "--audio", str(bad))
    assert r.returncode == 1 and "WAV" in r.stderr and "Traceback" not in r.stderr
    r = _cli("run", str(tmp_path / "missing.bs"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
