"""The model registry: every registered checkpoint with its evidence, lineage and status.

- ``store``: ``Registry``, the SQLite file (``<workspace>/registry.sqlite`` by default; WAL,
  busy timeout, one transaction per write, so processes registering at once lose nothing), its
  statuses (candidate, staging, production, retired) and the who/when/why of every change.
- ``entry``: ``describe_round``, a run folder's round as the record the registry stores (base
  model, LoRA, hyperparameters, data with hashes, evals, checkpoints, lineage).
- ``document``: the registry as Markdown (``evaltune registry export``).
"""

from evaltune.registry.document import eval_line, render_registry
from evaltune.registry.entry import default_name, describe_round, file_facts
from evaltune.registry.store import STATUSES, Registry, RegistryError, StatusChange, who_am_i

REGISTRY_FILE = "registry.sqlite"
"""The registry's file name in a workspace."""

__all__ = [
    "REGISTRY_FILE",
    "STATUSES",
    "Registry",
    "RegistryError",
    "StatusChange",
    "default_name",
    "describe_round",
    "eval_line",
    "file_facts",
    "render_registry",
    "who_am_i",
]
