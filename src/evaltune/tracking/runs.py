"""The runs of a workspace, as ``evaltune runs`` lists them.

Each folder under ``<workspace>/runs/`` with a ``state.json`` is a run (hidden folders are runs
still being created). ``describe_run`` reads its state and, once it finished, its summary: the
status, stop reason, best round and score, rounds trained, when it started and how long it took.
A folder whose files cannot be read is listed with the reason instead of failing the listing.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["describe_run", "list_runs", "resolve_run"]


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def describe_run(path: Path) -> dict[str, Any]:
    """One run folder as a row: run_id, status, stop_reason, best_round, best_score,
    rounds, started (ISO), seconds, error."""
    row: dict[str, Any] = {"run_id": path.name, "path": str(path)}
    try:
        state = _read(path / "state.json")
        summary = _read(path / "summary.json") if (path / "summary.json").is_file() else {}
    except (OSError, ValueError) as exc:
        return {**row, "status": "unreadable", "error": str(exc)}
    best = summary.get("best") or {}
    started = state.get("started_at")
    end = state.get("finished_at") or (None if state.get("status") != "running" else time.time())
    rounds = [r for r in state.get("rounds") or [] if r.get("round", 0) > 0]
    return {
        **row,
        "status": state.get("status", "?"),
        "stop_reason": state.get("stop_reason"),
        "best_round": state.get("best_round"),
        "best_score": best.get("target_score"),
        "targets_met": best.get("targets_met"),
        "rounds": len(rounds),
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
        if started
        else None,
        "seconds": round(end - started, 1) if started and end else None,
        "error": state.get("error"),
        "base_model": summary.get("base_model"),
    }


def list_runs(workspace: Path) -> list[dict[str, Any]]:
    """Every run of ``workspace``, oldest first (run ids start with their UTC start time)."""
    runs = workspace / "runs"
    if not runs.is_dir():
        return []
    return [
        describe_run(p)
        for p in sorted(runs.iterdir())
        if p.is_dir() and not p.name.startswith(".") and (p / "state.json").is_file()
    ]


def resolve_run(ref: str, workspace: Path) -> Path | None:
    """A run folder from a path, a run id in ``workspace/runs``, or a unique prefix of one."""
    as_path = Path(ref)
    if (as_path / "state.json").is_file():
        return as_path
    runs = workspace / "runs"
    if (runs / ref / "state.json").is_file():
        return runs / ref
    if runs.is_dir():
        matches = [
            p for p in runs.iterdir() if p.name.startswith(ref) and (p / "state.json").is_file()
        ]
        if len(matches) == 1:
            return matches[0]
    return None
