"""Progress bars that stay quiet when nobody is watching (not a TTY, --no-progress, --json)."""

from __future__ import annotations

import sys
from typing import Any


class _Null:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def bar(total: int, desc: str, enabled: bool | None = None, unit: str = "B") -> Any:
    """A tqdm bar in bytes, or a no-op when disabled (default: enabled only on a TTY)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _Null()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, unit_divisor=1024,
                leave=False, file=sys.stderr, dynamic_ncols=True)
