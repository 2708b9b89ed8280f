"""from_pretrained gives a transformers model whose weights and outputs are bit-exact."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import bigsmall
from bigsmall.errors import FormatError
from bigsmall.testing import corpus

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def test_minilm_weights_and_outputs_bit_exact(minilm_folder_bs: Path) -> None:
    from safetensors.torch import load_file

    model = bigsmall.from_pretrained(minilm_folder_bs).eval()
    ref_weights = load_file(corpus.minilm_safetensors())
    params = dict(model.state_dict())
    for name, ref in ref_weights.items():
        if name in params:
            assert params[name].dtype == ref.dtype and torch.equal(params[name], ref), name
    assert sum(name in params for name in ref_weights) >= len(ref_weights) - 1  # all but buffers

    ref_model = transformers.AutoModel.from_pretrained(str(corpus.minilm_dir())).eval()
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 102]])
    with torch.no_grad():
        got = model(input_ids=ids).last_hidden_state
        want = ref_model(input_ids=ids).last_hidden_state
    assert _digest(got) == _digest(want)


def test_missing_config_is_a_clear_error(small_model: Path, tmp_path: Path) -> None:
    bs = tmp_path / "m.bs"
    bigsmall.compress(small_model, bs)
    with pytest.raises(FormatError, match="config.json"):
        bigsmall.from_pretrained(bs)
