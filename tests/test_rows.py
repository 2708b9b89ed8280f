"""Embedding rows on demand (``bigsmall.torch.rows``): the same bits as the table, few chunks decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.core.types import TensorSpec
from bigsmall.errors import IntegrityError
from bigsmall.plan.planner import CHUNK_BYTES, chunk_units_for
from bigsmall.plan.rowgroups import is_row_table
from bigsmall.testing.synthetic import write_safetensors
from bigsmall.torch import rows as rows_mod
from bigsmall.torch.rows import RowStore

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A bf16 table of 5000 x 97 (rows of 194 bytes: chunk boundaries cut rows), small chunks."""
    rng = np.random.default_rng(1)
    t = (rng.standard_normal((5000, 97), dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    t[7, :3] = [0x7FC1, 0xFF80, 0x8000]  # a NaN payload, -inf, -0: bits, not values
    d = tmp_path_factory.mktemp("rows")
    src = write_safetensors(d / "t.safetensors", {"emb": ("BF16", t.shape, t.tobytes())})
    bs = d / "t.bs"
    bigsmall.compress(src, bs, chunk_bytes=64 << 10)
    return bs, t


def test_rows_bit_exact_and_few_chunks(table: tuple[Path, np.ndarray]) -> None:
    bs_path, t = table
    with bigsmall.open(bs_path) as bs:
        store = RowStore(bs, bs.entry("emb"), cache_bytes=64 << 10)
        assert len(store.job.chunks) > 4
        ids = torch.tensor([[7, 0, 4999, 7], [337, 338, 2500, 1]])
        got = store.lookup(ids, torch.bfloat16)
        want = torch.from_numpy(t.view(np.int16)).view(torch.bfloat16)[ids]
        assert got.shape == (2, 4, 97)
        assert torch.equal(got.view(torch.int16), want.view(torch.int16))
        assert store.decoded_coded_bytes < store.coded_bytes / 2
        # every row (those cut by chunk boundaries included), through a small cache that evicts
        every = torch.arange(5000)
        assert torch.equal(store.lookup(every, torch.bfloat16).view(torch.int16),
                           torch.from_numpy(t.view(np.int16)))
        assert store.cached_bytes <= (64 << 10) + max(e - b for _, _, b, e in store.job.chunks)
        with pytest.raises(IndexError):
            store.lookup(torch.tensor([5000]), torch.bfloat16)


def test_corrupt_table_is_refused_when_the_store_opens(table: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    bs_path, _ = table
    with bigsmall.open(bs_path) as bs:
        entry = bs.entry("emb")
        cut = entry.offset + entry.head_len + entry.chunk_lens[0] + 10  # inside the second chunk
    bad = tmp_path / "bad.bs"
    data = bytearray(bs_path.read_bytes())
    data[cut] ^= 0x5A
    bad.write_bytes(bytes(data))
    with bigsmall.open(bad) as bs, pytest.raises(IntegrityError):
        RowStore(bs, bs.entry("emb"))


def _spec(name: str, shape: tuple[int, int], dtype: str = "BF16") -> TensorSpec:
    n = shape[0] * shape[1] * {"BF16": 2, "F32": 4, "F16": 2, "F8_E4M3": 1}[dtype]
    return TensorSpec(name=name, dtype=dtype, shape=shape, begin=0, end=n)


def test_token_embeddings_get_row_aligned_row_groups() -> None:
    """The planner's embedding policy: whole rows, at most 16 KiB a chunk; other tensors (a
    position table, a weight matrix, a small vocabulary) keep the default chunks."""
    for name in ("model.embed_tokens.weight", "embeddings.word_embeddings.weight", "transformer.wte.weight",
                 "decoder/embeddings/weight"):
        spec = _spec(name, (32768, 768))
        assert is_row_table(spec)
        assert chunk_units_for(spec) == 10 * 768  # 10 rows of 1536 bytes
    fp32 = _spec("shared.weight", (32128, 512), "F32")
    assert chunk_units_for(fp32) == 8 * 512
    for spec in (_spec("embeddings.position_embeddings.weight", (512, 768)),
                 _spec("model.layers.0.mlp.up_proj.weight", (32768, 768)),
                 _spec("embed_tokens.weight", (4096, 768)),  # 6 MiB: loaded whole anyway
                 _spec("embeddings.word_embeddings.weight", (30522, 384)),  # MiniLM bf16's 23 MB
                 _spec("lm_head.weight", (32768, 768)),
                 _spec("model.embed_tokens.weight", (65536, 512), "F8_E4M3")):  # 1-byte: see rowgroups
        assert not is_row_table(spec)
        assert chunk_units_for(spec) * 2 > CHUNK_BYTES // 4  # the default chunking, not 16 KiB
    # a huge row: one row a chunk
    assert chunk_units_for(_spec("wte.weight", (65536, 16384))) == 16384


def test_compressed_embedding_is_stored_in_row_groups(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    t = (rng.standard_normal((65536, 256), dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    src = write_safetensors(tmp_path / "e.safetensors", {"model.embed_tokens.weight": ("BF16", t.shape, t.tobytes())})
    bs = tmp_path / "e.bs"
    bigsmall.compress(src, bs)
    with bigsmall.open(bs) as f:
        entry = f.entry("model.embed_tokens.weight")
        assert entry.params["chunk"] == 32 * 256 and len(entry.chunk_lens) == 65536 // 32
        assert np.array_equal(f.read("model.embed_tokens.weight").view(np.uint16), t)
        store = RowStore(f, entry)
        got = store.lookup(torch.tensor([5, 6, 65535]), torch.bfloat16)
        assert store.decoded_chunks == 2  # rows 5 and 6 share a row group
        assert torch.equal(got.view(torch.int16), torch.from_numpy(t.view(np.int16)[[5, 6, 65535]]))


@pytest.mark.parametrize("dtype,code", [("BF16", torch.bfloat16), ("F32", torch.float32)])
def test_linear_in_row_blocks_is_the_full_product(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  dtype: str, code: object) -> None:
    """A tied head streamed in row blocks (``RowStore.linear``) gives the bits of ``F.linear`` on
    the whole table: with and without bias, one token and several, a last block cut short,
    chunk boundaries inside blocks."""
    import torch.nn.functional as F

    rows, cols = 5000, 96
    g = torch.Generator().manual_seed(5)
    w = (torch.randn(rows, cols, generator=g) * 0.05).to(code)
    raw = w.view(torch.int16 if dtype == "BF16" else torch.int32).numpy()
    src = write_safetensors(tmp_path / "w.safetensors", {"emb": (dtype, (rows, cols), raw.tobytes())})
    bs = tmp_path / "w.bs"
    bigsmall.compress(src, bs, chunk_bytes=24 << 10)
    monkeypatch.setattr(rows_mod, "HEAD_BLOCK_BYTES", 1 << 16)
    bias = torch.randn(rows, generator=g).to(code)
    with bigsmall.open(bs) as f:
        store = RowStore(f, f.entry("emb"))
        assert rows % store.block_rows() and rows // store.block_rows() >= 2
        for shape in ((1, 1, cols), (2, 7, cols), (13, cols)):
            x = torch.randn(*shape, generator=g).to(code)
            for b in (None, bias):
                want, got = F.linear(x, w, b), store.linear(x, b, code)
                assert got.shape == want.shape and got.dtype == want.dtype
                assert torch.equal(got.view(torch.uint8), want.view(torch.uint8)), (shape, b is None)
        assert store.head_passes == 6
