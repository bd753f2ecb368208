"""Backends: Tinker's client API, in-process (``local``) or over the wire (``tinker``).

Everything above this layer (train, evals, loop) talks to a ``ServiceClient`` /
``TrainingClient`` / ``SamplingClient`` (the Protocols in ``backends/contract.py``) with
``tinker.types`` and never to a model. ``backends.local`` (and torch with it) is imported only
when one of its names is asked for, so reading the contract costs no engine import.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SamplingClient",
    "ServiceClient",
    "TrainingClient",
    "checkpoint_folder",
    "default_checkpoint_dir",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from evaltune.backends import local

        return getattr(local, name)
    raise AttributeError(f"module 'evaltune.backends' has no attribute {name!r}")
