"""The one adapter between Tinker's types and the engine: conversions both ways (``convert``),
a training model's slot (``slots``: ``get_info``, the ``load_state`` swap) and the checkpoint
store (``checkpoints``: ``tinker://`` paths ↔ folders, names, the overwrite rule, listings).

``backends.local`` (in-process futures) and ``server`` (sessions and the wire encoding) both sit
on it, so each rule is written once and a checkpoint saved by one loads in the other. It imports
the engine and ``tinker.types``; the engine imports neither it nor ``tinker``.
"""

from evaltune.bridge.checkpoints import (
    KINDS,
    URI_PREFIX,
    CheckpointError,
    CheckpointNotFound,
    CheckpointRef,
    CheckpointStore,
    check_name,
)
from evaltune.bridge.convert import (
    adam_config,
    check_optimizer,
    forward_items,
    forward_output,
    input_tokens,
    prompt_logprobs,
    sample_response,
    sample_spec,
)
from evaltune.bridge.slots import replace_slot, training_info

__all__ = [
    "KINDS",
    "URI_PREFIX",
    "CheckpointError",
    "CheckpointNotFound",
    "CheckpointRef",
    "CheckpointStore",
    "adam_config",
    "check_name",
    "check_optimizer",
    "forward_items",
    "forward_output",
    "input_tokens",
    "prompt_logprobs",
    "replace_slot",
    "sample_response",
    "sample_spec",
    "training_info",
]
