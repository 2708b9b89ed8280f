"""``bigsmall run``: load a compressed model (fully or streamed) and run it on a real input.

The input fits the model: a text prompt through the model's own tokenizer for text encoders
(all-MiniLM's sentence embedding: mean of the last hidden states), a 16 kHz clip for Whisper
(a WAV file, or a generated tone when none is given) transcribed with ``generate``. The output's
sha256 is reported so a streamed run and a full load can be compared bit for bit from the shell.
Streamed runs state their memory promise before anything is decoded and the measurement after.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from ..errors import FormatError
from ..io import memory
from ..plan.autopilot import Announced, Plan, require_announced
from .sentence import pipeline_for_run
from .skeleton import transformers_module, write_side_files

DEFAULT_PROMPT = "bigsmall runs this model one layer at a time."
#: a streamed run's process peak may exceed its weights by this much: activations of a short
#: input, the decoder's compressed read-ahead and allocator slack (stated, and checked in tests)
RUNTIME_ALLOWANCE = 96 << 20
SAMPLE_RATE = 16_000


@attrs.frozen
class Promise:
    """Announced before a streamed run: weight bytes resident at most, and the process peak."""

    weight_bytes: int
    baseline_rss: int
    allowance: int
    budget: int | None = None

    @property
    def process_bytes(self) -> int:
        return self.baseline_rss + self.weight_bytes + self.allowance

    def sentence(self) -> str:
        return (f"promise: at most {self.weight_bytes / 1e6:.1f} MB of weights resident "
                f"({'within the --budget, layers cached LRU' if self.budget is not None else 'non-layer + 2 x largest layer + row caches'}); process peak <= {self.process_bytes / 1e6:.0f} MB "
                f"(runtime baseline {self.baseline_rss / 1e6:.0f} MB + weights + "
                f"{self.allowance / 1e6:.0f} MB for activations and buffers)")


@attrs.frozen
class RunResult:
    mode: str  # "load", "stream" or "fast"
    src: str
    model: str
    device: str
    tensors: int
    weight_bytes: int
    load_seconds: float
    run_seconds: float
    output: dict[str, Any]
    promise: Promise | None
    peak_rss: int
    stream: dict[str, Any] | None
    fast: dict[str, Any] | None = None  # the fast mode's INT4 figures (``bigsmall.torch.fast``)

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self, recurse=False)
        if self.promise is not None:
            d["promise"] = {**attrs.asdict(self.promise), "process_bytes": self.promise.process_bytes}
        return d


def digest(t: Any) -> str:
    """sha256 of a tensor's bytes: equal digests mean bit-identical outputs."""
    import torch

    return hashlib.sha256(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def tone(seconds: float = 2.0) -> np.ndarray:
    """A generated clip (a gliding tone with an envelope): a real input, not a recording."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    freq = 220.0 + 220.0 * t / seconds
    env = np.sin(np.pi * t / seconds) ** 2
    return (0.3 * env * np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE)).astype(np.float32)


def read_wav(path: str | os.PathLike[str]) -> np.ndarray:
    """A 16 kHz PCM WAV as float32 mono (channels averaged). Other rates are refused, not resampled."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise FormatError(f"{path}: not a PCM WAV file ({exc})") from None
    if rate != SAMPLE_RATE:
        raise FormatError(f"{path}: {rate} Hz; Whisper needs {SAMPLE_RATE} Hz audio (resample first)")
    kinds = {1: (np.uint8, 128.0, 128.0), 2: (np.int16, 0.0, 32768.0), 4: (np.int32, 0.0, 2.0**31)}
    if width not in kinds:
        raise FormatError(f"{path}: {8 * width}-bit samples are not supported (8, 16 or 32-bit PCM)")
    kind, offset, scale = kinds[width]
    x = (np.frombuffer(frames, dtype=kind).astype(np.float32) - offset) / scale
    return x.reshape(-1, channels).mean(axis=1)


def warm_decoders(bs: Any) -> None:
    """Decode the smallest tensor of each codec the file uses: loads the compiled kernels now, so
    the runtime baseline a streamed run measures includes them (they are runtime, not weights)."""
    smallest: dict[str, Any] = {}
    for t in bs.container.tensors:
        if t.codec not in smallest or t.spec.nbytes < smallest[t.codec].spec.nbytes:
            smallest[t.codec] = t
    for t in smallest.values():
        bs.read_bytes(bs.container.key(t))  # "file::name" where two files share the name


def _model_class(config: Any, name: str | None) -> Any:
    transformers = transformers_module()
    names = [name] if name else [*(getattr(config, "architectures", None) or []), "AutoModel"]
    for n in names:
        cls = getattr(transformers, n, None)
        if cls is not None:
            return cls
    raise FormatError(f"transformers has no model class {names[0]!r}")


def _logits_bytes(task: Any, model: Any) -> int:
    """Bytes of a text model's output over its vocabulary (a masked or causal LM's logits):
    activations, not weights, but ``tokens x vocab`` of them (128 x 262144 bf16 = 67 MB), held
    twice (the output and the masked mean below), which the fixed allowance did not cover; the
    full load holds the same."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if task.kind != "text" or head is None or not hasattr(head, "out_features"):
        return 0
    item = next((p.dtype.itemsize for p in model.parameters() if p.is_floating_point()), 4)
    return int(task.encoded["input_ids"].numel()) * int(head.out_features) * item


class _Task:
    """The input for this model and what to do with it."""

    def __init__(self, config: Any, side: Path, prompt: str | None, audio: str | None):
        self.config = config
        self.post: Any = None  # sentence-transformers modules after the transformer, if any
        self.kind = "speech" if getattr(config, "model_type", "") == "whisper" else "text"
        self.tokenizer = self._tokenizer(side)
        if self.kind == "speech":
            from transformers import WhisperFeatureExtractor

            wav = read_wav(audio) if audio else tone()
            fe = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
            self.features = fe(wav, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
            self.input_desc = f"{'WAV ' + str(audio) if audio else 'generated tone'} ({len(wav) / SAMPLE_RATE:.1f} s)"
        else:
            if self.tokenizer is None:
                raise FormatError("no tokenizer files in the container or next to it; cannot "
                                  "turn the prompt into input ids")
            self.prompt = prompt or DEFAULT_PROMPT
            self.encoded = self.tokenizer(self.prompt, return_tensors="pt")
            self.input_desc = f"prompt {self.prompt!r} ({self.encoded['input_ids'].shape[1]} tokens)"

    @staticmethod
    def _tokenizer(side: Path) -> Any:
        transformers = transformers_module()
        try:
            return transformers.AutoTokenizer.from_pretrained(str(side))
        except Exception:  # noqa: BLE001 - fall back to the bare tokenizer.json
            if (side / "tokenizer.json").is_file():
                return transformers.PreTrainedTokenizerFast(tokenizer_file=str(side / "tokenizer.json"))
            return None

    def __call__(self, forward: Callable[..., Any], model: Any) -> dict[str, Any]:
        import torch

        with torch.no_grad():
            if self.kind == "speech":
                dtype = next(iter(p.dtype for p in model.parameters() if p.is_floating_point()))
                feats = self.features.to(dtype)
                ids = model.generate(feats, max_new_tokens=24)
                logits = forward(input_features=feats, decoder_input_ids=ids).logits
                text = (self.tokenizer.decode(ids[0], skip_special_tokens=True)
                        if self.tokenizer is not None else None)
                return {"kind": "transcription", "input": self.input_desc, "tokens": ids[0].tolist(),
                        "text": text, "output": "logits", "shape": list(logits.shape),
                        "sha256": digest(logits)}
            out = forward(**self.encoded)
            hidden = getattr(out, "last_hidden_state", None)
            if hidden is None:
                hidden = out.logits
            if self.post is not None:  # the embedding as modules.json defines it
                emb = self.post({"token_embeddings": hidden,
                                 "attention_mask": self.encoded["attention_mask"]})["sentence_embedding"]
                shown = {"output": "sentence_embedding", "shape": list(emb.shape), "sha256": digest(emb),
                         "pipeline": [type(m).__name__ for m in self.post]}
            else:
                mask = self.encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                emb = (hidden * mask).sum(1) / mask.sum(1)
                shown = {"output": "last_hidden_state", "shape": list(hidden.shape), "sha256": digest(hidden)}
            return {"kind": "embedding", "input": self.input_desc, **shown,
                    "embedding_dim": int(emb.shape[-1]),
                    "embedding_norm": float(emb.float().norm()),
                    "embedding_head": [round(float(x), 5) for x in emb[0, :4].float()]}


def run(src: str | os.PathLike[str], stream: bool = False, device: str = "cpu",
        prompt: str | None = None, audio: str | None = None, model_class: str | None = None,
        threads: int | None = None, progress: Any = None,
        announce: Callable[[str], None] | None = None,
        fast_plan: Plan | None = None, receipt: Announced | None = None,
        budget: int | None = None) -> RunResult:
    """Load ``src`` (fully, or streamed one layer at a time) and run it on a real input.

    ``announce`` receives the streaming promise before any weight is decoded.
    ``progress``: a callable ``(total, unit) -> bar`` (``update``/``close``), or None.
    ``fast_plan``: run the autopilot's lossy fast mode (INT4, :mod:`.fast`); refused before
    anything is read unless ``receipt`` proves its announcement was emitted.
    ``budget``: a streamed run's ``max_resident_bytes`` (decoded layers kept, LRU, within it).
    """
    if fast_plan is not None:
        require_announced(fast_plan, receipt)  # before a single weight (or side file) is read
    import torch

    from ..io.reader import BsFile
    from ..io.remote import is_remote
    from .executor import StreamingModel
    from .pretrained import from_pretrained

    transformers = transformers_module()
    src = src if is_remote(src) else Path(src)  # a URL / hf:// path: read by range requests
    with tempfile.TemporaryDirectory(prefix="bigsmall-run-") as d, BsFile(src) as bs:
        side = Path(d)
        write_side_files(bs, src, side)
        config = transformers.AutoConfig.from_pretrained(str(side))
        tensors = len(bs.container.tensors)
        weight_bytes = sum(t.spec.nbytes for t in bs.container.tensors)
        task = _Task(config, side, prompt, audio)
        # a sentence-transformers folder: pooling/dense/normalize after the transformer
        task.post = pipeline_for_run(bs, str(torch.device(device)), announce)
        warm_decoders(bs)
    cls = _model_class(config, model_class)
    dev = str(torch.device(device))
    memory.reset_peak()
    if fast_plan is not None:
        from .fast import int4_model

        bar = progress(weight_bytes, "B") if progress else None
        t0 = time.perf_counter()
        model, stats = int4_model(src, fast_plan, receipt, model_class=cls, device=dev,
                                  threads=threads, progress=bar)
        load_s = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        t1 = time.perf_counter()
        output = task(model, model)
        return RunResult("fast", str(src), type(model).__name__, dev, tensors, weight_bytes, load_s,
                         time.perf_counter() - t1, output, None, memory.peak_rss(), None,
                         stats.to_json())
    if not stream:
        bar = progress(weight_bytes, "B") if progress else None
        t0 = time.perf_counter()
        model = from_pretrained(src, model_class=cls, device=dev, threads=threads, progress=bar)
        load_s = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        t1 = time.perf_counter()
        output = task(model, model)
        run_s = time.perf_counter() - t1
        return RunResult("load", str(src), type(model).__name__, dev, tensors, weight_bytes, load_s,
                         run_s, output, None, memory.peak_rss(), None)
    t0 = time.perf_counter()
    bar = None
    promises: list[Promise] = []

    def ready(sm: StreamingModel) -> None:
        # the runtime baseline: torch + transformers imported, kernels loaded, skeleton on meta
        memory.reset_peak()
        promises.append(Promise(sm.promise_bytes(), memory.current_rss(),
                                RUNTIME_ALLOWANCE + 2 * _logits_bytes(task, sm.model), budget))
        if announce is not None:
            announce(promises[0].sentence())

    with StreamingModel(src, model_class=cls, device=dev, threads=threads, before_weights=ready,
                        max_resident_bytes=budget,
                        on_layer=lambda i: bar.update(1) if bar is not None else None) as sm:
        promise = promises[0]
        load_s = time.perf_counter() - t0
        bar = progress(sm.loader.layer_count(), "layer") if progress else None
        if bar is not None:  # from a URL: the bytes fetched so far beside the layers computed
            from ..io.progress import fetch_bar

            bar = fetch_bar(bar, sm.loader._bs.source)
        t1 = time.perf_counter()
        output = task(sm, sm.model)
        run_s = time.perf_counter() - t1
        if bar is not None:
            bar.close()
        report = sm.report()
        name = type(sm.model).__name__
    stream_info = report.as_dict()
    stream_info["overlap"] = round(report.overlap, 4) if not math.isnan(report.overlap) else None
    return RunResult("stream", str(src), name, dev, tensors, weight_bytes, load_s, run_s, output,
                     promise, memory.peak_rss(), stream_info)
