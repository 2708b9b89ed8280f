"""Embedding rows on demand (``bigsmall.torch.rows``): the same bits as the table, few chunks decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.errors import IntegrityError
from bigsmall.testing.synthetic import write_safetensors
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
