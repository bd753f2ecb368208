"""evaltune: evaluation-driven LoRA fine-tuning on a local engine or on Tinker."""

from evaltune.errors import (
    BackendError,
    ConfigError,
    DataError,
    EngineError,
    EvalError,
    EvaltuneError,
    ModelNotFoundError,
    TrainingError,
)

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "ConfigError",
    "DataError",
    "EngineError",
    "EvalError",
    "EvaltuneError",
    "ModelNotFoundError",
    "TrainingError",
    "__version__",
]
