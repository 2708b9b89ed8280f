"""install_hook: transformers' own from_pretrained on compressed models, reversibly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import bigsmall
from bigsmall.errors import FormatError
from bigsmall.testing import corpus

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture
def hook() -> object:
    assert bigsmall.install_hook()
    yield
    bigsmall.uninstall_hook()


def _weights_equal(model: torch.nn.Module) -> None:
    from safetensors.torch import load_file

    ref = load_file(corpus.minilm_safetensors())
    params = dict(model.named_parameters())
    assert params
    for name, p in params.items():
        assert torch.equal(p, ref[name]), name


def test_auto_model_on_a_container_file(hook: object, minilm_folder_bs: Path) -> None:
    model = transformers.AutoModel.from_pretrained(str(minilm_folder_bs))
    assert type(model).__name__ == "BertModel"
    _weights_equal(model)


def test_concrete_class_on_a_folder_holding_a_container(hook: object, minilm_folder_bs: Path,
                                                         tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(corpus.minilm_dir() / "config.json", folder)
    shutil.copy(minilm_folder_bs, folder / "model.bs")
    _weights_equal(transformers.BertModel.from_pretrained(folder))
    # a head the container lacks is an error, not a silent random initialisation
    with pytest.raises(FormatError, match="lacks"):
        transformers.BertForMaskedLM.from_pretrained(folder)


def test_uncompressed_folders_still_go_to_transformers(hook: object) -> None:
    model = transformers.AutoModel.from_pretrained(str(corpus.minilm_dir()))
    _weights_equal(model)


def test_uninstall_restores_the_original_methods() -> None:
    from transformers.modeling_utils import PreTrainedModel
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    def methods() -> tuple[object, ...]:
        return (PreTrainedModel.__dict__["from_pretrained"], _BaseAutoModelClass.__dict__["from_pretrained"],
                transformers.AutoModel.__dict__["from_pretrained"],
                transformers.AutoModelForCausalLM.__dict__["from_pretrained"])

    before = methods()
    assert not bigsmall.uninstall_hook()
    assert bigsmall.install_hook()
    assert not bigsmall.install_hook()  # idempotent
    assert all(a is not b for a, b in zip(methods(), before, strict=True))
    assert bigsmall.uninstall_hook()
    assert methods() == before


def test_hooked_context(minilm_folder_bs: Path) -> None:
    from bigsmall.torch.hook import hook_installed

    with bigsmall.hooked():
        assert hook_installed()
        transformers.AutoModel.from_pretrained(minilm_folder_bs)
    assert not hook_installed()
