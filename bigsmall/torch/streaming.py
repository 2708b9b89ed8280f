"""Layer-by-layer loading of a ``.bs`` container into torch, at most two layers resident.

A container stores its tensors in blob order: the non-layer tensors first (embeddings, final
norm, head), then transformer block by block. ``StreamingLoader`` walks that order: while the
caller works on layer L, layer L+1 is decoded on one background thread; layer L+2 is not started
until the caller has let go of layer L (its tensors are garbage). So the loader's memory stays
within ``promise_bytes()`` = non-layer bytes + 2 x the largest layer, whatever the model size.

Decoding goes through the same path as ``bigsmall.load``: ``BsFile.iter_decoded`` straight into
the storage of fresh torch tensors, every tensor checked against its receipt.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import AsyncIterator, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..core.types import TensorEntry
from .load import _as_tensor, _torch, member_keys

_MAX_LIVE_LAYERS = 2
#: tensors this big (an embedding table) decode in pieces, so that their compressed blob is not
#: resident whole next to the decoded tensor (``BsFile.iter_pieces``)
_BIG_TENSOR = 32 << 20


def _mapped(nbytes: int) -> Any:
    """A writable buffer of its own anonymous mapping, unmapped when its last user is gone.

    Why not the allocator: glibc raises its mmap threshold after large frees, after which
    layer-sized blocks come from the heap and stay resident once freed, so a streamed run's RSS
    would creep towards every layer it decoded. A mapping per tensor goes back to the OS the
    moment the layer is dropped, without changing how the rest of the process allocates.
    """
    import mmap

    import numpy as np

    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=np.uint8)


class _Stopped(Exception):
    """The iteration was abandoned while a prefetch waited for its turn."""


class _Ledger:
    """Decoded bytes alive right now (reserved when a batch starts decoding, released when the
    last of its tensors is garbage), and how many of those batches are layers.

    Uses the RLock-backed ``threading.Condition``: a tensor finalizer may run on a thread that
    already holds the lock (whoever drops the last reference runs it).
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.live_bytes = 0
        self.live_layers = 0
        self.peak_bytes = 0
        self.peak_layers = 0

    def reserve(self, nbytes: int, layer: bool) -> None:
        with self.cond:
            self.live_bytes += nbytes
            self.live_layers += int(layer)
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            self.peak_layers = max(self.peak_layers, self.live_layers)

    def release(self, nbytes: int, layer: bool) -> None:
        with self.cond:
            self.live_bytes -= nbytes
            self.live_layers -= int(layer)
            self.cond.notify_all()

    def track(self, tensors: dict[str, Any], nbytes: int, layer: bool) -> None:
        """Release the reservation once every tensor in ``tensors`` has been collected."""
        remaining = [len(tensors)]
        lock = threading.Lock()

        def gone() -> None:
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                self.release(nbytes, layer)

        if not tensors:
            self.release(nbytes, layer)
            return
        for t in tensors.values():
            weakref.finalize(t, gone)


class StreamingLoader:
    """Stream a ``.bs`` container into torch one transformer layer at a time.

    >>> with StreamingLoader("model.bs", device="cuda") as sl:
    ...     model.load_state_dict(sl.load_non_layer_tensors(), strict=False)
    ...     for i, tensors in sl.iter_layers():
    ...         model.load_state_dict(tensors, strict=False)  # copy, then let ``tensors`` go

    Layers are numbered globally as in the container: stacks in order of first appearance
    (an encoder's blocks before a decoder's), blocks ascending within each.
    """

    def __init__(self, src: str | os.PathLike[str], device: str | Any = "cpu", threads: int | None = None,
                 files: Collection[str] | None = None, base: Any = None):
        """``files``: stream only the tensors of these member files (a sentence-transformers
        folder's transformer, not its Dense modules); default every file. ``base``: the base
        model of a patch (``compress(delta_from=...)``, docs/delta.md), checked on open."""
        from ..io.reader import BsFile

        torch = _torch()
        self.device = torch.device(device)
        self._pin = self.device.type == "cuda" and torch.cuda.is_available()
        self._bs = BsFile(src, threads=threads, base=base)
        try:
            self._bs.pool  # noqa: B018 - create the decode pool now, not racily from two threads
            # keys: tensor names, "file::name" where two of the files hold the same name
            self._key = member_keys(self._bs.container, files)
            tensors = [t for t in self._bs.container.tensors if t in self._key]
            self._non_layer: list[TensorEntry] = [t for t in tensors if t.layer is None]
            keys = [tuple(k) for k in self._bs.container.meta.get("layers", [])]
            count = max([len(keys)] + [t.layer + 1 for t in tensors if t.layer is not None])
            self._keys: list[tuple[str, int] | None] = [*keys, *[None] * (count - len(keys))]
            self._layers: list[list[TensorEntry]] = [[] for _ in range(count)]
            for t in tensors:
                if t.layer is not None:
                    self._layers[t.layer].append(t)
        except BaseException:
            self._bs.close()
            raise
        self._ledger = _Ledger()
        self.row_access_bytes = 0  # the row stores' cache budget (rows.py), counted in the promise

    # ------------------------------------------------------------------ basics
    def close(self) -> None:
        self._bs.close()

    def __enter__(self) -> StreamingLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def layer_count(self) -> int:
        return len(self._layers)

    def layer_names(self, i: int) -> list[str]:
        """Names of layer ``i``'s tensors, in blob order."""
        return [self._key[t] for t in self._layers[i]]

    def layer_key(self, i: int) -> tuple[str, int] | None:
        """(stack, block) of layer ``i``, e.g. ('model.decoder.layers', 3)."""
        return self._keys[i]

    def non_layer_names(self) -> list[str]:
        return [self._key[t] for t in self._non_layer]

    def layer_bytes(self, i: int) -> int:
        return sum(t.spec.nbytes for t in self._layers[i])

    def non_layer_bytes(self) -> int:
        return sum(t.spec.nbytes for t in self._non_layer)

    def entry(self, key: str) -> TensorEntry:
        """The index entry of a tensor this loader streams, by key."""
        return next(t for t, k in self._key.items() if k == key)

    def by_row(self, entry: TensorEntry) -> bool:
        """Whether ``rows.py`` can read this tensor by row: not a patch's tensor coded against
        its base (``delta``/``base``: decoded whole, from the base, by the reader)."""
        return self._bs._resolve(entry).codec not in ("delta", "base")

    def take_out(self, keys: Collection[str], cache_bytes: int) -> list[TensorEntry]:
        """Stop decoding these non-layer tensors (embedding tables read by row, ``rows.py``):
        ``load_non_layer_tensors`` leaves them out, and the promise counts ``cache_bytes`` (the
        row cache) instead of them."""
        out = [t for t in self._non_layer if self._key[t] in set(keys)]
        self._non_layer = [t for t in self._non_layer if t not in out]
        self.row_access_bytes += cache_bytes
        return out

    def promise_bytes(self) -> int:
        """The memory bound, from the index alone: non-layer bytes + 2 x the largest layer
        (+ the row caches of tables read by row)."""
        largest = max((self.layer_bytes(i) for i in range(self.layer_count())), default=0)
        return self.non_layer_bytes() + _MAX_LIVE_LAYERS * largest + self.row_access_bytes

    @property
    def peak_resident_bytes(self) -> int:
        """Most decoded bytes alive at once: tensors being decoded, prefetched, or handed out and
        not yet collected (non-layer tensors from ``load_non_layer_tensors`` included)."""
        return self._ledger.peak_bytes

    @property
    def peak_resident_layers(self) -> int:
        """Most layers alive at once (decoding, prefetched, or handed out and not yet collected)."""
        return self._ledger.peak_layers

    @property
    def resident_bytes(self) -> int:
        return self._ledger.live_bytes

    # ------------------------------------------------------------------ decoding
    def _decode(self, entries: list[TensorEntry], layer: bool) -> dict[str, Any]:
        """Decode ``entries`` into torch tensors (the ``bigsmall.load`` path), tracked by the ledger."""
        torch = _torch()
        nbytes = sum(t.spec.nbytes for t in entries)
        self._ledger.reserve(nbytes, layer)
        storage: dict[str, Any] = {}

        def alloc(entry: TensorEntry) -> Any:
            if self._pin or entry.spec.nbytes == 0:
                buf = torch.empty(entry.spec.nbytes, dtype=torch.uint8, pin_memory=self._pin)
            else:
                buf = torch.from_numpy(_mapped(entry.spec.nbytes))
            storage[self._key[entry]] = buf
            return buf.numpy()

        out: dict[str, Any] = {}
        small = [t for t in entries if t.spec.nbytes < _BIG_TENSOR]
        try:
            for entry, _ in self._bs.iter_decoded(small, alloc=alloc):
                key = self._key[entry]
                out[key] = _as_tensor(storage.pop(key), entry.spec, self.device, self._pin)
            for entry in entries:  # a big one in pieces: its coded bytes leave RSS as it decodes
                if entry.spec.nbytes >= _BIG_TENSOR:
                    for _ in self._bs.iter_pieces([entry], alloc=alloc):
                        pass
                    key = self._key[entry]
                    out[key] = _as_tensor(storage.pop(key), entry.spec, self.device, self._pin)
        except BaseException:
            storage.clear()
            out.clear()
            self._ledger.release(nbytes, layer)
            raise
        self._ledger.track(out, nbytes, layer)
        return out

    def load_non_layer_tensors(self) -> dict[str, Any]:
        """Every tensor outside the numbered blocks (embeddings, final norm, head...)."""
        return self._decode(self._non_layer, layer=False)

    def load_layer(self, i: int) -> dict[str, Any]:
        """Layer ``i`` alone, decoded now (no prefetch)."""
        return self._decode(self._layers[i], layer=True)

    def iter_layers(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield (layer number, {name: tensor}) in ascending order, prefetching one layer ahead.

        Drop each dict (and its tensors) before asking for the next layer beyond: the prefetch of
        layer L+2 waits until layer L is collected, so at most two layers are ever alive. If the
        caller keeps old layers, the next one is still decoded when asked for (no deadlock), but
        the memory promise is then the caller's to keep.
        """
        pf = _Prefetcher(self)
        try:
            for i in range(self.layer_count()):
                tensors = pf.take(i)
                yield i, tensors
                del tensors
        finally:
            pf.close()

    async def aiter_layers(self) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """The async twin of ``iter_layers``: ``async for i, tensors in loader.aiter_layers()``.

        The prefetch runs on the loader's background thread while the consumer awaits; waiting
        for a layer goes through ``anyio.to_thread.run_sync`` so the event loop never blocks.
        """
        import anyio.to_thread

        pf = _Prefetcher(self)
        try:
            for i in range(self.layer_count()):
                tensors = await anyio.to_thread.run_sync(pf.take, i, abandon_on_cancel=True)
                yield i, tensors
                del tensors
        finally:
            pf.close()


class _Prefetcher:
    """One background thread decoding layers in order, one ahead of the consumer.

    The decode of layer k waits for a free slot (fewer than two layers alive) unless the consumer
    is already blocked waiting for k, in which case it proceeds at once.
    """

    def __init__(self, loader: StreamingLoader):
        self.loader = loader
        self.ledger = loader._ledger
        self.demand = -1  # the layer the consumer is blocked on
        self.stopped = False
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="bigsmall-prefetch")
        self.next: tuple[int, Future[dict[str, Any]]] | None = None
        if loader.layer_count():
            self._submit(0)

    def _submit(self, k: int) -> None:
        self.next = (k, self.pool.submit(self._work, k))

    def _work(self, k: int) -> dict[str, Any]:
        cond = self.ledger.cond
        with cond:
            while self.ledger.live_layers >= _MAX_LIVE_LAYERS and self.demand < k and not self.stopped:
                cond.wait()
            if self.stopped:
                raise _Stopped
        return self.loader._decode(self.loader._layers[k], layer=True)

    def take(self, k: int) -> dict[str, Any]:
        """Layer k (blocking until decoded); starts the prefetch of k + 1 before returning."""
        assert self.next is not None and self.next[0] == k
        fut = self.next[1]
        self.next = None
        with self.ledger.cond:
            self.demand = k
            self.ledger.cond.notify_all()
        tensors = fut.result()
        del fut  # the future holds the result: drop it so the layer dies with the caller's dict
        if k + 1 < self.loader.layer_count():
            self._submit(k + 1)
        return tensors

    def close(self) -> None:
        with self.ledger.cond:
            self.stopped = True
            self.ledger.cond.notify_all()
        if self.next is not None:
            self.next[1].cancel()
        self.pool.shutdown(wait=True)
        self.next = None  # a finished prefetch nobody took: its layer is released here
