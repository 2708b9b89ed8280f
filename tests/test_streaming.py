"""StreamingLoader: layer by layer, bit-exact with ``bigsmall.load``, at most two layers alive."""

from __future__ import annotations

import gc
from pathlib import Path

import anyio
import numpy as np
import pytest
import torch

import bigsmall
from bigsmall.core.layers import layer_key
from bigsmall.testing.synthetic import write_safetensors
from bigsmall.torch.streaming import StreamingLoader


def as_bytes(t: torch.Tensor) -> torch.Tensor:
    flat = t.contiguous().reshape(-1)
    return flat if flat.dtype == torch.uint8 else flat.view(torch.uint8)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(as_bytes(a), as_bytes(b))


def compressed(src: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model.bs"
    bigsmall.compress(src, out)
    return out


def many_layers(tmp_path: Path, n: int = 8) -> Path:
    rng = np.random.default_rng(1)
    t: dict[str, tuple[str, tuple[int, ...], bytes]] = {
        "model.embed_tokens.weight": ("F32", (32, 16), rng.normal(0, 1, (32, 16)).astype(np.float32).tobytes()),
    }
    for i in range(n):
        size = 64 + 16 * i  # layers of different sizes
        t[f"model.layers.{i}.mlp.weight"] = ("F16", (size, 8), rng.normal(0, 1, (size, 8)).astype(np.float16).tobytes())
        t[f"model.layers.{i}.norm.weight"] = ("F32", (8,), rng.normal(1, 0.1, 8).astype(np.float32).tobytes())
    t["model.norm.weight"] = ("F32", (16,), np.ones(16, np.float32).tobytes())
    return compressed(write_safetensors(tmp_path / "many.safetensors", t, {"format": "pt"}), tmp_path)


def check_stream(bs_path: Path) -> None:
    ref = bigsmall.load(bs_path)
    seen: dict[str, torch.Tensor] = {}
    with StreamingLoader(bs_path) as sl:
        promise = sl.promise_bytes()
        nl = sl.load_non_layer_tensors()
        assert all(layer_key(n) is None for n in nl)
        seen.update({n: t.clone() for n, t in nl.items()})
        order = []
        for i, tensors in sl.iter_layers():
            order.append(i)
            assert list(tensors) == sl.layer_names(i)
            assert {layer_key(n) for n in tensors} == {sl.layer_key(i)}
            for n, t in tensors.items():
                assert n not in seen
                seen[n] = t.clone()
            del tensors, t
        assert order == list(range(sl.layer_count()))
        assert sl.layer_count() > 0
        del nl
        gc.collect()
        assert sl.peak_resident_bytes <= promise
        assert sl.peak_resident_layers <= 2
        assert sl.resident_bytes == 0
    assert set(seen) == set(ref)
    for n, t in ref.items():
        assert same(seen[n], t), n


def test_small_model(small_model: Path, tmp_path: Path) -> None:
    check_stream(compressed(small_model, tmp_path))


def test_many_layers(tmp_path: Path) -> None:
    check_stream(many_layers(tmp_path))


def test_minilm(minilm_fp32: Path, tmp_path: Path) -> None:
    bs_path = compressed(minilm_fp32, tmp_path)
    check_stream(bs_path)
    with StreamingLoader(bs_path) as sl:
        assert sl.layer_count() == 6
        assert [sl.layer_key(i) for i in range(6)] == [("encoder.layer", i) for i in range(6)]
        assert len(sl.layer_names(0)) == 16


def test_promise_from_index(tmp_path: Path) -> None:
    bs_path = many_layers(tmp_path)
    with StreamingLoader(bs_path) as sl:
        sizes = [sl.layer_bytes(i) for i in range(sl.layer_count())]
        assert sl.promise_bytes() == sl.non_layer_bytes() + 2 * max(sizes)
        assert sl.non_layer_bytes() == 32 * 16 * 4 + 16 * 4
        assert sl.peak_resident_bytes == 0  # nothing decoded yet


def test_async_twin(tmp_path: Path) -> None:
    bs_path = many_layers(tmp_path)
    ref = bigsmall.load(bs_path)

    async def main() -> tuple[list[int], dict[str, torch.Tensor], int, int]:
        got: dict[str, torch.Tensor] = {}
        order = []
        with StreamingLoader(bs_path) as sl:
            async for i, tensors in sl.aiter_layers():
                order.append(i)
                assert list(tensors) == sl.layer_names(i)
                await anyio.sleep(0.01)  # the consumer "works" while the next layer decodes
                got.update({n: t.clone() for n, t in tensors.items()})
                del tensors
            return order, got, sl.peak_resident_layers, sl.layer_count()

    order, got, peak_layers, count = anyio.run(main)
    assert order == list(range(count))
    assert peak_layers <= 2
    layer_names = [n for n in ref if layer_key(n) is not None]
    assert sorted(got) == sorted(layer_names)
    for n in layer_names:
        assert same(got[n], ref[n]), n


def test_at_most_two_layers_alive(tmp_path: Path) -> None:
    """Weakrefs on the yielded tensors: when layer L is handed out, every layer < L - 1 is gone,
    and the loader never has more than two layers alive (decoding, prefetched or handed out)."""
    import weakref

    bs_path = many_layers(tmp_path)
    refs: list[list[weakref.ref[torch.Tensor]]] = []
    with StreamingLoader(bs_path) as sl:
        for i, tensors in sl.iter_layers():
            refs.append([weakref.ref(t) for t in tensors.values()])
            alive = [j for j, rs in enumerate(refs) if any(r() is not None for r in rs)]
            assert alive in ([i], [i - 1, i]), alive
            assert sl._ledger.live_layers <= 2
            assert sl.resident_bytes <= sl.promise_bytes()
        del tensors
        assert sl.peak_resident_layers == 2  # the prefetch did overlap
        assert sl._ledger.live_layers == 0


def test_caller_keeping_layers_does_not_deadlock(tmp_path: Path) -> None:
    bs_path = many_layers(tmp_path)
    with StreamingLoader(bs_path) as sl:
        kept = list(sl.iter_layers())  # keeps every layer: the promise is then the caller's
        assert [i for i, _ in kept] == list(range(sl.layer_count()))
        assert sl.peak_resident_layers >= 3


def test_early_break_releases(tmp_path: Path) -> None:
    bs_path = many_layers(tmp_path)
    with StreamingLoader(bs_path) as sl:
        for i, _tensors in sl.iter_layers():
            if i == 2:
                break
        del _tensors
        gc.collect()
        assert sl.resident_bytes == 0


def test_no_layers(tmp_path: Path) -> None:
    p = write_safetensors(tmp_path / "flat.safetensors",
                          {"a": ("F32", (4,), np.arange(4, dtype=np.float32).tobytes())})
    with StreamingLoader(compressed(p, tmp_path)) as sl:
        assert sl.layer_count() == 0
        assert list(sl.iter_layers()) == []
        assert sl.promise_bytes() == 16
        assert torch.equal(sl.load_non_layer_tensors()["a"], torch.arange(4, dtype=torch.float32))


def test_corrupt_layer_raises(tmp_path: Path) -> None:
    from bigsmall.errors import BigsmallError

    bs_path = many_layers(tmp_path)
    with StreamingLoader(bs_path) as sl:
        entry = sl._layers[3][0]
    data = bytearray(bs_path.read_bytes())
    data[entry.offset + entry.length - 1] ^= 0xFF
    bs_path.write_bytes(bytes(data))
    with StreamingLoader(bs_path) as sl:
        got = []
        with pytest.raises(BigsmallError):
            for i, _ in sl.iter_layers():
                got.append(i)
        assert got == [0, 1, 2]
