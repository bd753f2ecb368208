"""``evaltune runs``, ``evaltune show RUN`` and ``evaltune report RUN``: the runs of a workspace.

``runs`` lists every run (status, stop reason, best score, rounds, time); ``show`` summarises
one (rounds with their scores, the best checkpoint, reports, its registered models); ``report``
regenerates ``report.md``, ``report.html`` and ``EXPERIMENT.md`` from its ``summary.json``
(after an upgrade, or when a page was not written). RUN is a folder, a run id or its prefix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from evaltune.cli.console import guarded, out
from evaltune.errors import ConfigError, EvaltuneError
from evaltune.registry import REGISTRY_FILE, Registry
from evaltune.tracking import RunDir
from evaltune.tracking.runs import list_runs, resolve_run

__all__ = ["report", "runs", "show"]

Workspace = Annotated[Path, typer.Option(help="The workspace holding runs/.")]
RunRef = Annotated[str, typer.Argument(help="A run folder, a run id, or a unique prefix of one.")]


def _num(x: object) -> str:
    return "–" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def _print_columns(rows: list[tuple[str, ...]]) -> None:
    """Rows as aligned columns, one line each (never wrapped into a narrow table)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.print(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(),
            highlight=False,
        )


def _run(ref: str, workspace: Path) -> RunDir:
    path = resolve_run(ref, workspace)
    if path is None:
        known = [r["run_id"] for r in list_runs(workspace)][-5:]
        hint = f"; runs in {workspace / 'runs'}: {', '.join(known)}" if known else ""
        raise ConfigError(f"no run {ref!r} (not a run folder, nor a run id in {workspace}){hint}")
    return RunDir.open(path)


def runs(workspace: Workspace = Path(".")) -> None:
    """List the runs in a workspace: status, stop reason, best score, rounds, time."""

    def go() -> None:
        rows = list_runs(workspace)
        if not rows:
            out.print(f"no runs in {workspace / 'runs'}", highlight=False)
            return
        head = ("run", "status", "stop reason", "best", "score", "rounds", "started", "time (s)")
        lines = [head]
        for r in rows:
            score = _num(r.get("best_score")) + (" ✓" if r.get("targets_met") else "")
            lines.append(
                (
                    r["run_id"],
                    r["status"],
                    _num(r.get("stop_reason")),
                    _num(r.get("best_round")),
                    score,
                    _num(r.get("rounds")),
                    _num(r.get("started")),
                    "–" if r.get("seconds") is None else f"{r['seconds']:.1f}",
                )
            )
        _print_columns(lines)

    guarded(go)


def show(run: RunRef, workspace: Workspace = Path(".")) -> None:
    """Summarise one run: rounds and scores, the best checkpoint, reports, registered models."""

    def go() -> None:
        rd = _run(run, workspace)
        state = rd.read_json("state.json")
        summary_path = rd.path / "summary.json"
        summary = rd.read_json("summary.json") if summary_path.is_file() else None
        out.print(
            f"run {rd.run_id} · {state['status']} · stop reason "
            f"{state.get('stop_reason') or '–'} · {rd.path}",
            highlight=False,
        )
        if state.get("error"):
            out.print(f"error: {state['error']}", highlight=False)
        rules = (summary or {}).get("suites") or []
        lines = [
            (
                "round",
                "lr",
                "steps",
                "train loss",
                *[f"{r['name']} {r['metric']}" for r in rules],
                "decision",
            )
        ]
        for r in state.get("rounds") or []:
            evals = r.get("evals") or {}
            m = [(evals.get(s["name"]) or {}).get("metrics", {}).get(s["metric"]) for s in rules]
            lines.append(
                (
                    "baseline" if r["round"] == 0 else str(r["round"]),
                    "–" if r.get("lr") is None else f"{r['lr']:.3g}",
                    _num(r.get("steps")),
                    _num((r.get("train") or {}).get("final_loss")),
                    *map(_num, m),
                    (r.get("decision") or {}).get("reason", "–"),
                )
            )
        _print_columns(lines)
        best = (summary or {}).get("best")
        if best:
            ckpt = best["checkpoint"]
            out.print(
                f"best: round {best['round']} · target score {_num(best['target_score'])} · "
                f"targets met {best['targets_met']} · guards held {best['guards_hold']}\n"
                f"  adapter: {ckpt.get('sampler_folder') or ckpt['sampler']}",
                highlight=False,
            )
        for name in ("report.md", "report.html", "EXPERIMENT.md"):
            if (rd.path / name).is_file():
                out.print(f"  {name}: {rd.path / name}", highlight=False)
        registry = rd.path.parent.parent / REGISTRY_FILE
        for m in Registry(registry).list() if registry.is_file() else []:
            if m["run_id"] == rd.run_id:
                out.print(
                    f"  registered: {m['id']} ({m['status']}), round {m['round']}", highlight=False
                )

    guarded(go)


def report(run: RunRef, workspace: Workspace = Path(".")) -> None:
    """Regenerate a finished run's report.md, report.html and EXPERIMENT.md."""

    def go() -> None:
        import yaml

        from evaltune.loop.summary import write_reports

        rd = _run(run, workspace)
        if not (rd.path / "summary.json").is_file():
            raise ConfigError(
                f"{rd.path} has not finished (no summary.json); finish it with evaltune resume "
                f"{rd.path}, which writes its reports"
            )
        summary = rd.read_json("summary.json")
        config = yaml.safe_load((rd.path / "config.yaml").read_text(encoding="utf-8")) or {}
        state = json.loads((rd.path / "state.json").read_text(encoding="utf-8"))
        failed = write_reports(rd, summary, config, state.get("finished_at"))
        for name in ("report.md", "report.html", "EXPERIMENT.md"):
            if name not in failed:
                out.print(f"wrote {rd.path / name}", highlight=False)
        if failed:
            raise EvaltuneError(f"could not render {', '.join(failed)} (see events.jsonl)")

    guarded(go)
