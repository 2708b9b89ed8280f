"""Progress bars that stay quiet when nobody is watching (not a TTY, --no-progress, --json)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # http_range imports ssl and http.client: not for every progress bar
    from .http_range import FetchStats


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


class FetchBar:
    """A progress bar of decoded bytes that also shows the bytes fetched so far: on a remote
    source the two differ (the download runs ahead of the decode, or the decode waits for it),
    and a user watching a slow restore wants to see which one holds it up."""

    def __init__(self, bar: Any, stats: FetchStats):
        self.bar, self.stats = bar, stats

    def update(self, n: int = 1) -> None:
        self.bar.set_postfix_str(f"fetched {self.stats.bytes / 1e6:.1f} MB", refresh=False)
        self.bar.update(n)

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self.bar.set_postfix_str(s, refresh=refresh)

    def close(self) -> None:
        self.bar.close()


def fetch_bar(bar: Any, source: Any) -> Any:
    """``bar`` as a ``FetchBar`` when ``source`` is remote (it has fetch ``stats``), else itself."""
    from .http_range import FetchStats

    stats = getattr(source, "stats", None)
    return FetchBar(bar, stats) if isinstance(stats, FetchStats) else bar
