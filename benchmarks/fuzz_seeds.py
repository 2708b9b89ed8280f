"""Seed inputs of the fuzzer (``benchmarks/fuzz.py``): small real containers and safetensors files.

Why real containers made at start-up rather than checked-in bytes: a mutant is only useful if
it stays close to what the writer of *this* checkout produces (every codec, every path of the
reader), and the writer changes. The tensors are synthetic and deterministic (fixed numpy
seeds), so the *originals* (the bytes every decode must restore) never depend on the writer:
a saved regression vector names its seed and is judged against the same originals forever.

Each seed is a few KB to ~150 KB so that a mutant decodes through every entry point in
milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

Tensors = dict[str, tuple[str, tuple[int, ...], bytes]]


@attrs.frozen
class Seed:
    """One seed: a ``.bs`` container (``kind="container"``) or a ``.safetensors`` input of
    ``compress`` (``kind="safetensors"``), with the original bytes it stands for."""

    name: str
    kind: str  # container | safetensors
    path: Path  # the .bs, or the .safetensors input
    root: str  # file | folder (the container's meta.root)
    files: dict[str, bytes] = attrs.field(eq=False, repr=False)  # original member files by path
    tensors: dict[str, bytes] = attrs.field(eq=False, repr=False)  # original tensor bytes by name

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()


# ---------------------------------------------------------------- synthetic tensors

def _bf16(x: np.ndarray) -> bytes:
    return (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()


def _fp8(rng: np.random.Generator, n: int, ebits: int) -> bytes:
    """fp8 bit patterns with a weight-like (peaked) exponent and random mantissas."""
    mbits = 7 - ebits
    centre = (1 << ebits) // 2 - 2
    e = np.clip(np.round(rng.normal(centre, 1.2, n)), 0, (1 << ebits) - 1).astype(np.uint8)
    m = rng.integers(0, 1 << mbits, n, dtype=np.uint8)
    s = rng.integers(0, 2, n, dtype=np.uint8)
    return ((s << 7) | (e << mbits) | m).astype(np.uint8).tobytes()


def mixed_tensors(scale: int = 1) -> Tensors:
    """Tensors that make the planner choose every codec: field8/fieldp/field (floats),
    ``const`` (zeros), ``lut`` (few values), ``zstd`` (a sinusoidal table, integer ranges),
    ``raw`` (random bytes), ``ref`` (a tied copy), fp32 rows that are really fp16 (row
    shift), empty, 0-d and odd-sized tensors, fp8 variants and integer/bool dtypes."""
    rng = np.random.default_rng(22)
    w0 = rng.normal(0, 0.02, (64, 96 * scale)).astype(np.float32)
    pos = np.sin(np.arange(64)[:, None] / (10000 ** (np.arange(32)[None, :] / 32))).astype(np.float32)
    t: Tensors = {
        "embed.weight": ("F32", (40, 64), rng.normal(0, 0.1, (40, 64)).astype(np.float16)
                         .astype(np.float32).tobytes()),
        "pos.weight": ("F32", (64, 32), pos.tobytes()),
        "zeros.bias": ("F32", (128,), bytes(512)),
        "lut.scale": ("F32", (300,), rng.choice(np.array([0.5, 1.0, -2.0, 3.25, 0.0], np.float32),
                                               300).astype(np.float32).tobytes()),
        "ids": ("I64", (200,), np.arange(200, dtype=np.int64).tobytes()),
        "mask": ("BOOL", (257,), (rng.random(257) < 0.1).astype(np.uint8).tobytes()),
        "bytes.u8": ("U8", (33,), rng.integers(0, 256, 33, dtype=np.uint8).tobytes()),
        "rand.i32": ("I32", (17, 3), rng.integers(-2**31, 2**31 - 1, 51, dtype=np.int32).tobytes()),
        "empty": ("F32", (0, 4), b""),
        "scalar": ("F32", (), np.float32(1.5).tobytes()),
        "odd.bf16": ("BF16", (7, 13), _bf16(rng.normal(0, 1, (7, 13)))),
        "fp8.e4m3": ("F8_E4M3", (32, 48), _fp8(rng, 32 * 48, 4)),
        "fp8.e5m2": ("F8_E5M2", (24, 40), _fp8(rng, 24 * 40, 5)),
        "layers.0.attn.weight": ("BF16", w0.shape, _bf16(w0)),
        "layers.0.mlp.weight": ("F16", (48, 80), rng.normal(0, 0.05, (48, 80)).astype(np.float16).tobytes()),
        "layers.0.norm.weight": ("F32", (96,), rng.normal(1, 0.01, 96).astype(np.float32).tobytes()),
        "layers.1.attn.weight": ("BF16", w0.shape, _bf16(w0)),  # tied: stored as a ref
        "layers.1.mlp.weight": ("F16", (48, 80), rng.normal(0, 0.05, (48, 80)).astype(np.float16).tobytes()),
        "layers.1.fp32.weight": ("F32", (32, 64), rng.normal(0, 0.02, (32, 64)).astype(np.float32).tobytes()),
    }
    return t


def small_tensors() -> Tensors:
    """A few KB: the input of the ``compress`` fuzzing (compress is slower per byte)."""
    rng = np.random.default_rng(7)
    return {
        "a.weight": ("BF16", (8, 16), _bf16(rng.normal(0, 0.02, (8, 16)))),
        "b.bias": ("F32", (16,), bytes(64)),
        "c.half": ("F16", (4, 6), rng.normal(0, 1, (4, 6)).astype(np.float16).tobytes()),
        "d.ids": ("I64", (5,), np.arange(5, dtype=np.int64).tobytes()),
        "e.empty": ("F32", (0,), b""),
        "f.scalar": ("F32", (), np.float32(2.0).tobytes()),
        "g.fp8": ("F8_E4M3", (3, 5), _fp8(rng, 15, 4)),
    }


def write_st(path: Path, tensors: Tensors, metadata: dict[str, str] | None = None) -> bytes:
    """Write a safetensors file (the format's plain layout); returns its bytes."""
    data = _st_bytes(tensors, metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def st_tensors(data: bytes) -> dict[str, bytes]:
    """Tensor bytes of a well-formed safetensors file, by name (the originals of a seed)."""
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    return {k: data[base + v["data_offsets"][0] : base + v["data_offsets"][1]]
            for k, v in header.items() if k != "__metadata__"}


# ---------------------------------------------------------------- the seeds

@attrs.frozen
class _Recipe:
    name: str
    options: dict[str, Any]
    folder: bool = False


RECIPES = (
    _Recipe("auto", {"chunk_bytes": 2048}),  # several chunks per float tensor
    _Recipe("rans", {"coder": "rans"}),
    _Recipe("prefix", {"coder": "prefix", "chunk_bytes": 4096}),
    _Recipe("fast", {"level": "fast"}),
    _Recipe("v10", {"format_version": "1.0", "coder": "rans"}),  # the 1.0 ``field`` codec
    _Recipe("folder", {"chunk_bytes": 4096}, folder=True),
)


def make_seeds(root: Path, compress: Callable[..., Any] | None = None) -> list[Seed]:
    """Build every seed under ``root``: the container seeds (one per recipe) and the
    safetensors seed of the ``compress`` fuzzing. ``compress`` defaults to ``bigsmall.compress``."""
    if compress is None:
        import bigsmall

        compress = bigsmall.compress
    root.mkdir(parents=True, exist_ok=True)
    seeds: list[Seed] = []
    mixed = mixed_tensors()
    for r in RECIPES:
        work = root / r.name
        if r.folder:
            src = work / "shardmodel"
            files = folder_files(mixed)
            for fname, data in files.items():
                (src / fname).parent.mkdir(parents=True, exist_ok=True)
                (src / fname).write_bytes(data)
            dst = work / "shardmodel.bs"
        else:
            src = work / "model.safetensors"
            files = {"model.safetensors": write_st(src, mixed, {"format": "pt"})}
            dst = work / "model.bs"
        compress(src, dst, force=True, threads=1, **r.options)
        files, tensors = originals(r.name)
        seeds.append(Seed(r.name, "container", dst, "folder" if r.folder else "file", files, tensors))
    st = root / "st" / "small.safetensors"
    small = small_tensors()
    data = write_st(st, small, {"format": "pt"})
    seeds.append(Seed("st", "safetensors", st, "file", {"small.safetensors": data}, st_tensors(data)))
    return seeds


def originals(name: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(files, tensors) of the seed called ``name``, rebuilt without compressing anything:
    what a regression vector saved from that seed must decode to."""
    mixed = mixed_tensors()
    if name == "st":
        data = _st_bytes(small_tensors(), {"format": "pt"})
        return {"small.safetensors": data}, st_tensors(data)
    tensors = {k: v[2] for k, v in mixed.items()}
    if name == "folder":
        return folder_files(mixed), tensors
    return {"model.safetensors": _st_bytes(mixed, {"format": "pt"})}, tensors


def folder_files(mixed: Tensors) -> dict[str, bytes]:
    """The model folder seed: two safetensors shards, their index json and a config.json."""
    names = list(mixed)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": {k: mixed[k] for k in names[:half]},
              "model-00002-of-00002.safetensors": {k: mixed[k] for k in names[half:]}}
    files = {f: _st_bytes(ts, {"format": "pt"}) for f, ts in shards.items()}
    weight_map = {k: f for f, ts in shards.items() for k in ts}
    files["config.json"] = json.dumps({"model_type": "fuzz", "hidden_size": 64}).encode()
    files["model.safetensors.index.json"] = json.dumps(
        {"metadata": {"total_size": 1}, "weight_map": weight_map}).encode()
    return files


def _st_bytes(tensors: Tensors, metadata: dict[str, str] | None) -> bytes:
    header: dict[str, Any] = {"__metadata__": metadata} if metadata is not None else {}
    pos = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + len(data)]}
        pos += len(data)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(d for _, _, d in tensors.values())


def seed_digest(seeds: list[Seed]) -> str:
    """A short digest of every seed's bytes: two runs with the same digest made the same mutants."""
    h = hashlib.sha256()
    for s in seeds:
        h.update(s.name.encode())
        h.update(s.data)
    return h.hexdigest()[:12]
