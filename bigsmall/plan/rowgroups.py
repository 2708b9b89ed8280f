"""Chunk policy for token-embedding tables: small, row-aligned chunks (row groups).

Why: an embedding lookup reads a few hundred rows of a table of tens or hundreds of thousands,
and a streamed forward decodes only the chunks holding them (``bigsmall.torch.rows``). With the
default 256 KiB chunks a 262144 x 768 bf16 table's rows come ~170 to a chunk, and a 128-token
forward decoded 2.7 % of the table's coded bytes; with row groups of 16 KiB (10 rows there) it
is ~0.4 %. Chunks are per tensor in the container (``params["chunk"]``), so this needs no format
change and any bigsmall reads the result. The cost is a few bytes a chunk and the codec choice
at small chunks (``auto`` tends to prefix coding there): about +0.4 % on the table, measured by
``benchmarks/bench_stream_heavy.py --ratio``.

Row-aligned: a chunk holds whole rows, so a row is one chunk's bytes (no row straddles two),
which keeps a lookup to one decode per distinct row group.

Pure: a function of the tensor's name and shape.
"""

from __future__ import annotations

from ..core.types import TensorSpec

#: decoded bytes of one row group (the chunk of an embedding table), at most
ROW_GROUP_BYTES = 1 << 14
#: an ``nn.Embedding`` table this big is read by row when streaming (``torch/executor.py``)
ROW_READ_MIN_BYTES = 32 << 20
#: a table smaller than this keeps the default chunks: streaming loads it whole, so row groups
#: would cost size for nothing (MiniLM bf16's 23 MB table: +0.06 points of the file with the
#: default coder, +0.16 with ``--coder rans``, against issue 17's size bounds)
ROW_TABLE_MIN_BYTES = ROW_READ_MIN_BYTES
#: at least this many rows (a vocabulary, not a position table of 512 or 4096 rows)
ROW_TABLE_MIN_ROWS = 8192
#: 1-byte tables (fp8, int8) keep the default chunks: MiniLM's fp8 table coded 0.8051 of its
#: bytes in 256 KiB chunks (field8) and 0.8095 in row groups of 16 KiB (the fitted fp8 model's
#: per-chunk cost sends ``auto`` to the prefix code), +0.55 % against +0.16 % for bf16
ROW_TABLE_MIN_ITEMSIZE = 2

#: last name components (before ``.weight``) of token-embedding tables in common checkpoints:
#: BERT ``word_embeddings``, Llama/Whisper ``embed_tokens``, GPT-2 ``wte``, T5 ``shared``,
#: GPT-NeoX ``embed_in``, Meta ``tok_embeddings``, CTranslate2 ``embeddings``
_TABLE_NAMES = frozenset({"word_embeddings", "embed_tokens", "wte", "shared", "embed_in",
                          "tok_embeddings", "token_embedding", "embeddings", "embedding"})


def is_row_table(spec: TensorSpec) -> bool:
    """Whether ``spec`` looks like a token-embedding table (gathered by row at inference)."""
    if len(spec.shape) != 2 or spec.info.itemsize < ROW_TABLE_MIN_ITEMSIZE or spec.nbytes < ROW_TABLE_MIN_BYTES:
        return False  # 1-byte (fp8) tables: see ROW_TABLE_MIN_ITEMSIZE
    rows, cols = spec.shape
    parts = spec.name.replace("/", ".").split(".")
    if len(parts) < 2 or parts[-1] != "weight":
        return False
    return parts[-2] in _TABLE_NAMES and rows >= ROW_TABLE_MIN_ROWS and rows >= 4 * cols


def row_group_units(spec: TensorSpec, chunk_bytes: int) -> int | None:
    """Elements per chunk for a token-embedding table (whole rows, at most ``ROW_GROUP_BYTES``
    and ``chunk_bytes``, at least one row), or None for any other tensor."""
    if not is_row_table(spec):
        return None
    cols = spec.shape[1]
    row_bytes = cols * spec.info.itemsize
    rows = max(1, min(ROW_GROUP_BYTES, chunk_bytes) // row_bytes)
    return rows * cols


#: a table tied to the output projection this big is streamed in row blocks by the head too
HEAD_READ_MIN_BYTES = 128 << 20
#: the LRU of decoded row groups a table read by row keeps (``torch/rows.py``)
ROW_CACHE_BYTES = 16 << 20
#: decoded bytes of one row block of a streamed tied head (more where rows are wide)
HEAD_BLOCK_BYTES = 4 << 20
#: rows of one such block, at least (see ``head_block_rows``)
HEAD_BLOCK_MIN_ROWS = 1024


def head_block_rows(row_bytes: int, block_bytes: int = HEAD_BLOCK_BYTES) -> int:
    """Rows per block of a tied head streamed in row blocks: a power of two, at least
    ``HEAD_BLOCK_MIN_ROWS``, else the largest within ``block_bytes``.

    Why: each logit is one weight row's dot product, so the blocks' outputs side by side are the
    whole product; but a CPU BLAS picks its kernel by the matrix's size, and the bits then hold
    only where the block's kernel sums like the whole matrix's. Measured with torch 2.13's CPU
    kernels: fp32 blocks of 64 or 128 rows changed low bits (M >= 7 tokens), 256 rows and more
    did not at any size tried; odd sizes (5461 rows) did; bf16 and fp16 matched at every size.
    Powers of two of at least 1024 rows keep clear of both (the tests compare sha256)."""
    rows = max(1, block_bytes // max(1, row_bytes))
    return max(HEAD_BLOCK_MIN_ROWS, 1 << (rows.bit_length() - 1))


def chunk_nbytes(spec: TensorSpec, params: dict[str, object]) -> int:
    """Decoded bytes of one stored chunk of a tensor (``params["chunk"]`` units)."""
    per = int(str(params.get("chunk", 0) or 0))
    return per * max(1, spec.info.itemsize) if per else spec.nbytes


def streamed_table_bytes(spec: TensorSpec, params: dict[str, object]) -> int:
    """What streaming holds for a non-layer tensor, from the index alone: a token-embedding
    table of ``HEAD_READ_MIN_BYTES`` or more is read by row whether or not it is tied to the
    head (its row cache + a head's row block + the block's two cut chunks); anything else,
    the tensor. Why not from ``ROW_READ_MIN_BYTES``: between the two, a tied table stays
    resident, and the index does not say whether a table is tied, so the estimate errs large."""
    if spec.nbytes >= HEAD_READ_MIN_BYTES and is_row_table(spec):
        return min(spec.nbytes, ROW_CACHE_BYTES + head_held_bytes(spec, params))
    return spec.nbytes


def head_held_bytes(spec: TensorSpec, params: dict[str, object], block_bytes: int = HEAD_BLOCK_BYTES) -> int:
    """Decoded bytes a tied head streamed in row blocks holds at once: one block + the two
    chunks its ends cut (decoded whole)."""
    row_bytes = spec.shape[1] * max(1, spec.info.itemsize)
    return head_block_rows(row_bytes, block_bytes) * row_bytes + 2 * chunk_nbytes(spec, params)
