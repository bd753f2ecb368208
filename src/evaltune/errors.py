"""The error tree every layer raises from.

A user's mistake is raised as one of these with a message that says what went wrong, where
(file, line, field), what was found and how to fix it. The CLI prints them without a traceback;
the server turns them into 4xx JSON. ``assert`` is kept for invariants of our own code.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ConfigError",
    "DataError",
    "EngineError",
    "EvalError",
    "EvaltuneError",
    "ModelNotFoundError",
    "TrainingError",
]


class EvaltuneError(Exception):
    """Base of every error evaltune raises on purpose."""


class ConfigError(EvaltuneError, ValueError):
    """A run config (or CLI option) is invalid."""


class DataError(EvaltuneError, ValueError):
    """A data file or a record in it is invalid."""


class EngineError(EvaltuneError, RuntimeError):
    """The local engine cannot do what was asked (bad model, bad request, bad checkpoint)."""


class ModelNotFoundError(EngineError, ValueError):
    """A model name resolves to nothing: not an alias, not a folder, not reachable on the hub."""


class EvalError(EvaltuneError, RuntimeError):
    """An evaluation could not run or could not be scored."""


class TrainingError(EvaltuneError, RuntimeError):
    """Training cannot go on: the loss or the gradients became non-finite (a learning rate far
    too high, say). Nothing from the failing round is saved; the run stays resumable."""


class BackendError(EvaltuneError, RuntimeError):
    """A backend (local or Tinker) rejected or failed a request."""
