"""The autopilot's rules over generated machines x files x requests.

* every plan below the file's best fidelity carries an announcement that names its mode and
  says "lossy", and it is emitted before any weight is loaded (an executor stub records the order);
* an executor refuses a lossy plan without the receipt of its announcement (or with a forged
  one), and a lossy plan without an announcement cannot even be built;
* an explicit ``perfect`` is never lossy (it loads, streams, or fails with ``DoesNotFitError``);
* ``auto`` never picks lossy when an exact mode fits, never streams when a full load fits, and
  more free memory never lowers its fidelity.

Files are index summaries: generated tensor lists (through ``summarize``, as the CLI builds them),
``.bsd`` summaries with a stored fast member, and the real corpus models' indexes (MiniLM and
Whisper ``.bs``, MiniLM's ``.bsd`` folder, whose runner is checked to refuse an unannounced lossy
plan before it opens the folder). A ``.bsd`` is never planned as ``stream``.
"""

from __future__ import annotations

import math
import types
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigsmall.core.dtypes import DTYPES
from bigsmall.core.types import TensorSpec
from bigsmall.errors import DoesNotFitError, PlanError, UnannouncedDowngradeError
from bigsmall.plan import autopilot as ap
from bigsmall.plan.planner import chunk_units_for

RANK = {"perfect": 0, "stream": 1, "fast": 2}
MB = 1 << 20


@st.composite
def tensors(draw: st.DrawFn) -> list[types.SimpleNamespace]:
    """A model's index: non-layer tensors and layers of float matrices, norms and buffers."""
    out = []
    n_layers = draw(st.integers(0, 6))
    dtype = draw(st.sampled_from(["F32", "F16", "BF16", "BF16", "I64"]))
    scale = draw(st.sampled_from([1, 64, 4096]))  # tiny models up to multi-GB ones

    def add(name: str, shape: tuple[int, ...], layer: int | None, dt: str = dtype) -> None:
        nbytes = math.prod(shape) * DTYPES[dt].bits // 8
        spec = TensorSpec(name, dt, shape, 0, nbytes)
        # the index's params as compress writes them (the stream estimate reads "chunk")
        params = {"chunk": chunk_units_for(spec)}
        out.append(types.SimpleNamespace(spec=spec, layer=layer, name=name, params=params))

    add(draw(st.sampled_from(["embed.weight", "model.embed_tokens.weight"])), (draw(st.integers(1, 3000)) * scale, draw(st.integers(1, 64)) * 16), None)
    if draw(st.booleans()):
        add("norm.weight", (draw(st.integers(1, 4096)),), None)
    for i in range(n_layers):
        cols = draw(st.integers(1, 64)) * 16
        add(f"model.layers.{i}.proj.weight", (draw(st.integers(1, 3000)) * scale, cols), i)
        add(f"model.layers.{i}.norm.weight", (cols,), i, "F32")
    return out


@st.composite
def summaries(draw: st.DrawFn) -> ap.FileSummary:
    entries = draw(tensors())
    if draw(st.booleans()):
        s = ap.summarize("model.bs", entries)
        return s
    member = draw(st.one_of(st.none(), st.integers(0, 1 << 36)))
    return ap.summarize("model.bsd", entries, kind="bsd", fast_member_bytes=member)


@st.composite
def profiles(draw: st.DrawFn) -> ap.Profile:
    total = draw(st.integers(256 * MB, 1 << 40))
    gpus = tuple(ap.Gpu(i, f"gpu{i}", t, draw(st.integers(0, t)))
                 for i, t in enumerate(draw(st.lists(st.integers(0, 1 << 37), max_size=2))))
    return ap.Profile(draw(st.integers(1, 128)), total, draw(st.integers(0, total)), gpus)


requests = st.sampled_from(ap.REQUESTS)
devices = st.sampled_from(["cpu", "cuda", "cuda:1", "mps"])


@st.composite
def machines(draw: st.DrawFn, s: ap.FileSummary, device: str) -> ap.Profile:
    """A profile whose free memory lies near one of the file's mode thresholds (where the
    choice changes), or anywhere."""
    idx = int(device.partition(":")[2] or 0)
    gpu = device.startswith("cuda")
    roomy = ap.Profile(8, 1 << 50, 1 << 50, tuple(ap.Gpu(i, "g", 1 << 50, 1 << 50) for i in range(idx + 1)))
    table = ap.costs(s, roomy, device)
    need = [c.device_bytes if gpu else c.host_bytes for c in table]
    near = st.sampled_from(need).flatmap(lambda n: st.integers(max(0, n - 2 * MB), n + 2 * MB))
    free = draw(st.one_of(near, st.integers(0, 1 << 40)))
    if not gpu:
        return ap.Profile(draw(st.integers(1, 128)), free + draw(st.integers(0, 1 << 40)), free)
    host = max(c.host_bytes for c in table) + draw(st.integers(0, 1 << 30))
    host = draw(st.sampled_from([host, draw(st.integers(0, host))]))
    return ap.Profile(4, host, host, tuple(ap.Gpu(i, f"gpu{i}", 1 << 40, free) for i in range(idx + 1)))


@st.composite
def cases(draw: st.DrawFn) -> tuple[ap.FileSummary, ap.Profile, str, str]:
    s = draw(summaries())
    dev = draw(devices)
    return s, draw(st.one_of(machines(s, dev), profiles())), draw(requests), dev


def _plan(s: ap.FileSummary, p: ap.Profile, req: str, dev: str) -> ap.Plan | None:
    try:
        return ap.plan(s, p, req, dev)
    except DoesNotFitError as exc:
        assert "nothing fits" in str(exc)
        return None
    except PlanError:
        return None


def _execute(plan: ap.Plan, receipt: ap.Announced | None, events: list[str]) -> None:
    """An executor stub: the gate, then 'loading' (what the runner does in this order)."""
    ap.require_announced(plan, receipt)
    events.append("load weights")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_every_downgrade_is_announced_before_any_weight_is_loaded(
        case: tuple[ap.FileSummary, ap.Profile, str, str]) -> None:
    s, p, req, dev = case
    plan = _plan(s, p, req, dev)
    if plan is None:
        return
    assert plan.cost().fits and plan.cost().available
    events: list[str] = []
    receipt = ap.announce(plan, events.append)
    _execute(plan, receipt, events)
    if plan.fidelity != s.best_fidelity:
        ann = plan.announcement
        assert ann is not None and ann.mode == plan.mode == "fast"
        assert "lossy" in ann.sentence and "LOSSY" in plan.sentence
        assert events.index(ann.sentence) < events.index("load weights")
        assert plan.to_json()["announcement"] == ann.sentence and plan.to_json()["lossy"]
        # without the receipt, or with a forged one, or another plan's: refused, nothing loaded
        for bad in (None, ap.Announced(plan, (ann.sentence,), object()),
                    ap.announce(attrs.evolve(plan, sentence="another"), lambda _line: None)):
            loaded: list[str] = []
            with pytest.raises(UnannouncedDowngradeError):
                _execute(plan, bad, loaded)
            assert loaded == []
        with pytest.raises(UnannouncedDowngradeError):  # no lossy plan without its announcement
            attrs.evolve(plan, announcement=None)
    else:
        assert plan.announcement is None and events == [plan.sentence, "load weights"]


@settings(max_examples=400, deadline=None)
@given(cases())
def test_explicit_perfect_is_never_lossy(case: tuple[ap.FileSummary, ap.Profile, str, str]) -> None:
    s, p, _req, dev = case
    try:
        plan = ap.plan(s, p, "perfect", dev)
    except DoesNotFitError as exc:
        assert "never chosen for you" in str(exc)  # the lossy way out is named, not taken
        by = {c.mode: c for c in ap.costs(s, p, dev)}
        assert not by["perfect"].fits and not by["stream"].fits
        return
    except PlanError:
        return
    assert plan.mode in ("perfect", "stream") and not plan.lossy and plan.announcement is None


@settings(max_examples=400, deadline=None)
@given(cases())
def test_auto_takes_the_highest_fidelity_that_fits(case: tuple[ap.FileSummary, ap.Profile, str, str]) -> None:
    s, p, _req, dev = case
    try:
        by = {c.mode: c for c in ap.costs(s, p, dev)}
    except PlanError:
        return
    plan = _plan(s, p, "auto", dev)
    if plan is None:
        assert not any(c.fits for c in by.values())
        return
    first = next(m for m in ap.MODES if by[m].fits)
    assert plan.mode == first
    if by["perfect"].fits or by["stream"].fits:
        assert not plan.lossy


@settings(max_examples=300, deadline=None)
@given(cases(), st.integers(0, 1 << 40))
def test_more_free_memory_never_lowers_fidelity(case: tuple[ap.FileSummary, ap.Profile, str, str],
                                                more: int) -> None:
    s, p, _req, _dev = case
    richer = attrs.evolve(p, ram_total_bytes=p.ram_total_bytes + more,
                          ram_available_bytes=p.ram_available_bytes + more)
    a, b = _plan(s, p, "auto", "cpu"), _plan(s, richer, "auto", "cpu")
    if a is not None:
        assert b is not None and RANK[b.mode] <= RANK[a.mode]


@settings(max_examples=200, deadline=None)
@given(profiles(), requests)
def test_real_indexes(p: ap.Profile, req: str) -> None:
    """The corpus models' own index summaries (read once; the .bs files of tests/conftest)."""
    for s in _corpus_summaries():
        plan = _plan(s, p, req, "cpu")
        if plan is not None:
            assert (plan.announcement is not None) == plan.lossy
            if req == "perfect":
                assert not plan.lossy


@settings(max_examples=400, deadline=None)
@given(cases())
def test_a_bsd_is_never_streamed(case: tuple[ap.FileSummary, ap.Profile, str, str]) -> None:
    """A ``.bsd`` (file or folder) runs whole or from its fast member: ``auto`` is perfect when
    the full load fits, else fast (announced) when that fits; ``stream`` is refused by name."""
    s, p, req, dev = case
    s = attrs.evolve(s, kind="bsd", path="model.bsd", fast_source="member")
    try:
        by = {c.mode: c for c in ap.costs(s, p, dev)}
    except PlanError:
        return
    assert not by["stream"].available and not by["stream"].fits
    if req == "stream":
        with pytest.raises(PlanError, match="a .bsd is not streamed"):
            ap.plan(s, p, req, dev)
        return
    plan = _plan(s, p, req, dev)
    if plan is None:
        return
    assert plan.mode != "stream"
    if req == "auto":
        assert plan.mode == ("perfect" if by["perfect"].fits else "fast")
    assert plan.lossy == (plan.mode == "fast") == (plan.announcement is not None)


@settings(max_examples=60, deadline=None)
@given(profiles(), requests)
def test_a_bsd_folder_runs_nothing_unannounced(p: ap.Profile, req: str) -> None:
    """The real ``.bsd`` folder of MiniLM: a lossy plan handed to its runner without the receipt
    of its announcement is refused before the folder is opened or a weight chunk read."""
    pytest.importorskip("torch")
    from bigsmall.io import dual, dual_folder
    from bigsmall.torch.dual_run import run_dual

    s = _corpus_summaries()[-1]
    assert s.kind == "bsd" and s.fast_source == "member"
    plan = _plan(s, p, req, "cpu")
    if plan is None or not plan.lossy:
        return
    touched: list[str] = []
    real_open, real_chunk = dual_folder.DualFolder.__init__, dual.DualFile._chunk
    dual_folder.DualFolder.__init__ = lambda self, *a: (touched.append("open"), real_open(self, *a))[1]
    dual.DualFile._chunk = lambda self, *a: (touched.append("chunk"), real_chunk(self, *a))[1]
    try:
        for bad in (None, ap.Announced(plan, tuple(filter(None, [plan.announcement.sentence])), object())):
            with pytest.raises(UnannouncedDowngradeError):
                run_dual(s.path, plan, bad)
    finally:
        dual_folder.DualFolder.__init__, dual.DualFile._chunk = real_open, real_chunk
    assert touched == []


_CACHE: list[ap.FileSummary] = []


def _corpus_summaries() -> list[ap.FileSummary]:
    if not _CACHE:
        import bigsmall
        from bigsmall.io.reader import BsFile
        from bigsmall.testing import corpus

        out = Path(corpus.default_cache_dir()) / "autopilot"
        out.mkdir(parents=True, exist_ok=True)
        for name, folder in (("minilm.bs", corpus.minilm_dir()),
                             ("whisper.bs", corpus.whisper_tiny_hf_dir(corpus.default_cache_dir()))):
            bs = out / name
            if not bs.exists():
                bigsmall.compress(folder, bs)
            with BsFile(bs) as f:
                _CACHE.append(ap.summarize(str(bs), f.container.tensors))
        assert _CACHE[0].exact_bytes == 90_856_960 and _CACHE[0].fast_source == "on-the-fly"
        from bigsmall.io import dual_folder  # the same MiniLM folder as a .bsd folder (last)

        bsd = out / "minilm.bsd"
        if not bsd.exists():
            dual_folder.create_folder(corpus.minilm_dir(), bsd)
        _CACHE.append(dual_folder.DualFolder(bsd).summary())
        assert _CACHE[-1].exact_bytes == 90_856_960 and _CACHE[-1].fast_source == "member"
    return _CACHE


SPECIALS = [-0.0, 0.0, 5.96e-8, -6.1e-5, 1e-40, -1e-45, 65504.0, -6e4, float("nan"), float("inf"),
            float("-inf")]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["F32", "F16", "BF16"]), st.integers(1, 6), st.integers(1, 300), st.data())
def test_int4_code_of_arbitrary_values(dtype: str, rows: int, cols: int, data: st.DataObject) -> None:
    """Weights at any scale with NaNs, infinities, -0, subnormals and extremes sprinkled in, or
    plain arbitrary bit patterns: the code is either refused (the tensor stays exact) or within
    half a step of every value, with the tensor's shape and dtype."""
    torch = pytest.importorskip("torch")
    import numpy as np

    from bigsmall.torch.fast import dequantize, quantize
    from bigsmall.torch.load import torch_dtype

    bits = DTYPES[dtype].bits
    if data.draw(st.booleans()):
        raw = data.draw(st.binary(min_size=rows * cols * bits // 8, max_size=rows * cols * bits // 8))
        u = np.frombuffer(raw, dtype=np.uint32 if bits == 32 else np.uint16).copy()
        w = torch.from_numpy(u.view(np.int32 if bits == 32 else np.int16)).view(torch_dtype(dtype))
        w = w.reshape(rows, cols)
    else:
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        scale = data.draw(st.sampled_from([1e-30, 1e-6, 0.02, 1.0, 300.0, 2e4]))
        x = rng.normal(0, scale, (rows, cols))
        for _ in range(data.draw(st.integers(0, 4))):
            x[data.draw(st.integers(0, rows - 1)), data.draw(st.integers(0, cols - 1))] = (
                data.draw(st.sampled_from(SPECIALS)))
        w = torch.from_numpy(x).to(torch_dtype(dtype))
    code = quantize(w)
    x = w.float()
    if code is None:
        assert not bool(torch.isfinite(x).all()) or float(x.abs().max()) > 6e4
        return
    assert bool(torch.isfinite(x).all()) and code.nbytes == ap.int4_bytes((rows, cols))
    d = dequantize(code)
    assert d.dtype == w.dtype and d.shape == w.shape
    step = code.scale.float().repeat_interleave(ap.GROUP, dim=1)[:, :cols]
    lo = code.minimum.float().repeat_interleave(ap.GROUP, dim=1)[:, :cols]
    # half a step, + the fp16 rounding of the scale (times up to 15 steps: the clamp at the top)
    # and of the minimum, each at least half fp16's smallest subnormal (2**-25), + the model
    # dtype's rounding of the result
    tol = step / 2 + 16 * (step * 2**-11 + 2**-25) + lo.abs() * 2**-11 + x.abs() * 2**-7 + 1e-12
    assert bool(((d.float() - x).abs() <= tol).all()), float(((d.float() - x).abs() - tol).max())
