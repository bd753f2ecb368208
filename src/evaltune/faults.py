"""Transient faults that were retried, counted for the whole process and reported by the loop.

The Tinker SDK retries connection errors, timeouts, 408/409/429 and 5xx answers itself, mostly
without a word; the endpoint client (``evals/endpoint.py``) retries its own. Both ``record``
each failed attempt here (``backends/tinker.py`` reads the SDK's HTTP client's DEBUG records),
and the loop ``drain``s the count after every phase and reports it (a console line and a ``retries`` event in ``events.jsonl``), so a flaky
network or an overloaded server shows up in the run instead of only slowing it down.
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["describe", "drain", "record"]

_lock = threading.Lock()
_counts: Counter[str] = Counter()


def record(source: str, cause: str) -> None:
    """One failed attempt at a request to ``source`` (``tinker``, an endpoint's URL), of a
    transient ``cause`` (``HTTP 503``, ``connection error``, ``timeout``)."""
    with _lock:
        _counts[f"{source}: {cause}"] += 1


def drain() -> dict[str, int]:
    """The retries recorded since the last call (``"source: cause"`` → count), then forget
    them."""
    with _lock:
        out = dict(_counts)
        _counts.clear()
    return out


def describe(counts: dict[str, int]) -> str:
    """``"3 transient errors, retried (tinker: HTTP 503 ×2, …)"``."""
    total = sum(counts.values())
    parts = ", ".join(f"{cause} ×{n}" for cause, n in sorted(counts.items(), key=lambda x: -x[1]))
    return f"{total} transient error{'s' if total != 1 else ''}, retried ({parts})"
