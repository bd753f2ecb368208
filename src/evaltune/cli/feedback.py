"""``evaltune feedback add RUN FILE``: feedback for a run's next rounds.

FILE holds preference pairs (``prompt``, ``chosen``, ``rejected``) and/or scored responses
(``prompt``, ``response``, ``score``) from people or graders, in any data file type. Every
record is checked first (a problem names the file, line and field, and nothing is added);
then the records are appended to the run's feedback store, ``<run>/feedback.jsonl``. A ``dpo``
round trains on its pairs (and on pairs made from the scored responses: per prompt, the best
against the worst); an ``rl`` round trains on the scored responses with their scores as
rewards. ``evaltune resume RUN`` with more rounds (``loop.max_rounds=…``) uses it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from evaltune.cli.console import guarded, out
from evaltune.data.preferences import FEEDBACK_FILE, load_feedback, preference_to_record
from evaltune.errors import ConfigError
from evaltune.files import write_bytes_atomic
from evaltune.tracking.runs import resolve_run

__all__ = ["feedback_app"]

feedback_app = typer.Typer(help="Feedback for a run's next rounds: pairs and scores.")
Workspace = Annotated[Path, typer.Option(help="The workspace holding runs/.")]


@feedback_app.command("add")
def add(
    run: Annotated[str, typer.Argument(help="A run folder, a run id, or a unique prefix.")],
    file: Annotated[Path, typer.Argument(help="Pairs and/or scored responses.")],
    workspace: Workspace = Path("."),
) -> None:
    """Check FILE's records, then append them to RUN's feedback store."""

    def go() -> None:
        path = resolve_run(run, workspace)
        if path is None:
            raise ConfigError(f"no run {run!r} (not a run folder, nor a run id in {workspace})")
        pairs, scored = load_feedback([file])
        store = path / FEEDBACK_FILE
        old = store.read_bytes() if store.is_file() else b""
        lines = [json.dumps(preference_to_record(r), ensure_ascii=False) for r in [*pairs, *scored]]
        write_bytes_atomic(store, old + ("\n".join(lines) + "\n").encode())
        out.print(
            f"added {len(pairs)} pairs and {len(scored)} scored responses to {store}",
            highlight=False,
        )

    guarded(go)
