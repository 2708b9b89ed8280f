"""sentence-transformers folders: the whole pipeline from a container, bit-identical to the original.

The folder is MiniLM's (Transformer, Pooling, Normalize) with two generated Dense modules
(``bigsmall.testing.sentence_folder``): both hold ``linear.weight``, the name clash that made
``bigsmall run`` fail. With sentence-transformers installed the embedding printed is the
pipeline's, equal bit for bit to ``SentenceTransformer(folder).encode``; without it the
transformer runs alone and one line says so.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import bigsmall
from bigsmall.testing import corpus
from bigsmall.testing.sentence_folder import sentence_folder

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

PROMPT = "Streaming keeps its promise."


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sentence_folder(tmp_path_factory.mktemp("st") / "model")


@pytest.fixture(scope="module")
def st_bs(st_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stbs") / "st.bs"
    bigsmall.compress(st_folder, out)
    return out


def _run(*args: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "bigsmall", "run", *args, "--json", "--no-progress"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_from_pretrained_loads_the_transformer_files_only(st_bs: Path) -> None:
    """The Dense modules' ``linear.weight`` is not the transformer's: the model is MiniLM, exact."""
    from safetensors.torch import load_file

    model = bigsmall.from_pretrained(st_bs)
    assert type(model).__name__ == "BertModel"
    params = dict(model.state_dict())
    ref = load_file(corpus.minilm_safetensors())
    assert all(torch.equal(params[n], t) for n, t in ref.items() if n in params)


def test_without_sentence_transformers_the_transformer_runs_with_a_note(
        st_bs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bigsmall.torch import runner, sentence

    monkeypatch.setattr(sentence, "has_sentence_transformers", lambda: False)
    said: list[str] = []
    r = runner.run(st_bs, prompt=PROMPT, announce=said.append)
    assert said == [sentence.MISSING_NOTE]
    assert r.output["output"] == "last_hidden_state" and r.output["embedding_dim"] == 384


def test_pipeline_embedding_bit_identical_to_sentence_transformers(st_folder: Path, st_bs: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    from bigsmall.torch.sentence import sentence_transformer

    ref = st.SentenceTransformer(str(st_folder), device="cpu")
    want = ref.encode([PROMPT], convert_to_tensor=True)
    assert tuple(want.shape) == (1, 128)  # the last Dense's width: the pipeline ran, not the encoder alone

    ours = sentence_transformer(st_bs)  # the whole SentenceTransformer, from the container
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in ref]
    assert _sha(ours.encode([PROMPT], convert_to_tensor=True)) == _sha(want)

    for mode in ([], ["--stream"]):
        out = _run(str(st_bs), "--prompt", PROMPT, *mode)["output"]
        assert out["output"] == "sentence_embedding" and out["shape"] == [1, 128]
        assert out["pipeline"] == ["Pooling", "Dense", "Dense", "Normalize"]
        assert out["sha256"] == _sha(want), mode
