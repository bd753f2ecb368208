"""The ``evaltune`` command line (typer + rich)."""

from evaltune.cli.app import app

__all__ = ["app"]
