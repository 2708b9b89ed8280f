"""Argument types that refuse out-of-range numbers when the command line is parsed.

Why at parse time: ``-T 0`` meant "all cores" by accident (``threads or default``), ``-T -1``
reached ``ThreadPoolExecutor`` as a ValueError after the input was read, ``--sample 7`` was
taken as "all of them" and ``--sample -1`` as "one tensor". A usage error (exit 2, the usage
line, the option named) says what is wrong before any work starts.
"""

from __future__ import annotations

import argparse
import math

#: more worker threads or processes than this is a typo, not a machine (each thread reserves
#: a stack, and the decode pool starts them all at once)
MAX_WORKERS = 1024


def _int(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def workers(text: str) -> int:
    """A thread or process count: 1 to ``MAX_WORKERS``."""
    n = _int(text)
    if not 1 <= n <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_WORKERS}, not {n}")
    return n


def positive_int(text: str) -> int:
    """A count that must be at least 1 (e.g. ``--repeat``)."""
    n = _int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def _share(text: str, top: float, what: str) -> float:
    """A finite number in (0, ``top``]."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not (math.isfinite(x) and 0 < x <= top):
        raise argparse.ArgumentTypeError(f"must be {what} in (0, {top:g}], not {text}")
    return x


def fraction(text: str) -> float:
    """A fraction in (0, 1] (``verify --sample``): 0 checks nothing, above 1 means nothing."""
    return _share(text, 1, "a fraction")


def percent(text: str) -> float:
    """A percentage in (0, 100] (``compress --ecc``): 0 protects nothing, 100 doubles the file."""
    return _share(text, 100, "a percentage")
