"""The autopilot's planner: which mode runs a model here, and the sentence that says so.

Pure: a function of a file's index summary and a machine profile (both plain values), no I/O.
The shell measures the machine (``bigsmall.io.profile``), reads the index, calls :func:`plan`,
emits the plan with :func:`announce`, and hands the returned :class:`Announced` receipt to the
executor, which refuses a lossy plan without one (:func:`require_announced`).

The modes, best fidelity first:

* ``perfect``: every tensor decoded into memory at once, the stored bits (bit-exact);
* ``stream``: bit-exact too, one transformer layer resident (+ the next, prefetched); costs the
  streaming promise of ``bigsmall.torch.streaming``: non-layer bytes + 2 x the largest layer,
  a large token-embedding table counted as what streaming holds of it (``rowgroups.py``);
* ``fast``: lossy. Group-wise INT4 (asymmetric, groups of 128 along the last, input dimension;
  fp16 scale and minimum per group) of the large 2-D float tensors, dequantized one module at a
  time as the forward pass reaches it. From a ``.bsd`` the INT4 code is the stored fast member;
  from an exact ``.bs`` it is computed while loading (the same code, from the exact weights).

``auto`` takes the highest fidelity that fits: never lossy when an exact mode fits, and streaming
before lossy. The never-silent-downgrade rule lives in the types: a :class:`Plan` whose fidelity is
below the file's best cannot be built without an :class:`Announcement`, and the only way to get
the :class:`Announced` receipt an executor needs is to pass the plan through :func:`announce`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ..core.types import TensorEntry
from ..errors import DoesNotFitError, PlanError, UnannouncedDowngradeError
from .rowgroups import streamed_table_bytes

MODES = ("perfect", "stream", "fast")
REQUESTS = ("auto", *MODES)
FIDELITY = {"perfect": "exact", "stream": "exact", "fast": "lossy"}
GROUP = 128  # INT4 group size along the input dimension
GROUP_BYTES = GROUP // 2 + 4  # 64 bytes of packed nibbles + fp16 scale + fp16 minimum
FAST_MIN_ELEMENTS = 1 << 14  # smaller tensors (norms, biases, tiny projections) stay exact
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
#: the fast mode's float32 temporaries: tensors are (de)quantized in slices of this size
FAST_WORK_BYTES = 64 << 20
#: host memory of the runtime itself: torch + transformers + the decoders imported. The baseline
#: that ``run --stream --json`` prints (``promise.baseline_rss``) on MiniLM bf16 depends on the
#: environment: 513 MB in the dev venv, 618 MB in a clean-clone CI venv (same packages; 2026-12-07);
#: the larger one + the runner's 96 MiB activation allowance is ~719 MB. An estimate made before
#: anything is loaded should err on the large side: a plan that streams where a full load would
#: just have fitted costs some speed, one that loads and does not fit costs the run.
HOST_RUNTIME_BYTES = 720_000_000
#: device memory a CUDA context and its kernels take before any weight
DEVICE_RUNTIME_BYTES = 500_000_000


def _gb(n: int | float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


# ---------------------------------------------------------------------------- inputs
@attrs.frozen
class Gpu:
    index: int
    name: str
    total_bytes: int
    free_bytes: int


@attrs.frozen
class Profile:
    """What ``bigsmall profile`` measured (plain values; ``bigsmall.io.profile`` measures)."""

    cores: int
    ram_total_bytes: int
    ram_available_bytes: int
    gpus: tuple[Gpu, ...] = attrs.field(default=(), converter=tuple)
    disk_read_bytes_per_s: float | None = None
    disk_probe: str = ""
    measured_at: str = ""

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["gpus"] = [attrs.asdict(g) for g in self.gpus]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Profile:
        gpus = tuple(Gpu(**g) for g in d.get("gpus", ()))
        keys = {f.name for f in attrs.fields(cls)} - {"gpus"}
        return cls(gpus=gpus, **{k: v for k, v in d.items() if k in keys})


def fast_quantizes(dtype: str, shape: tuple[int, ...], name: str) -> bool:
    """The tensors the fast mode codes in INT4: large 2-D float matrices (linear layers and
    embedding tables). Positional tables stay exact: some models read them without calling
    their module (Whisper's encoder takes ``embed_positions.weight`` directly)."""
    return (dtype in FLOAT_DTYPES and len(shape) == 2 and math.prod(shape) >= FAST_MIN_ELEMENTS
            and name.endswith("weight") and "position" not in name)


def int4_bytes(shape: tuple[int, ...]) -> int:
    """Bytes of a 2-D tensor in the fast mode's code: per row, ceil(cols / 128) groups."""
    rows, cols = shape
    return rows * -(-cols // GROUP) * GROUP_BYTES


@attrs.frozen
class FileSummary:
    """What the planner needs of a container, from its index alone (nothing decoded)."""

    path: str
    kind: str  # "bs" or "bsd"
    tensors: int
    exact_bytes: int  # all tensors decoded
    non_layer_bytes: int
    largest_layer_bytes: int
    layers: int
    largest_tensor_bytes: int
    fast_bytes: int | None  # resident bytes of the fast mode's weights; None: no fast mode
    fast_source: str | None  # "member" (a .bsd's stored INT4) or "on-the-fly" (from a .bs)
    streamed_non_layer_bytes: int | None = None  # what streaming holds of them (tables by row)

    @property
    def best_fidelity(self) -> str:
        return "exact"  # a .bs, and a .bsd's exact member

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def summarize(path: str, entries: Iterable[TensorEntry], kind: str = "bs",
              fast_member_bytes: int | None = None) -> FileSummary:
    """A container's :class:`FileSummary` from its index entries."""
    entries = list(entries)
    layers: dict[int, int] = {}
    non_layer = fast = largest = streamed = 0
    quantizable = False
    for t in entries:
        n = t.spec.nbytes
        largest = max(largest, n)
        if t.layer is None:
            non_layer += n
            streamed += streamed_table_bytes(t.spec, t.params)
        else:
            layers[t.layer] = layers.get(t.layer, 0) + n
        if fast_quantizes(t.spec.dtype, t.spec.shape, t.name):
            quantizable = True
            fast += int4_bytes(t.spec.shape)
        else:
            fast += n
    if kind == "bsd":
        fast_bytes, source = fast_member_bytes, "member"
    else:
        fast_bytes, source = (fast, "on-the-fly") if quantizable else (None, None)
    return FileSummary(path, kind, len(entries), non_layer + sum(layers.values()), non_layer,
                       max(layers.values(), default=0), len(layers), largest, fast_bytes, source,
                       streamed)


# ---------------------------------------------------------------------------- costs
@attrs.frozen
class ModeCost:
    """Memory one mode needs, on the host and on the device, and whether it fits there."""

    mode: str
    fidelity: str
    available: bool  # the file can be run this way at all
    host_bytes: int
    device_bytes: int
    fits: bool
    math: str  # how the bytes were counted, for the sentence and --json

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _weights(s: FileSummary, mode: str) -> tuple[int, str]:
    if mode == "perfect":
        return s.exact_bytes, f"all {s.tensors} tensors {_gb(s.exact_bytes)}"
    if mode == "stream":
        held = s.non_layer_bytes if s.streamed_non_layer_bytes is None else s.streamed_non_layer_bytes
        what = "non-layer" if held == s.non_layer_bytes else "non-layer (embedding read by row)"
        return (held + 2 * s.largest_layer_bytes,
                f"{what} {_gb(held)} + 2 x largest layer {_gb(s.largest_layer_bytes)}")
    fast = s.fast_bytes or 0
    # + one tensor in the model's dtype at a time (being quantized while loading, or dequantized
    # for its module's forward) and the slice temporaries
    extra = s.largest_tensor_bytes + FAST_WORK_BYTES
    return fast + extra, (f"INT4 weights {_gb(fast)} + one tensor {_gb(s.largest_tensor_bytes)} "
                          f"+ work {_gb(FAST_WORK_BYTES)}")


def costs(s: FileSummary, p: Profile, device: str = "cpu") -> tuple[ModeCost, ...]:
    """Every mode's cost on ``device`` against the profile's free memory."""
    gpu = _gpu(p, device)
    out = []
    for mode in MODES:
        w, how = _weights(s, mode)
        # a .bsd (file or folder) is not streamed: its exact member decodes given the fast
        # member, tensor by tensor, with no layer-by-layer executor yet
        available = (mode != "fast" or s.fast_bytes is not None) and not (mode == "stream" and s.kind == "bsd")
        if gpu is None:
            host, dev = w + HOST_RUNTIME_BYTES, 0
            fits = host <= p.ram_available_bytes
            how += f" + runtime {_gb(HOST_RUNTIME_BYTES)}"
        else:
            # decoded on the host, then moved: a full load stages every tensor on the host,
            # streaming and fast one layer or tensor at a time
            staged = s.exact_bytes if mode == "perfect" else 2 * s.largest_tensor_bytes
            host, dev = staged + HOST_RUNTIME_BYTES, w + DEVICE_RUNTIME_BYTES
            fits = host <= p.ram_available_bytes and dev <= gpu.free_bytes
            how += f" + CUDA runtime {_gb(DEVICE_RUNTIME_BYTES)} on the GPU"
        out.append(ModeCost(mode, FIDELITY[mode], available, host, dev, fits and available, how))
    return tuple(out)


def _gpu(p: Profile, device: str) -> Gpu | None:
    if device == "cpu":
        return None
    kind, _, idx = device.partition(":")
    if kind != "cuda":  # mps (unified memory) and others: planned against RAM, said so
        return None
    try:
        i = int(idx or 0)
    except ValueError:
        raise PlanError(f"device {device!r}: not 'cuda' or 'cuda:N'") from None
    for g in p.gpus:
        if g.index == i:
            return g
    raise PlanError(f"device {device!r}: the profile has no such GPU "
                    f"({len(p.gpus)} found; `bigsmall profile --refresh` after adding one)")


def _where(p: Profile, device: str) -> tuple[str, int]:
    g = _gpu(p, device)
    if g is None:
        kind = device.partition(":")[0]
        where = "RAM" if kind == "cpu" else f"RAM (the memory of {kind} is not measured; planned as RAM)"
        return where, p.ram_available_bytes
    return f"GPU memory on {device} ({g.name})", g.free_bytes


# ---------------------------------------------------------------------------- the plan
@attrs.frozen
class Announcement:
    """The words said before a plan below the file's best fidelity starts: names the mode and
    says plainly that it is lossy."""

    mode: str
    sentence: str = attrs.field()

    @sentence.validator
    def _says_lossy(self, _a: Any, value: str) -> None:
        if "lossy" not in value or self.mode not in value:
            raise UnannouncedDowngradeError(f"an announcement must name the mode and say 'lossy': {value!r}")


def _check_announced(plan: Plan, _a: Any, value: Announcement | None) -> None:
    if plan.fidelity != plan.best_fidelity and (value is None or value.mode != plan.mode):
        raise UnannouncedDowngradeError(
            f"a {plan.fidelity} plan ({plan.mode}) below the file's {plan.best_fidelity} fidelity "
            "must carry an announcement")


@attrs.frozen
class Plan:
    """What would run, where, how faithfully, and why. Built by :func:`plan` only in practice;
    a lossy plan without an :class:`Announcement` cannot be built at all."""

    src: str
    requested: str
    mode: str
    device: str
    fidelity: str
    best_fidelity: str
    costs: tuple[ModeCost, ...]
    budget_bytes: int
    sentence: str
    announcement: Announcement | None = attrs.field(validator=_check_announced)

    @property
    def lossy(self) -> bool:
        return self.fidelity == "lossy"

    def cost(self, mode: str | None = None) -> ModeCost:
        return next(c for c in self.costs if c.mode == (mode or self.mode))

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self, recurse=False)
        d["costs"] = {c.mode: c.to_json() for c in self.costs}
        d["lossy"] = self.lossy
        d["announcement"] = self.announcement.sentence if self.announcement else None
        return d


def _allowed(requested: str) -> tuple[str, ...]:
    """Modes a request may run as, in order of preference."""
    return {"auto": MODES, "perfect": ("perfect", "stream"), "stream": ("stream",),
            "fast": ("fast",)}[requested]


def plan(s: FileSummary, p: Profile, requested: str = "auto", device: str = "cpu") -> Plan:
    """The highest-fidelity mode the request allows that fits; :class:`DoesNotFitError` when
    none does (an explicit ``perfect`` never becomes lossy), :class:`PlanError` when the request
    cannot be served at all (``fast`` on a file with nothing to quantize)."""
    if requested not in REQUESTS:
        raise PlanError(f"mode {requested!r}: choose one of {', '.join(REQUESTS)}")
    table = costs(s, p, device)
    by = {c.mode: c for c in table}
    where, budget = _where(p, device)
    if requested == "fast" and not by["fast"].available:
        raise PlanError(f"{s.path}: no fast mode: no 2-D float weight of {FAST_MIN_ELEMENTS} "
                        "elements or more to code in INT4; use --mode perfect or stream")
    if requested == "stream" and not by["stream"].available:
        raise PlanError(f"{s.path}: a .bsd is not streamed: --mode perfect loads its exact member "
                        "whole, --mode fast its LOSSY fast member")
    chosen = next((m for m in _allowed(requested) if by[m].fits), None)
    if chosen is None:
        tried = "; ".join(f"{m} needs {_need(by[m])}" for m in _allowed(requested) if by[m].available)
        hint = "" if requested == "auto" or "fast" in _allowed(requested) else (
            " (--mode fast would be lossy: it is never chosen for you)")
        raise DoesNotFitError(f"{s.path}: nothing fits on {device} with {_gb(budget)} {where} free: "
                              f"{tried}{hint}")
    c = by[chosen]
    sentence = _sentence(s, p, requested, c, by, device, where, budget)
    ann = None
    if FIDELITY[chosen] != s.best_fidelity:
        ann = Announcement(chosen, f"{chosen} mode: lossy INT4 (group {GROUP}, "
                                   f"{'stored fast member' if s.fast_source == 'member' else 'quantized while loading'}"
                                   "): outputs approximate the exact model's, they are not its bits")
    return Plan(s.path, requested, chosen, device, c.fidelity, s.best_fidelity, table, budget,
                sentence, ann)


def _need(c: ModeCost) -> str:
    return _gb(c.host_bytes) + (f" host + {_gb(c.device_bytes)} GPU" if c.device_bytes else "")


def _sentence(s: FileSummary, p: Profile, requested: str, c: ModeCost, by: dict[str, ModeCost],
              device: str, where: str, budget: int) -> str:
    what = {"perfect": "perfect: bit-exact, every tensor loaded at once",
            "stream": "stream: bit-exact, one layer at a time (+ the next, prefetched)",
            "fast": "fast: LOSSY INT4, dequantized one module at a time"}[c.mode]
    head = f"{s.path}: {what} on {device}, needs {_need(c)} ({c.math})"
    free = f"{_gb(budget)} {where} free"
    if c.mode == "perfect":
        why = f"fits in {free}" + (" (asked for)" if requested == "perfect" else "")
    elif c.mode == "stream" and requested == "stream":
        why = f"asked for; fits in {free}"
    elif c.mode == "stream":
        why = f"a full load needs {_need(by['perfect'])}, more than the {free}"
    elif requested == "fast":
        why = f"asked for; fits in {free}"
    elif not by["stream"].available:  # a .bsd: no streaming between exact and lossy
        why = f"a full load needs {_need(by['perfect'])}, more than the {free} (a .bsd is not streamed)"
    else:
        why = (f"neither a full load ({_need(by['perfect'])}) nor streaming "
               f"({_need(by['stream'])}) fits in {free}")
    return f"{head}; {why}."


# ---------------------------------------------------------------------------- the receipt
@attrs.frozen
class Announced:
    """Proof that a plan was emitted, announcement first. Made by :func:`announce` only: its
    ``seal`` must be the module's private token, so a receipt cannot be built by accident."""

    plan: Plan
    lines: tuple[str, ...]
    seal: object = attrs.field(repr=False, eq=False)


_SEAL = object()


def announce(p: Plan, say: Callable[[str], None]) -> Announced:
    """Emit the plan: the announcement (if any) first, then the sentence; returns the receipt
    the executor requires. ``say`` writes one line where the user sees it."""
    lines = ([p.announcement.sentence] if p.announcement else []) + [p.sentence]
    for line in lines:
        say(line)
    return Announced(p, tuple(lines), _SEAL)


def require_announced(p: Plan, receipt: Announced | None) -> None:
    """The executor's gate: raise unless ``receipt`` proves ``p``'s announcement was emitted.
    Called before any weight is loaded."""
    if receipt is None or receipt.seal is not _SEAL or receipt.plan is not p:
        if p.lossy:
            raise UnannouncedDowngradeError(
                f"{p.src}: refusing to start the lossy {p.mode} plan: its announcement was not "
                "emitted first (pass the plan through announce())")
        return
    if p.announcement is not None and p.announcement.sentence not in receipt.lines:
        raise UnannouncedDowngradeError(f"{p.src}: the {p.mode} plan's announcement was not emitted")
