"""The local engine: a resident causal LM with LoRA slots, trained and sampled in-process.

Only this package imports torch and peft. It knows nothing of rounds, evals or Tinker's wire
types: it takes token lists and tensors and returns plain results. ``evaltune.backends.local``
puts Tinker's client API on top of it, and ``evaltune.server`` puts it on the wire.
"""

from evaltune.engine.engine import AdamConfig, Engine, default_device, get_engine
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
    "default_device",
    "get_engine",
]
