"""The streaming executor: a transformers model's forward pass with one layer's weights resident.

How: the model is an empty skeleton (parameters on ``meta``, see :mod:`.skeleton`); the
non-layer tensors (embeddings, final norm, head) are assigned once; every transformer block gets
a forward pre-hook that assigns its decoded tensors just before it runs and a forward hook that
puts it back on ``meta`` right after. While block L computes, block L+1 is decoded on a
background thread, so the decode hides behind the compute. Since the parameters are the very
stored tensors and the operations are those of the fully loaded model, the outputs are
bit-identical to a full load (the tests compare sha256 of the outputs).

The memory promise, made before anything is decoded, from the index alone: weights resident
never exceed non-layer bytes + 2 x the largest layer (the one computing and the one being
prefetched). ``StreamingModel.report()`` gives the measured peak next to it.

With ``max_resident_bytes`` (a budget) the blocks that ran are kept, decoded, in an LRU cache
as long as non-layer bytes + row caches + the cache + 2 x the largest layer (the working pair:
one computing, one prefetched) fit the budget; a repeated pass (generation token by token,
another batch) then reuses them instead of decoding again. The promise becomes the budget (or
less, when the whole model fits in it).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs

from ..errors import FormatError, InvalidOptionError
from ..io.reader import BsFile
from ..io.remote import is_remote
from ..plan.rowgroups import HEAD_READ_MIN_BYTES, ROW_READ_MIN_BYTES, head_held_bytes
from . import rows
from .load import torch_dtype
from .pretrained import tie_and_check
from .rows import DEFAULT_CACHE_BYTES, RowStore
from .skeleton import (
    assign,
    checkpoint_dtype,
    empty_model,
    model_files,
    name_map,
    read_config,
    release,
    transformers_module,
)
from .streaming import StreamingLoader

#: an embedding table this big is read by row instead of loaded (MiniLM's 47 MB table is)
ROWS_MIN = ROW_READ_MIN_BYTES
#: a table tied to the output projection this big is streamed in row blocks by the head too
#: (a 262144 x 768 bf16 table of 384 MiB is; Whisper tiny's 40 MB one stays resident)
HEAD_ROWS_MIN = HEAD_READ_MIN_BYTES


@attrs.frozen
class StreamReport:
    """What one streaming run promised and what it measured (bytes and seconds)."""

    promise_weight_bytes: int
    peak_weight_bytes: int
    peak_layers: int
    non_layer_bytes: int
    largest_layer_bytes: int
    layers: int
    passes: int
    layer_loads: int
    decode_seconds: float
    wait_seconds: float
    row_tables: int = 0  # embedding tables read by row (``rows.py``), not resident
    row_coded_bytes: int = 0  # their coded bytes in the file
    row_decoded_coded_bytes: int = 0  # coded bytes of the chunks their lookups decoded
    row_lookup_seconds: float = 0.0  # time their lookups took (decoding rows, gathering)
    row_heads: int = 0  # tied output projections computed from those tables in row blocks
    row_head_passes: int = 0  # whole-table passes they made (one per forward)
    budget_bytes: int | None = None  # ``max_resident_bytes``, if one was given
    cache_hits: int = 0  # layers a pass took from the budget's LRU cache (no decode)
    cache_evictions: int = 0  # layers the LRU dropped to stay within the budget
    peak_cached_bytes: int = 0  # most decoded bytes the cache held at once

    @property
    def overlap(self) -> float:
        """Fraction of decode time hidden behind compute (1.0: the caller never waited)."""
        if self.decode_seconds <= 0:
            return 1.0
        return max(0.0, 1.0 - self.wait_seconds / self.decode_seconds)

    def as_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["overlap"] = round(self.overlap, 4)
        return d


class _LayerFeed:
    """Hands out decoded layers in the order the model asks for them, one prefetched ahead.

    The guess for the next layer is L+1, or at the end of a pass the first layer of the last pass
    (a generation loop runs the decoder blocks again). A wrong guess costs a synchronous decode,
    never a wrong result: tensors are looked up by layer number.
    """

    def __init__(self, loader: StreamingLoader, cached: Callable[[int], bool] = lambda k: False):
        self.loader = loader
        self.cached = cached  # layers the budget's cache holds: never prefetched
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="bigsmall-stream")
        self.pending: tuple[int, Future[dict[str, Any]]] | None = None
        self.lock = threading.Lock()
        self.decode_seconds = 0.0
        self.wait_seconds = 0.0
        self.loads = 0
        self.first_of_pass: int | None = None
        self.pass_first_seen: int | None = None

    def _decode(self, k: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        tensors = self.loader.load_layer(k)
        with self.lock:
            self.decode_seconds += time.perf_counter() - t0
            self.loads += 1
        return tensors

    def prefetch(self, k: int | None) -> None:
        if k is None or k >= self.loader.layer_count() or self.pending is not None or self.cached(k):
            return
        self.pending = (k, self.pool.submit(self._decode, k))

    def _drop_pending(self) -> None:
        if self.pending is not None:
            fut = self.pending[1]
            self.pending = None
            if not fut.cancel():
                try:
                    fut.result()  # let it finish; its tensors die here
                except Exception:  # noqa: BLE001 - a wrong guess's failure is not this call's
                    pass

    def take(self, k: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        if self.pending is not None and self.pending[0] == k:
            fut = self.pending[1]
            self.pending = None
            tensors = fut.result()
            del fut
        else:
            self._drop_pending()
            tensors = self._decode(k)
        self.wait_seconds += time.perf_counter() - t0
        if self.pass_first_seen is None:
            self.pass_first_seen = k
        nxt: int | None = k + 1
        if k + 1 >= self.loader.layer_count():
            nxt = self.first_of_pass
        self.prefetch(nxt)
        return tensors

    def start_pass(self) -> None:
        self.pass_first_seen = None
        self.prefetch(self.first_of_pass if self.first_of_pass is not None else 0)

    def end_pass(self) -> None:
        if self.pass_first_seen is not None:
            self.first_of_pass = self.pass_first_seen

    def close(self) -> None:
        self._drop_pending()
        self.pool.shutdown(wait=True)


class StreamingModel:
    """A transformers model whose blocks are decoded from ``src`` as the forward pass reaches them.

    >>> with StreamingModel("minilm.bs") as sm:
    ...     print(sm.promise_bytes())
    ...     out = sm(input_ids=ids)          # same bits as the fully loaded model's output
    ...     print(sm.report().peak_weight_bytes)

    Use it for inference: ``__call__`` runs under ``torch.no_grad``. ``model`` is the skeleton
    (blocks on ``meta`` between passes); ``generate`` works through ``sm.model.generate`` since the
    hooks sit on the modules.
    """

    def __init__(self, src: str | os.PathLike[str], model_class: Any = None, device: str | Any = "cpu",
                 threads: int | None = None, on_layer: Any = None, before_weights: Any = None,
                 row_access: bool = True, max_resident_bytes: int | None = None, base: Any = None,
                 **config_overrides: Any):
        """``on_layer(i)`` is called after block ``i`` has run (a progress bar's hook);
        ``before_weights(self)`` once the skeleton exists and before any tensor is decoded (where
        a caller measures its runtime baseline and announces the promise). ``row_access``: an
        untied embedding table of ``ROWS_MIN`` bytes or more is not loaded; lookups decode the
        rows they need (``rows.py``). ``max_resident_bytes``: keep decoded blocks in an LRU cache
        within this many bytes of weights (see the module docstring); below the two-layer
        promise it is an ``InvalidOptionError``. On a GPU it counts device memory (the blocks
        are decoded onto ``device``). ``base``: the base model of a patch (docs/delta.md):
        its tables coded against the base stay resident (rows are read from whole tensors)."""
        transformers_module()
        # a URL / hf:// path is read by range requests: the index once, then each layer's
        # blobs as the forward pass reaches them (a layer computes before the file has arrived)
        self.src: Any = src if is_remote(src) else Path(src)
        with BsFile(self.src) as bs:  # the index only: which member files hold the transformer
            files = model_files(bs)
        self.loader = StreamingLoader(self.src, device=device, threads=threads, files=files, base=base)
        self._handles: list[Any] = []
        self._current: dict[int, dict[str, Any]] = {}
        self._budget = max_resident_bytes
        self._cache: OrderedDict[int, dict[str, Any]] = OrderedDict()  # LRU: oldest first
        self._cached_bytes = 0
        self._last_use: dict[int, int] = {}  # block -> the pass (count) it last ran in
        self._peak_cached = 0
        self._hits = 0
        self._evictions = 0
        self._passes = 0
        self._on_layer = on_layer
        self._rows: list[tuple[Any, RowStore]] = []
        self._heads = 0  # tied output projections streamed in row blocks
        try:
            bs = self.loader._bs
            config = read_config(bs, self.src)
            for key, value in config_overrides.items():
                setattr(config, key, value)
            dtype = checkpoint_dtype(t.spec.dtype for t in bs.container.tensors if t in self.loader._key)
            self.model = empty_model(config, model_class, dtype)
            self._layer_modules = self._find_layer_modules()
            row_entries = self._row_tables() if row_access and self.loader.device.type == "cpu" else []
            if before_weights is not None:
                before_weights(self)
            for module, entry, head in row_entries:
                self._rows.append((module, self._open_rows(module, entry, head)))
                self._heads += head is not None
            self._resident = self.loader.load_non_layer_tensors()
            assign(self.model, self._resident, name_map(self.model, self._resident))
            self._check_complete()
            self._move_buffers(self.loader.device)
            self._check_budget()
            self._feed = _LayerFeed(self.loader, lambda k: k in self._cache)
            self._install_hooks()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _find_layer_modules(self) -> list[tuple[Any, dict[str, str]]]:
        """For each stored layer: its module in the model and {stored name: name in module}."""
        out = []
        for i in range(self.loader.layer_count()):
            names = self.loader.layer_names(i)
            mapping = name_map(self.model, names)
            if len(mapping) != len(names):
                lost = next(n for n in names if n not in mapping)
                raise FormatError(f"{self.src}: stored tensor {lost!r} has no place in "
                                  f"{type(self.model).__name__}; pass the matching model_class")
            targets = list(mapping.values())
            prefix = os.path.commonprefix([t.rsplit(".", 1)[0] + "." for t in targets])
            prefix = prefix[: prefix.rfind(".")] if "." in prefix else ""
            module = self.model.get_submodule(prefix) if prefix else self.model
            rel = {s: t[len(prefix) + 1:] if prefix else t for s, t in mapping.items()}
            out.append((module, rel))
        seen: set[int] = set()
        for module, _ in out:
            if id(module) in seen or module is self.model:
                raise FormatError(f"{self.src}: layers do not map to distinct blocks of "
                                  f"{type(self.model).__name__}; streaming needs one module per layer")
            seen.add(id(module))
        return out

    def _row_tables(self) -> list[tuple[Any, Any, Any]]:
        """Embedding tables to read by row: ``(embedding, entry, tied head or None)`` for an
        ``nn.Embedding``'s weight of ``ROWS_MIN`` bytes or more, stored as a non-layer tensor,
        without ``max_norm`` (it rewrites rows). A table tied to the output projection (an
        ``nn.Linear`` head) qualifies from ``HEAD_ROWS_MIN``: the head then streams the table in
        row blocks every forward (``RowStore.linear``); below that it stays resident, since
        decoding the whole table each step (each generated token) costs more than it saves."""
        import torch

        tied = (getattr(self.model.config, "tie_word_embeddings", False)
                and self.model.get_output_embeddings() is not None)
        tied_to = self.model.get_input_embeddings() if tied else None
        head = self.model.get_output_embeddings() if tied else None
        keys = self.loader.non_layer_names()
        found = []
        for key, target in name_map(self.model, keys).items():
            path, _, attr = target.rpartition(".")
            module = self.model.get_submodule(path) if path else self.model
            entry = self.loader.entry(key)
            if not (isinstance(module, torch.nn.Embedding) and attr == "weight" and module.max_norm is None
                    and entry.spec.nbytes >= ROWS_MIN and self.loader.by_row(entry)
                    and len(entry.spec.shape) == 2 and entry.spec.info.itemsize > 0):
                continue
            if module is not tied_to:
                found.append((key, module, entry, None))
            elif (entry.spec.nbytes >= HEAD_ROWS_MIN and isinstance(head, torch.nn.Linear)
                  and head.weight.shape == module.weight.shape):  # tied once the check ties it
                found.append((key, module, entry, head))
        held = [DEFAULT_CACHE_BYTES + (0 if h is None else head_held_bytes(e.spec, e.params, rows.HEAD_BLOCK_BYTES))
                for _, _, e, h in found]
        self.loader.take_out([k for k, _, _, _ in found], sum(held))
        return [(m, e, h) for _, m, e, h in found]

    def _open_rows(self, module: Any, entry: Any, head: Any) -> RowStore:
        """The table's store (its receipt checked once), the module's lookup and, for a tied
        table, the head's product streamed in row blocks (its bias read when it runs)."""
        store = RowStore(self.loader._bs, entry)
        dtype = torch_dtype(entry.spec.dtype)
        module.forward = lambda ids: store.lookup(ids, dtype)
        if head is not None:
            head.forward = lambda x: store.linear(x, head.bias, dtype)
        return store

    def _check_complete(self) -> None:
        """Every parameter outside the streamed blocks must have been assigned now."""
        import torch

        hidden = [m for m, _ in self._layer_modules]
        tables = [m for m, _ in self._rows]
        saved = [(sub, dict(sub._parameters)) for m in hidden for sub in m.modules()]
        # a table's weight (and a tied head's) goes back to meta; a head's bias stays as tied
        saved += [(m, {"weight": m._parameters["weight"]}) for m in tables]
        if self._heads:
            head = self.model.get_output_embeddings()
            saved.append((head, {"weight": head._parameters["weight"]}))
        try:
            for module in hidden:  # hide the blocks' meta params from the check
                for sub in module.modules():
                    for attr in list(sub._parameters):
                        sub._parameters[attr] = None
            for module in tables:  # a row table's weight (a tied head's too): a stand-in, not
                w = module.weight  # None, so that ``tie_weights`` can tie it (no memory: strides 0)
                module.weight = torch.nn.Parameter(torch.empty_strided(
                    w.shape, (0,) * w.dim(), dtype=w.dtype), requires_grad=False)
            tie_and_check(self.model, self.src)
        finally:
            for module, params in saved:
                module._parameters.update(params)

    def _move_buffers(self, device: Any) -> None:
        """Buffers were built on the CPU (real, small); the weights arrive on ``device``."""
        for sub in self.model.modules():
            for attr, b in list(sub._buffers.items()):
                if b is not None and b.device != device:
                    sub._buffers[attr] = b.to(device)

    def _install_hooks(self) -> None:
        for i, (module, _) in enumerate(self._layer_modules):
            self._handles.append(module.register_forward_pre_hook(self._make_pre(i)))
            self._handles.append(module.register_forward_hook(self._make_post(i)))
        self._handles.append(self.model.register_forward_pre_hook(lambda *_: self._feed.start_pass()))
        self._handles.append(self.model.register_forward_hook(lambda *_: self._end_pass()))

    def _end_pass(self) -> None:
        self._feed.end_pass()
        self._passes += 1

    def _check_budget(self) -> None:
        if self._budget is not None and self._budget < self.loader.promise_bytes():
            raise InvalidOptionError(
                f"memory budget {self._budget / 1e6:.1f} MB is below what streaming needs: "
                f"{self.loader.promise_bytes() / 1e6:.1f} MB (non-layer + 2 x largest layer + row caches)")

    def _cache_room(self) -> int:
        """Bytes the LRU may hold: the budget less the two-layer promise (its working pair)."""
        return 0 if self._budget is None else self._budget - self.loader.promise_bytes()

    def _keep(self, i: int, tensors: dict[str, Any]) -> None:
        """Cache block ``i`` after it ran, evicting least recently used blocks that are stale
        (not run in this pass or the one before: an encoder once generation is under way).

        Why not plain LRU: passes repeat the blocks in the same cyclic order, and LRU then evicts
        exactly the block needed next, so a cache smaller than the model never hits. When the
        oldest block is still in use, the cache keeps its set and ``i`` is dropped instead (it is
        decoded again next pass); a fixed set of blocks then hits on every pass."""
        size = self.loader.layer_bytes(i)
        room = self._cache_room()
        if size > room:
            return
        while self._cached_bytes + size > room:
            oldest = next(iter(self._cache))
            if self._last_use.get(oldest, -1) >= self._passes - 1:
                return  # LRU order is use order: no block in the cache is stale
            k, old = self._cache.popitem(last=False)
            self._cached_bytes -= self.loader.layer_bytes(k)
            self._evictions += 1
            del old  # the cache held the last reference: the ledger sees it go here
        self._cache[i] = tensors
        self._cached_bytes += size
        self._peak_cached = max(self._peak_cached, self._cached_bytes)

    def _make_pre(self, i: int) -> Any:
        module, rel = self._layer_modules[i]

        def pre(*_: Any) -> None:
            self._last_use[i] = self._passes
            cached = self._cache.get(i)
            if cached is not None:
                self._cache.move_to_end(i)
                self._hits += 1
                tensors = cached
                self._feed.prefetch(i + 1)  # the next block may still need decoding
            else:
                tensors = self._feed.take(i)
            assign(module, tensors, rel)
            self._current[i] = tensors

        return pre

    def _make_post(self, i: int) -> Any:
        module, _ = self._layer_modules[i]

        def post(*_: Any) -> None:
            release(module)
            tensors = self._current.pop(i, None)  # last references: the ledger sees the layer go here
            if tensors is not None and self._budget is not None and i not in self._cache:
                self._keep(i, tensors)
            del tensors
            if self._on_layer is not None:
                self._on_layer(i)

        return post

    # ------------------------------------------------------------------ use
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return self.model(*args, **kwargs)

    def promise_bytes(self) -> int:
        """Weights resident at most: the two-layer promise, or with a budget the budget (capped
        at what the whole model needs: non-layer + every layer + row caches)."""
        base = self.loader.promise_bytes()
        if self._budget is None:
            return base
        everything = (self.loader.non_layer_bytes() + self.loader.row_access_bytes
                      + sum(self.loader.layer_bytes(i) for i in range(self.loader.layer_count())))
        return max(base, min(self._budget, everything))

    def largest_layer_bytes(self) -> int:
        return max((self.loader.layer_bytes(i) for i in range(self.loader.layer_count())), default=0)

    def report(self) -> StreamReport:
        feed = self._feed
        return StreamReport(
            promise_weight_bytes=self.promise_bytes(),
            peak_weight_bytes=self.loader.peak_resident_bytes,
            peak_layers=self.loader.peak_resident_layers,
            non_layer_bytes=self.loader.non_layer_bytes(),
            largest_layer_bytes=self.largest_layer_bytes(),
            layers=self.loader.layer_count(),
            passes=self._passes,
            layer_loads=feed.loads,
            decode_seconds=feed.decode_seconds,
            wait_seconds=feed.wait_seconds,
            row_tables=len(self._rows),
            row_coded_bytes=sum(s.coded_bytes for _, s in self._rows),
            row_decoded_coded_bytes=sum(s.decoded_coded_bytes for _, s in self._rows),
            row_lookup_seconds=sum(s.lookup_seconds for _, s in self._rows),
            row_heads=self._heads,
            row_head_passes=sum(s.head_passes for _, s in self._rows),
            budget_bytes=self._budget,
            cache_hits=self._hits,
            cache_evictions=self._evictions,
            peak_cached_bytes=self._peak_cached,
        )

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        feed = getattr(self, "_feed", None)
        if feed is not None:
            feed.close()
        self._current.clear()
        getattr(self, "_cache", {}).clear()
        self.loader.close()

    def __enter__(self) -> StreamingModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
