"""The command line's consoles and error guard: a leaf every subcommand imports.

A user's mistake (an ``EvaltuneError``) prints as one red line and exits 2 (usage/config/data)
or 1 (runtime) without a traceback; ``--debug`` (``set_debug``) re-raises it for a full
traceback. Ctrl-C says how to resume and exits 130.

Both consoles print text literally: paths, values, overrides and data fields may hold
``[/…]`` or ``:name:``, which rich would otherwise parse as markup (and crash on, or drop) or
turn into emoji. Styled output is built as ``rich.text.Text`` (``Text.assemble``), never as
markup in a string. ``shorten`` keeps a message's lines short when a value in it is huge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.text import Text

from evaltune.errors import ConfigError, DataError, EvaltuneError

__all__ = ["console", "guarded", "out", "set_debug", "shorten"]

# soft_wrap: never break a line (paths, choices) at 80 columns when output is not a terminal.
console = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)  # progress, errors
out = Console(soft_wrap=True, markup=False, emoji=False)  # results
T = TypeVar("T")
_state = {"debug": False}
MAX_LINE = 600  # characters of one message line; a longer one keeps its head and tail


def set_debug(debug: bool) -> None:
    _state["debug"] = debug


def shorten(text: str, limit: int = MAX_LINE) -> str:
    """``text`` with every line over ``limit`` characters cut in the middle, saying how much
    was left out: a 10 MB value in an error stays one readable line."""
    lines = []
    for line in text.split("\n"):
        if len(line) > limit:
            tail = limit // 5
            cut = len(line) - limit
            line = f"{line[: limit - tail]} … ({cut} characters left out) … {line[-tail:]}"
        lines.append(line)
    return "\n".join(lines)


def guarded(fn: Callable[[], T]) -> T:
    """Run ``fn``; turn an EvaltuneError into a one-line message and an exit code."""
    try:
        return fn()
    except EvaltuneError as exc:
        if _state["debug"]:
            raise
        console.print(
            Text.assemble(("error:", "bold red"), " ", shorten(str(exc))), highlight=False
        )
        code = 2 if isinstance(exc, ConfigError | DataError) else 1
        raise typer.Exit(code) from None
    except KeyboardInterrupt:
        console.print(
            Text.assemble(
                ("interrupted", "yellow"),
                ": the run folder keeps every completed phase; "
                "continue with `evaltune resume RUN_FOLDER`",
            )
        )
        raise typer.Exit(130) from None
