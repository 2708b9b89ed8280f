"""The empty skeleton under either transformers major (the main venv: 5.x; scripts/test_tf4.sh: 4.x).

transformers 5 removed ``init_empty_weights``, and ``bigsmall run`` failed at import. The
skeleton is now built by :func:`bigsmall.torch.skeleton.parameters_on_meta` (plain torch), so
these tests pin what it must give whatever the major: parameters on ``meta``, buffers real and
right (``position_ids``), nothing patched afterwards, and a model that loads bit-exact.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _tiny_bert() -> object:
    return transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=32,
                                   max_position_embeddings=40)


def test_skeleton_parameters_on_meta_buffers_real() -> None:
    from bigsmall.torch.skeleton import empty_model

    register = torch.nn.Module.register_parameter
    model = empty_model(_tiny_bert(), None, torch.bfloat16)
    assert torch.nn.Module.register_parameter is register  # the patch is gone after the build
    params = dict(model.named_parameters())
    assert params and all(p.device.type == "meta" for p in params.values())
    assert all(p.dtype == torch.bfloat16 for p in params.values())
    ids = dict(model.named_buffers())["embeddings.position_ids"]
    assert ids.device.type == "cpu" and torch.equal(ids, torch.arange(40).expand(1, -1))
    # a module made after the build is ordinary again
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"


def test_patch_is_undone_when_the_build_fails() -> None:
    from bigsmall.torch.skeleton import parameters_on_meta

    register = torch.nn.Module.register_parameter
    with pytest.raises(RuntimeError), parameters_on_meta():
        assert torch.nn.Linear(2, 2).weight.device.type == "meta"
        raise RuntimeError("build failed")
    assert torch.nn.Module.register_parameter is register


def test_small_model_round_trip_bit_exact(tmp_path: object) -> None:
    """A model saved by this transformers (whatever its major) compresses and loads bit-exact."""
    from pathlib import Path

    import bigsmall

    torch.manual_seed(0)
    src = Path(str(tmp_path)) / "bert"
    ref = transformers.BertModel(_tiny_bert()).eval()
    ref.save_pretrained(src)
    bs = Path(str(tmp_path)) / "bert.bs"
    bigsmall.compress(src, bs)
    got = bigsmall.from_pretrained(bs)
    want = {k: v for k, v in ref.state_dict().items()}
    for name, t in got.state_dict().items():
        if name in want:
            assert torch.equal(t, want[name]) and t.dtype == want[name].dtype, name
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        assert torch.equal(got(input_ids=ids).last_hidden_state, ref(input_ids=ids).last_hidden_state)
    print(f"transformers {transformers.__version__}")
