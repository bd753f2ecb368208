"""``python -m evaltune``: the same command line as ``evaltune``."""

from evaltune.cli import app

app(prog_name="evaltune")
