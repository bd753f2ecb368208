"""How the loop tells a person what it is doing, without knowing about terminals.

The loop calls a ``Reporter``; the CLI passes one that draws rich progress bars, tests and
library users get ``NullReporter`` (silent) or their own.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["NullReporter", "Reporter"]


class Reporter(Protocol):
    def message(self, text: str) -> None:
        """A line worth showing (phase changes, decisions, where files went)."""

    def start(self, task: str, description: str, total: int) -> None:
        """A unit of work with ``total`` steps begins (training steps, eval samples)."""

    def advance(self, task: str, completed: int, info: str = "") -> None:
        """``completed`` of the task's steps are done; ``info`` is a short status (loss, …)."""

    def finish(self, task: str) -> None: ...


class NullReporter:
    def message(self, text: str) -> None:
        pass

    def start(self, task: str, description: str, total: int) -> None:
        pass

    def advance(self, task: str, completed: int, info: str = "") -> None:
        pass

    def finish(self, task: str) -> None:
        pass
