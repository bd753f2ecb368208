"""The bounds every input boundary applies (config files and overrides, data files, server
bodies), in one place so they cannot drift apart: deeper nesting makes every later step recurse
into the data, and Python refuses integers of over 4300 digits with a bare ``ValueError``."""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "depth_over"]

MAX_DEPTH = 64  # levels of nested lists/mappings; real configs, records and requests use few
MAX_INT_DIGITS = 64  # 2**64 has 20: seeds, steps, counts and token ids fit with room to spare


def depth_over(data: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``data`` nests lists/mappings more than ``limit`` levels deep (iteratively: no
    recursion to overflow on the very input it guards against)."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= limit:
                return True
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return False
