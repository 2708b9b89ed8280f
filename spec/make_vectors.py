"""Build the golden vectors of container format 1.0 (``spec/vectors/``).

Each vector is a small, deterministic safetensors input (a file or a model folder) built from a
seeded numpy generator, plus the ``.bs`` container the current code writes for it. ``MANIFEST.json``
records the sha256 of every source file and of every ``.bs``, the chunk size used, and the codec ids
each container exercises.

    python spec/make_vectors.py            # (re)build everything under spec/vectors/
    python spec/make_vectors.py --check    # rebuild into a temporary folder, compare, change nothing

Regenerating the committed ``.bs`` files is a deliberate act: the vectors pin the coded output of
format 1.0 (spec/FORMAT.md, "Versioning"), so a change in what the encoder writes is a format change.
Old vectors must keep decoding forever; when the encoder's output changes, bump the format version
(or deliberately accept the new output) and add or regenerate vectors on purpose.

The safetensors writer is our own (not the safetensors package) so that the source bytes do not
depend on another library's version: header JSON with keys in the given order, padded with spaces
to a multiple of 8 bytes, tensors stored in the given order.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bigsmall.testing.synthetic import write_safetensors as _write_safetensors

HERE = Path(__file__).resolve().parent
VECTORS = HERE / "vectors"

Tensors = dict[str, tuple[str, tuple[int, ...], bytes]]


# ---------------------------------------------------------------------------- writing inputs

def write_safetensors(path: Path, tensors: Tensors, metadata: dict[str, str] | None = None,
                      pad: int = 0) -> None:
    _write_safetensors(path, tensors, metadata, pad, compact=True)


def bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns (uint16), round to nearest even (no NaN inputs)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = u + 0x7FFF + ((u >> 16) & 1)
    return (u >> 16).astype(np.uint16)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------- the vectors

def v_bf16_grid() -> Tensors:
    """BF16 matrix with row and column scale groups: the field codec picks a grid > 1x1."""
    g = rng(1)
    rows, cols = 48, 96
    rscale = np.where(g.random(rows) < 0.5, 2.0**-9, 2.0**-3)
    cscale = np.where(g.random(cols) < 0.5, 1.0, 2.0**5)
    w = g.standard_normal((rows, cols)) * rscale[:, None] * cscale[None, :]
    return {"model.layers.0.mlp.down_proj.weight": ("BF16", (rows, cols), bf16(w).tobytes())}


def v_fp16_mantissa() -> Tensors:
    """F16 whose top mantissa bits are skewed: the field codec codes mb > 0 mantissa bits."""
    g = rng(2)
    shape = (32, 64)
    n = shape[0] * shape[1]
    sign = np.where(g.random(n) < 0.5, -1.0, 1.0)
    expo = g.integers(-8, 0, n)
    frac = 0.25 * g.random(n) ** 4  # mostly just above a power of two
    x = (sign * np.exp2(expo) * (1.0 + frac)).astype(np.float16)
    return {"weight": ("F16", shape, x.tobytes())}


def v_fp32_row_shift() -> Tensors:
    """F32 rows: full precision, fp16-exact (13 low zero bits), bf16-exact (16), one all-zero row."""
    g = rng(3)
    rows, cols = 32, 48
    w = (g.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    for i in range(rows):
        if i % 4 == 1:
            w[i] = w[i].astype(np.float16).astype(np.float32)
        elif i % 4 == 2:
            w[i] = (w[i].view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
    w[5] = 0.0
    return {"weight": ("F32", (rows, cols), w.tobytes())}


def v_fp8_e4m3() -> Tensors:
    """F8_E4M3 bit patterns (built bit by bit): two groups of rows with different scales."""
    g = rng(4)
    shape = (48, 96)
    sign = g.integers(0, 2, shape)
    centre = np.where(np.arange(shape[0]) % 2 == 0, 4.0, 10.0)[:, None]
    expo = np.clip(np.rint(g.normal(centre, 1.0, shape)), 0, 15).astype(np.int64)
    mant = np.minimum(g.geometric(0.3, shape) - 1, 7)
    b = (sign << 7) | (expo << 3) | mant
    b[b == 0x7F] = 0x7E  # keep clear of the e4m3fn NaN patterns (any byte would do)
    b[b == 0xFF] = 0xFE
    return {"weight": ("F8_E4M3", shape, b.astype(np.uint8).tobytes())}


def v_int64_ids() -> Tensors:
    """I64 token ids: no float layout, > 256 distinct values, so byte planes + zstd."""
    g = rng(5)
    ids = g.integers(0, 32000, 512).astype(np.int64)
    return {"input_ids": ("I64", (512,), ids.tobytes())}


def v_bool_mask() -> Tensors:
    g = rng(6)
    m = g.random((64, 64)) < 0.1
    return {"attention_mask": ("BOOL", (64, 64), m.astype(np.uint8).tobytes())}


def v_bytes_i8_f4() -> Tensors:
    """8-bit integers and packed 4-bit floats (one unit = one byte)."""
    g = rng(7)
    i8 = np.clip(np.rint(g.normal(0, 6, (48, 64))), -128, 127).astype(np.int8)
    nib = np.clip(np.rint(np.abs(g.normal(0, 2.5, 4096))), 0, 7).astype(np.uint8)
    nib |= g.integers(0, 2, 4096).astype(np.uint8) << 3
    packed = (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8)
    return {"q.weight": ("I8", (48, 64), i8.tobytes()),
            "q.weight_fp4": ("F4", (4096,), packed.tobytes())}


def v_int8_quant() -> Tensors:
    """8-bit quantised weights with a broad distribution: a byte field a prefix code suits."""
    g = rng(17)
    scale = np.array([2.0, 8.0, 30.0, 60.0])[np.arange(64) % 4][:, None]  # per-row scales
    q = np.clip(np.rint(g.normal(0, 1, (64, 512)) * scale), -127, 127).astype(np.int8)
    return {"model.layers.0.mlp.weight": ("I8", (64, 512), q.tobytes())}


def v_const() -> Tensors:
    return {
        "zeros": ("F32", (32, 32), np.zeros((32, 32), np.float32).tobytes()),
        "halves": ("BF16", (16, 16), np.full((16, 16), 0x3F00, np.uint16).tobytes()),
    }


def v_tied() -> Tensors:
    g = rng(8)
    w = bf16(g.standard_normal((32, 32)) * 0.02).tobytes()
    return {"model.embed_tokens.weight": ("BF16", (32, 32), w),
            "lm_head.weight": ("BF16", (32, 32), w)}


def v_empty() -> Tensors:
    return {"empty": ("F16", (0, 16), b""), "empty_i64": ("I64", (3, 0), b"")}


def v_scalar() -> Tensors:
    return {"temperature": ("F32", (), np.float32(0.7).tobytes()),
            "step": ("I64", (), np.int64(123456789).tobytes())}


def v_lut_fp16() -> Tensors:
    """F16 with 12 distinct values (a 'quantised' tensor): value table + coded indices."""
    g = rng(9)
    levels = (np.arange(-6, 6) * 0.0371).astype(np.float16)
    idx = np.clip(np.rint(g.normal(0, 2.0, (48, 48))) + 6, 0, 11).astype(np.int64)
    return {"weight": ("F16", (48, 48), levels[idx].tobytes())}


def v_special_values() -> Tensors:
    """NaN payloads, +-inf, -0, subnormals and extremes mixed into ordinary values."""
    g = rng(10)
    f32 = (g.standard_normal(512) * 0.1).astype(np.float32).view(np.uint32)
    specials32 = np.array([
        0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF, 0x7FC12345, 0xFFFFFFFF,  # NaNs
        0x7F800000, 0xFF800000, 0x00000000, 0x80000000,  # +-inf, +-0
        0x00000001, 0x807FFFFF, 0x00400000, 0x7F7FFFFF, 0xFF7FFFFF, 0x00800000,  # subnormal, extremes
    ], np.uint32)
    f32[g.choice(512, specials32.size * 4, replace=False)] = np.tile(specials32, 4)
    f16 = (g.standard_normal(512) * 0.1).astype(np.float16).view(np.uint16)
    specials16 = np.array([0x7E00, 0xFE00, 0x7C01, 0x7DFF, 0xFFFF, 0x7C00, 0xFC00, 0x0000,
                           0x8000, 0x0001, 0x83FF, 0x7BFF, 0xFBFF, 0x0400], np.uint16)
    f16[g.choice(512, specials16.size * 4, replace=False)] = np.tile(specials16, 4)
    b16 = bf16(g.standard_normal(512) * 0.1)
    specialsb = np.array([0x7FC0, 0xFFC0, 0x7F81, 0x7FBF, 0xFFFF, 0x7F80, 0xFF80, 0x0000,
                          0x8000, 0x0001, 0x807F, 0x7F7F, 0xFF7F, 0x0080], np.uint16)
    b16[g.choice(512, specialsb.size * 4, replace=False)] = np.tile(specialsb, 4)
    return {"f32": ("F32", (16, 32), f32.tobytes()),
            "f16": ("F16", (16, 32), f16.tobytes()),
            "bf16": ("BF16", (16, 32), b16.tobytes())}


def v_chunked() -> Tensors:
    """Several codecs with a small chunk size (see CHUNKED): many chunks, boundaries mid-row."""
    g = rng(11)
    w = bf16(g.standard_normal((32, 100)) * np.exp2(g.integers(-6, -2, 32))[:, None])
    f32 = (g.standard_normal((20, 40)) * 0.05).astype(np.float32)
    f32[::3] = f32[::3].astype(np.float16).astype(np.float32)
    levels = (np.arange(8) * 0.125 - 0.5).astype(np.float16)
    lut = levels[g.integers(0, 8, (30, 60))]
    ids = g.integers(0, 1000, 600).astype(np.int64)
    noise = g.integers(0, 256, 3000).astype(np.uint8)
    return {
        "model.layers.0.field_bf16": ("BF16", (32, 100), w.tobytes()),
        "model.layers.0.field_f32": ("F32", (20, 40), f32.tobytes()),
        "model.layers.1.lut_f16": ("F16", (30, 60), lut.tobytes()),
        "ids": ("I64", (600,), ids.tobytes()),
        "noise": ("U8", (3000,), noise.tobytes()),
    }


CHUNKED = 2048  # chunk_bytes for the 'chunked' vector (the default is 1 MiB)


def build_model_folder(root: Path) -> None:
    """Two shards (tensors in name order, as safetensors writes them), index json, config."""
    g = rng(12)
    hidden, vocab, nlayers = 16, 32, 11

    def w(*shape: int, s: float = 0.05) -> bytes:
        return bf16(g.standard_normal(shape) * s).tobytes()

    every: Tensors = {}
    emb = w(vocab, hidden)
    every["model.embed_tokens.weight"] = ("BF16", (vocab, hidden), emb)
    for i in range(nlayers):
        p = f"model.layers.{i}."
        every[p + "input_layernorm.weight"] = ("BF16", (hidden,), np.full(hidden, 0x3F80, np.uint16).tobytes())
        every[p + "self_attn.q_proj.weight"] = ("BF16", (hidden, hidden), w(hidden, hidden))
    every["model.norm.weight"] = ("BF16", (hidden,), w(hidden, s=1.0))
    every["lm_head.weight"] = ("BF16", (vocab, hidden), emb)  # tied
    names = sorted(every)
    def in_first(n: str) -> bool:
        if n.startswith("model.layers."):
            return int(n.split(".")[2]) < 6
        return n == "model.embed_tokens.weight"

    first = [n for n in names if in_first(n)]
    second = [n for n in names if n not in first]
    shards = {"model-00001-of-00002.safetensors": first, "model-00002-of-00002.safetensors": second}
    weight_map = {}
    for fname, members in shards.items():
        write_safetensors(root / fname, {n: every[n] for n in members}, {"format": "pt"})
        weight_map.update({n: fname for n in members})
    total = sum(len(every[n][2]) for n in names)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (root / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    config = {"architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
              "num_hidden_layers": nlayers, "vocab_size": vocab,
              "tie_word_embeddings": True, "torch_dtype": "bfloat16"}
    (root / "config.json").write_text(json.dumps(config, indent=2) + "\n")


# name -> (description, builder, chunk_bytes or None for the default)
FILE_VECTORS: dict[str, tuple[str, Callable[[], Tensors], int | None]] = {
    "bf16_grid": ("BF16 matrix with row/column scale groups (field, grid > 1x1)", v_bf16_grid, None),
    "fp16_mantissa": ("F16 with skewed top mantissa bits (field, mb > 0)", v_fp16_mantissa, None),
    "fp32_row_shift": ("F32 with rows whose low mantissa bits are zero (field, row_shift)",
                       v_fp32_row_shift, None),
    "fp8_e4m3": ("F8_E4M3 bit patterns (field, layout [8,0,4,3])", v_fp8_e4m3, None),
    "int64_ids": ("I64 token ids (zstd byte planes)", v_int64_ids, None),
    "bool_mask": ("BOOL sparse mask (field, whole-byte layout)", v_bool_mask, None),
    "bytes_i8_f4": ("I8 and packed F4 (8-bit and sub-byte units)", v_bytes_i8_f4, None),
    "const": ("all-zero F32 and constant BF16 (const)", v_const, None),
    "tied": ("two names, identical bytes (ref)", v_tied, None),
    "empty": ("tensors with zero elements (raw, no chunks)", v_empty, None),
    "scalar": ("0-d F32 and I64 scalars (const)", v_scalar, None),
    "lut_fp16": ("F16 with 12 distinct values (lut)", v_lut_fp16, None),
    "special_values": ("NaN payloads, +-inf, -0, subnormals in F32/F16/BF16", v_special_values, None),
    "chunked": (f"field, lut, zstd, raw with chunk_bytes={CHUNKED} (many chunks)", v_chunked, CHUNKED),
}
# format 1.1 (field8, spec §18): the float/byte vectors again, written at the default format
# (the ones above are written as format 1.0 and stay byte-identical forever)
FILE_VECTORS_11: dict[str, tuple[str, Callable[[], Tensors], int | None]] = {
    f"v11_{name}": (FILE_VECTORS[name][0].replace("field", "field8"), FILE_VECTORS[name][1],
                    FILE_VECTORS[name][2])
    for name in ("bf16_grid", "fp16_mantissa", "fp32_row_shift", "fp8_e4m3", "bool_mask",
                 "bytes_i8_f4", "special_values", "chunked")
}
# format 1.2 (fieldp, spec §19, the prefix coder): the same float/byte vectors
FILE_VECTORS_12: dict[str, tuple[str, Callable[[], Tensors], int | None]] = {
    f"v12_{name}": (FILE_VECTORS[name][0].replace("field", "fieldp"), FILE_VECTORS[name][1],
                    FILE_VECTORS[name][2])
    for name in ("bf16_grid", "fp16_mantissa", "fp32_row_shift", "fp8_e4m3", "bool_mask",
                 "bytes_i8_f4", "special_values", "chunked")
}
FILE_VECTORS_12["v12_int8_quant"] = ("I8 quantised weights (fieldp, whole-byte layout)",
                                     v_int8_quant, None)


def v_delta_pair() -> tuple[Tensors, Tensors]:
    """A base and its fine-tune: most values moved by one or two units in the last place, a
    tensor unchanged, one renamed, one reshaped, one added (spec §21)."""
    g = rng(21)
    emb = bf16(g.normal(0, 0.05, (64, 48)).astype(np.float32))
    w32 = g.normal(0, 0.1, (16, 24)).astype(np.float32)
    h16 = g.normal(0, 0.2, (20, 10)).astype(np.float16)
    bias = bf16(g.normal(0, 0.01, 48).astype(np.float32))
    ids = np.arange(8, dtype=np.int64)
    base: Tensors = {
        "emb.weight": ("BF16", (64, 48), emb.tobytes()), "layers.0.w": ("F32", (16, 24), w32.tobytes()),
        "layers.0.h": ("F16", (20, 10), h16.tobytes()), "layers.0.b": ("BF16", (48,), bias.tobytes()),
        "layers.0.ids": ("I64", (8,), ids.tobytes()), "head.w": ("F32", (4, 6), bytes(96)),
    }

    def nudge(x: np.ndarray, p: float, k: int) -> np.ndarray:
        d = (g.integers(-k, k + 1, x.size) * (g.random(x.size) < p)).reshape(x.shape)
        return (x.astype(np.int64) + d.astype(np.int64)).astype(x.dtype)

    ft: Tensors = {
        "emb.weight": ("BF16", (64, 48), nudge(emb, 0.3, 2).tobytes()),
        "layers.0.w": ("F32", (16, 24), nudge(w32.view(np.uint32), 0.9, 300).tobytes()),
        "layers.0.h": ("F16", (20, 10), nudge(h16.view(np.uint16), 0.5, 3).tobytes()),
        "renamed.b": ("BF16", (48,), bias.tobytes()),
        "layers.0.ids": ("I64", (8,), ids.tobytes()),
        "head.w": ("F32", (5, 6), g.normal(0, 1, 30).astype(np.float32).tobytes()),
        "head.new": ("F16", (3,), np.array([1, -2, 3], np.float16).tobytes()),
    }
    return base, ft


# patches (spec §21): a fine-tune coded against its base; the base file is a vector input too
PATCH_VECTORS: dict[str, tuple[str, Callable[[], tuple[Tensors, Tensors]]]] = {
    "delta": ("fine-tune patch against a base (codecs delta and base, spec §21)", v_delta_pair),
}
FOLDER_VECTORS: dict[str, tuple[str, Callable[[Path], None], int | None]] = {
    "tiny_model": ("model folder: two shards, index json, config; 11 layers, tied head",
                   build_model_folder, None),
}


# ---------------------------------------------------------------------------- building

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(out: Path) -> dict[str, Any]:
    import bigsmall
    from bigsmall.container import format as fmt

    out.mkdir(parents=True, exist_ok=True)
    vectors: dict[str, Any] = {}
    jobs: list[tuple[str, str, Path, int | None, str, str, str]] = []
    for name, (desc, make, chunk) in FILE_VECTORS.items():
        src = out / f"{name}.safetensors"
        write_safetensors(src, make())
        jobs.append((name, desc, src, chunk, "file", "1.0", "rans"))
    for name, (desc, make_dir, chunk) in FOLDER_VECTORS.items():
        src = out / name
        if src.exists():
            shutil.rmtree(src)
        src.mkdir()
        make_dir(src)
        jobs.append((name, desc, src, chunk, "folder", "1.0", "rans"))
    for name, (desc, make, chunk) in FILE_VECTORS_11.items():
        src = out / f"{name}.safetensors"
        write_safetensors(src, make())
        jobs.append((name, desc, src, chunk, "file", "1.1", "rans"))
    for name, (desc, make, chunk) in FILE_VECTORS_12.items():
        src = out / f"{name}.safetensors"
        write_safetensors(src, make())
        jobs.append((name, desc, src, chunk, "file", "1.2", "prefix"))
    bases: dict[str, Path] = {}
    for name, (desc, make_pair) in PATCH_VECTORS.items():
        base_t, ft_t = make_pair()
        bases[name] = out / f"{name}_base.safetensors"
        write_safetensors(bases[name], base_t)
        src = out / f"{name}.safetensors"
        write_safetensors(src, ft_t)
        jobs.append((name, desc, src, None, "file", "1.2", "auto"))
    writer = None
    for name, desc, src, chunk, kind, version, coder in jobs:
        dst = out / f"{name}.bs"
        kw: dict[str, Any] = {} if chunk is None else {"chunk_bytes": chunk}
        if name in bases:
            kw["delta_from"] = bases[name]
        bigsmall.compress(src, dst, force=True, progress=False, format_version=version,
                          coder=coder, **kw)
        if kind == "file":
            files = {src.name: sha256(src)}
        else:
            files = {p.relative_to(src).as_posix(): sha256(p)
                     for p in sorted(src.rglob("*")) if p.is_file()}
        with bigsmall.open(dst) as bs:
            codecs = sorted({t.codec for t in bs.container.tensors})
            writer = bs.container.meta.get("writer")
        extra = {"base": bases[name].name, "base_sha256": sha256(bases[name])} if name in bases else {}
        vectors[name] = {
            "description": desc, "kind": kind, "source": src.name, "bs": dst.name,
            "bs_sha256": sha256(dst), "chunk_bytes": chunk, "files": files, "codecs": codecs,
            "format_version": [int(x) for x in version.split(".")], "coder": coder, **extra,
        }
    return {
        "format_version": list(fmt.VERSION),
        "writer": writer,
        "note": "Golden vectors of the .bs container (spec/FORMAT.md). Built by spec/make_vectors.py; "
                "every later bigsmall must decode them to the source bytes forever.",
        "vectors": vectors,
    }


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="rebuild into a temporary folder and report differences; write nothing")
    ap.add_argument("--out", type=Path, default=VECTORS, help="output folder (default: spec/vectors)")
    args = ap.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = build(Path(tmp))
            write_manifest(Path(tmp), manifest)
            cmp = filecmp.dircmp(tmp, args.out)
            diffs = _diff(cmp)
        for d in diffs:
            print(d)
        print("identical" if not diffs else f"{len(diffs)} difference(s)")
        return 1 if diffs else 0
    manifest = build(args.out)
    write_manifest(args.out, manifest)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    for name, v in manifest["vectors"].items():
        print(f"{name:16s} {', '.join(v['codecs'])}")
    print(f"{len(manifest['vectors'])} vectors, {total} bytes under {args.out}")
    return 0


def _diff(cmp: filecmp.dircmp, prefix: str = "") -> list[str]:
    out = [f"differs: {prefix}{n}" for n in cmp.diff_files]
    out += [f"only in rebuild: {prefix}{n}" for n in cmp.left_only]
    out += [f"only in committed: {prefix}{n}" for n in cmp.right_only if n != ".gitignore"]
    for name, sub in cmp.subdirs.items():
        out += _diff(sub, f"{prefix}{name}/")
    return out


if __name__ == "__main__":
    sys.exit(main())
