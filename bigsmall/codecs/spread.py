"""Where an encoder's independent pieces of work run: in order on the calling thread (the
default), or spread over a thread pool that ``compress`` lends for one large tensor.

Why: ``compress`` codes one tensor per pool task, and a model's largest tensor (MiniLM's
token embedding: half the model) left every other thread idle while it was coded alone at the
end. Its chunks are independent once the model and tables are fitted, and so are the two
candidate clusterings of each step of the context search; the mapper returns the results in
the order of the items, so the bytes written are the same whichever thread made them.
No I/O and no threads here: the shell (``io/compress.py``) supplies the mapper.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], list[Any]]

_MAPPER: contextvars.ContextVar[Mapper | None] = contextvars.ContextVar("bigsmall_spread", default=None)


def map_pieces(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[fn(x) for x in items]``, through the mapper in effect (``using``) if any."""
    mapper = _MAPPER.get()
    if mapper is None:
        return [fn(x) for x in items]
    return mapper(fn, items)


@contextlib.contextmanager
def using(mapper: Mapper | None) -> Iterator[None]:
    """Within the block, ``map_pieces`` on this thread goes through ``mapper``."""
    token = _MAPPER.set(mapper)
    try:
        yield
    finally:
        _MAPPER.reset(token)
