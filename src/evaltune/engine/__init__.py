"""The local engine: a resident causal LM with LoRA slots, trained and sampled in-process.

Only this package imports torch and peft. It knows nothing of rounds, evals or Tinker's types
(it imports no ``tinker``): it takes token lists and tensors and returns plain results.
``evaltune.bridge`` converts Tinker's types to and from them and keeps the ``tinker://``
checkpoint store; ``evaltune.backends.local`` and ``evaltune.server`` sit on the bridge.
"""

from evaltune.engine.engine import (
    AdamConfig,
    Engine,
    checkpoint_spec,
    default_device,
    get_engine,
    read_checkpoint_meta,
)
from evaltune.engine.forward import ForwardItem, ForwardResult
from evaltune.engine.lora import LORA_ALPHA, LoraSpec
from evaltune.engine.sampling import Sampled, SampleSpec

__all__ = [
    "LORA_ALPHA",
    "AdamConfig",
    "Engine",
    "ForwardItem",
    "ForwardResult",
    "LoraSpec",
    "SampleSpec",
    "Sampled",
    "checkpoint_spec",
    "default_device",
    "get_engine",
    "read_checkpoint_meta",
]
