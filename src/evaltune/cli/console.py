"""The command line's consoles and error guard: a leaf every subcommand imports.

A user's mistake (an ``EvaltuneError``) prints as one red line and exits 2 (usage/config/data)
or 1 (runtime) without a traceback; ``--debug`` (``set_debug``) re-raises it for a full
traceback. Ctrl-C says how to resume and exits 130.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from evaltune.errors import ConfigError, DataError, EvaltuneError

__all__ = ["console", "guarded", "out", "set_debug"]

# soft_wrap: never break a line (paths, choices) at 80 columns when output is not a terminal.
console = Console(stderr=True, soft_wrap=True)  # progress, messages, errors
out = Console(soft_wrap=True)  # results
T = TypeVar("T")
_state = {"debug": False}


def set_debug(debug: bool) -> None:
    _state["debug"] = debug


def guarded(fn: Callable[[], T]) -> T:
    """Run ``fn``; turn an EvaltuneError into a one-line message and an exit code."""
    try:
        return fn()
    except EvaltuneError as exc:
        if _state["debug"]:
            raise
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        code = 2 if isinstance(exc, ConfigError | DataError) else 1
        raise typer.Exit(code) from None
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted[/]: the run folder keeps every completed phase; "
            "continue with `evaltune resume RUN_FOLDER`"
        )
        raise typer.Exit(130) from None
