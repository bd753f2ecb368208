"""Backends: Tinker's client API, in-process (``local``) or over the wire (``tinker``).

Everything above this layer (train, evals, loop, inspect, cli) types its clients with the
``ServiceClient`` / ``TrainingClient`` / ``SamplingClient`` Protocols of ``backends.contract``,
speaks ``tinker.types`` and never sees a model. The names exported here are the in-process
implementation's (``backends.local``), imported only when one is asked for, so reading the
contract (or ``backends.tinker``) costs no engine import.
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
