"""The ``evaltune`` command line.

A user's mistake (an ``EvaltuneError``) prints as one red line and exits 2 (usage/config) or
1 (runtime) without a traceback; ``--debug`` re-raises it for a full traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from evaltune import __version__
from evaltune.errors import ConfigError, DataError, EvaltuneError

app = typer.Typer(
    help="Evaluation-driven LoRA fine-tuning: train, evaluate, find failures, retrain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
T = TypeVar("T")
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        print(f"evaltune {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
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


@app.command()
def models() -> None:
    """List the built-in model aliases and whether each is converted in the local cache."""
    from evaltune.engine.models import BUILTIN_MODELS, MARKER, default_cache_dir

    table = Table(title=f"built-in models (cache: {default_cache_dir()})")
    table.add_column("alias")
    table.add_column("description")
    table.add_column("cached")
    for alias, description in BUILTIN_MODELS.items():
        cached = (default_cache_dir() / "models" / alias / MARKER).is_file()
        table.add_row(alias, description, "yes" if cached else "no (converted on first use)")
    Console().print(table)
    print("Also accepted: a local folder with config.json, or a Hugging Face id (needs network).")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
