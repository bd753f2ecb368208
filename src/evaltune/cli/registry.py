"""``evaltune registry``: the model registry of a workspace from the command line.

``list`` (every model, newest first), ``show ID`` (its record and status history), ``promote
ID --to STATUS [--why TEXT] [--force]``, ``retire ID``, ``add RUN [--round K]`` (register a
round by hand; a finished run registers its best round itself) and ``export`` (the registry as
a Markdown document). The registry is ``<workspace>/registry.sqlite`` (``--workspace``,
default the current folder) or the file ``--registry`` names. A wrong id or status, or a
refused promotion, is one line and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from evaltune.cli.console import guarded, out
from evaltune.errors import ConfigError
from evaltune.registry import (
    REGISTRY_FILE,
    STATUSES,
    Registry,
    StatusChange,
    default_name,
    describe_round,
    eval_line,
    render_registry,
)

__all__ = ["open_registry", "registry_app"]

registry_app = typer.Typer(
    help="The model registry: list, show, promote, retire, add, export.", no_args_is_help=True
)
Workspace = Annotated[Path, typer.Option(help="The workspace holding registry.sqlite and runs/.")]
RegistryFile = Annotated[
    Path | None, typer.Option("--registry", help="The registry file (default: in --workspace).")
]
Who = Annotated[
    str | None,
    typer.Option(help="Recorded as who made the change (default: $EVALTUNE_USER or login)."),
]


def open_registry(workspace: Path, registry: Path | None) -> Registry:
    return Registry(registry or workspace / REGISTRY_FILE)


def _report(reg: Registry, changes: list[StatusChange]) -> None:
    """Each change in a line; the MLflow alias moved along where the run registered there."""
    from evaltune.loop.publish import sync_mlflow_status

    for c in changes:
        out.print(f"{c.model_id}: {c.from_status} → {c.to_status} ({c.who}: {c.why})")
        note = sync_mlflow_status(reg.get(c.model_id), c.to_status)
        if note:
            out.print(note, highlight=False)


@registry_app.command("list")
def list_(
    workspace: Workspace = Path("."),
    registry: RegistryFile = None,
    name: Annotated[str | None, typer.Option(help="Only models of this name.")] = None,
    status: Annotated[str | None, typer.Option(help="Only models with this status.")] = None,
) -> None:
    """Every registered model, newest first, with its status and evidence."""

    def go() -> None:
        reg = open_registry(workspace, registry)
        models = reg.list(name=name, status=status)
        if not models:
            out.print(f"no registered models in {reg.path}")
            return
        for m in models:  # one line each: long evidence stays readable and greppable
            lin = m["record"]["lineage"]
            score = "–" if m["target_score"] is None else f"{m['target_score']:.3f}"
            evidence = "; ".join(eval_line(e) for e in m["record"]["evals"])
            guards = "guards held" if m["guards_hold"] else "GUARDS BROKEN"
            out.print(
                f"{m['id']}  {m['status']}  run {lin['run_id']} round {lin['round']}  "
                f"score {score}  {guards}  {m['created_at']}  {evidence}",
                highlight=False,
            )

    guarded(go)


@registry_app.command()
def show(
    model_id: Annotated[str, typer.Argument(help="A model id, e.g. demo-v3.")],
    workspace: Workspace = Path("."),
    registry: RegistryFile = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole record as JSON.")
    ] = False,
) -> None:
    """One model: its record (data, evals, checkpoints, lineage) and its status history."""

    def go() -> None:
        reg = open_registry(workspace, registry)
        model = reg.get(model_id)
        history = reg.history(model_id)
        if as_json:
            changes = [c.__dict__ for c in history]
            out.print_json(json.dumps({**model, "history": changes}, default=str))
            return
        out.print(render_registry([model], history, str(reg.path)), highlight=False)

    guarded(go)


@registry_app.command()
def promote(
    model_id: Annotated[str, typer.Argument(help="A model id, e.g. demo-v3.")],
    to: Annotated[str, typer.Option("--to", help=f"The new status: {', '.join(STATUSES)}.")],
    why: Annotated[str, typer.Option(help="Why, recorded with the change.")] = "",
    force: Annotated[
        bool, typer.Option(help="Promote a model whose guards broke (needs --why).")
    ] = False,
    previous: Annotated[
        str, typer.Option(help="What the old production model becomes: retired or staging.")
    ] = "retired",
    who: Who = None,
    workspace: Workspace = Path("."),
    registry: RegistryFile = None,
) -> None:
    """Change a model's status; promoting to production moves the old production model out."""

    def go() -> None:
        reg = open_registry(workspace, registry)
        changes = reg.set_status(model_id, to, why=why, who=who, force=force, previous=previous)
        _report(reg, changes)

    guarded(go)


@registry_app.command()
def retire(
    model_id: Annotated[str, typer.Argument(help="A model id, e.g. demo-v3.")],
    why: Annotated[str, typer.Option(help="Why, recorded with the change.")] = "",
    who: Who = None,
    workspace: Workspace = Path("."),
    registry: RegistryFile = None,
) -> None:
    """Retire a model (it stays in the registry, with its history)."""

    def go() -> None:
        reg = open_registry(workspace, registry)
        _report(reg, reg.set_status(model_id, "retired", why=why, who=who))

    guarded(go)


@registry_app.command()
def add(
    run: Annotated[
        Path, typer.Argument(help="A finished run folder, e.g. runs/20261121-101500-demo.")
    ],
    round_: Annotated[
        int | None, typer.Option("--round", help="The round to register (default: the best).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="The registered name (default: the run's).")
    ] = None,
    who: Who = None,
    registry: RegistryFile = None,
) -> None:
    """Register a round of a finished run as a candidate (the best round is registered when a
    run finishes; this adds another, or a run from before the registry)."""

    def go() -> None:
        import yaml

        from evaltune.loop.decide import SuiteRule, target_score

        if not (run / "summary.json").is_file():
            raise ConfigError(f"{run}: no summary.json; give a finished run folder")
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        state = json.loads((run / "state.json").read_text(encoding="utf-8"))
        k = round_ if round_ is not None else (summary.get("best") or {}).get("round")
        rules = [SuiteRule(**r) for r in summary.get("suites") or []]
        rec = next((r for r in state.get("rounds") or [] if r["round"] == k), None)
        record = describe_round(run, k, target_score=target_score(rec, rules) if rec else None)
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
        reg = Registry(registry or run.resolve().parent.parent / REGISTRY_FILE)
        model, added = reg.register(
            name or default_name(config),
            record,
            who=who,
            why=f"added by hand from round {k} of {run.name}",
        )
        verb = "registered" if added else "already registered as"
        out.print(f"{verb} {model['id']} ({model['status']}) in {reg.path}", highlight=False)

    guarded(go)


@registry_app.command()
def export(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where (default: REGISTRY.md in the workspace)."),
    ] = None,
    workspace: Workspace = Path("."),
    registry: RegistryFile = None,
) -> None:
    """Write the registry as a Markdown document a person can read or commit."""

    def go() -> None:
        reg = open_registry(workspace, registry)
        if not reg.path.is_file():
            raise ConfigError(f"no model registry at {reg.path}; a finished run creates it")
        target = output or workspace / "REGISTRY.md"
        target.write_text(
            render_registry(reg.list(), reg.history(), str(reg.path)), encoding="utf-8"
        )
        out.print(f"wrote {target}", highlight=False)

    guarded(go)
