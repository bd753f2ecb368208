"""Backends: Tinker's client API, in-process (``local``) or over the wire (``tinker``).

Everything above this layer (train, evals, loop) talks to a ``ServiceClient`` /
``TrainingClient`` / ``SamplingClient`` with ``tinker.types`` and never to a model.
"""

from evaltune.backends.local import (
    SamplingClient,
    ServiceClient,
    TrainingClient,
    checkpoint_folder,
    default_checkpoint_dir,
)

__all__ = [
    "SamplingClient",
    "ServiceClient",
    "TrainingClient",
    "checkpoint_folder",
    "default_checkpoint_dir",
]
