"""The run config: the typed ``RunConfig``, loading it from YAML/JSON, and its reference.

- ``schema``: the pydantic models (frozen, unknown keys forbidden); defaults live only there.
- ``names``: the hook for grader, benchmark, bundle and policy names (``NameCatalog``,
  ``register_names``): the layers that implement them own the lists, config checks against them.
- ``load``: ``load_config`` (file → overrides → validation, all errors at once, with lines) and
  ``dump_config`` (the resolved snapshot written to a run folder).
- ``seed``: the tinker-eval-loop ``eval_loop_config.json`` format, mapped onto ``RunConfig``.
- ``messages``: schema → words, shared by errors and the reference.
- ``reference``: ``docs/config-reference.md``, generated (``python -m evaltune.config --reference``).
"""

from evaltune.config.load import dump_config, load_config
from evaltune.config.names import NameCatalog, register_names, registered_names
from evaltune.config.schema import (
    DataConfig,
    EvalSuiteConfig,
    LoopConfig,
    LoraConfig,
    OutputConfig,
    RunConfig,
    TinkerConfig,
    TrainingConfig,
)
from evaltune.config.seed import is_seed_format

__all__ = [
    "DataConfig",
    "EvalSuiteConfig",
    "LoopConfig",
    "LoraConfig",
    "NameCatalog",
    "OutputConfig",
    "RunConfig",
    "TinkerConfig",
    "TrainingConfig",
    "dump_config",
    "is_seed_format",
    "load_config",
    "register_names",
    "registered_names",
]
