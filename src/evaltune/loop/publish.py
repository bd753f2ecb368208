"""What a run publishes beyond its folder: its best round in the model registry, and every
configured sink (MLflow, trackio, the EvalOps-style HTTP endpoint) with threshold alerts.

The runner calls a ``Publisher`` at four points: when the run starts (``open``), after each
round is decided (``round``: the round's results; ``guard_broken`` when a guard broke), when it
finishes (``finish``: the best round registered as a ``candidate``, ``target_missed`` when the
targets were not met, the reports and the model to the sinks) and when it stops on an error
(``failed``: ``run_failed``). It is the builder of the tracking layer (config in, plain
arguments down) and the one place that sees both the registry and the sinks. Nothing here fails
a run: a registry that cannot be written, or a sink that is down, is one line and an event.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from evaltune.config import RunConfig
from evaltune.config.schema import TrackingConfig
from evaltune.loop.decide import SuiteRule
from evaltune.registry import REGISTRY_FILE, Registry, default_name, describe_round
from evaltune.tracking import RunDir
from evaltune.tracking.html import read_steps
from evaltune.tracking.sinks import HTTPSink, Sink, Sinks

__all__ = ["REPORT_FILES", "Publisher", "build_sinks", "registry_path", "sync_mlflow_status"]

Warn = Callable[[str], None]
REPORT_FILES = ("summary.json", "report.md", "report.html", "EXPERIMENT.md")


def registry_path(tracking: TrackingConfig, workspace: Path) -> Path:
    return Path(tracking.registry.path) if tracking.registry.path else workspace / REGISTRY_FILE


def build_sinks(tracking: TrackingConfig, workspace: Path, warn: Warn) -> list[Sink]:
    """The enabled sinks; one that cannot be built (its extra missing) is a line, not an error."""
    builders: list[tuple[str, Callable[[], Sink]]] = []
    if tracking.mlflow.enabled:

        def mlflow() -> Sink:
            from evaltune.tracking.mlflow_sink import MLflowSink, local_store

            m = tracking.mlflow
            uri, artifacts = (m.tracking_uri, None) if m.tracking_uri else local_store(workspace)
            return MLflowSink(
                uri,
                experiment=m.experiment,
                artifact_location=artifacts,
                register_model=m.register_model,
            )

        builders.append(("mlflow", mlflow))
    if tracking.trackio.enabled:

        def trackio() -> Sink:
            from evaltune.tracking.trackio_sink import TrackioSink

            t = tracking.trackio
            return TrackioSink(t.project, Path(t.dir) if t.dir else workspace / "trackio")

        builders.append(("trackio", trackio))
    if tracking.http.enabled and tracking.http.url:
        h = tracking.http
        key = os.environ.get(h.api_key_env) or None
        if key is None:
            warn(f"tracking: http: ${h.api_key_env} is not set; posting without an API key")
        builders.append(
            (
                "http",
                lambda: HTTPSink(
                    h.url or "",
                    api_key=key,
                    suite_id=h.suite_id,
                    alerts=h.alerts,
                    timeout_s=h.timeout_s,
                    retries=h.retries,
                    backoff_s=h.backoff_s,
                ),
            )
        )
    sinks = []
    for name, build in builders:
        try:
            sinks.append(build())
        except (
            Exception
        ) as exc:  # a missing extra or a bad store: this sink is off, the run goes on
            warn(f"tracking: {name} is off for this run: {' '.join(str(exc).split())[:300]}")
    return sinks


def sync_mlflow_status(model: dict[str, Any], status: str) -> str | None:
    """Move the MLflow alias of a registered model to ``status`` when its run registered it in
    MLflow (``tracking.mlflow`` in the run's config); a line saying what happened, or None."""
    run_path = Path(model["record"]["lineage"]["run_path"])
    try:
        config = yaml.safe_load((run_path / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        return f"mlflow: not updated ({run_path / 'config.yaml'} unreadable: {exc})"
    m = (config.get("tracking") or {}).get("mlflow") or {}
    if not (m.get("enabled") and m.get("register_model", True)):
        return None
    try:
        from evaltune.tracking.mlflow_sink import local_store, set_status_alias

        uri = m.get("tracking_uri") or local_store(run_path.parent.parent)[0]
        found = set_status_alias(uri, model["name"], model["id"], status)
    except Exception as exc:  # MLflow is a mirror: the registry's change stands
        return f"mlflow: alias not moved: {' '.join(str(exc).split())[:300]}"
    return f"mlflow: {model['name']} alias {status} → {model['id']}" if found else None


class Publisher:
    def __init__(self, run: RunDir, cfg: RunConfig, warn: Warn, sinks: Sequence[Sink]) -> None:
        self.run, self.cfg, self.warn = run, cfg, warn
        self.workspace = run.path.parent.parent  # <workspace>/runs/<run-id>
        self.sinks = Sinks(sinks, self._warn)
        self.rules: list[SuiteRule] = []

    def _warn(self, text: str) -> None:
        self.warn(text)
        self.run.event("tracking_failed", message=text)

    @classmethod
    def open(cls, run: RunDir, cfg: RunConfig, warn: Warn) -> Publisher:
        workspace = run.path.parent.parent
        publisher = cls(run, cfg, warn, build_sinks(cfg.tracking, workspace, warn))
        params = cfg.model_dump(mode="json", exclude={"extras"})
        publisher.sinks.start(
            {
                "run_id": run.run_id,
                "run_path": str(run.path.resolve()),
                "base_model": cfg.base_model,
                "backend": cfg.backend,
                "params": params,
            }
        )
        return publisher

    def _alert(self, kind: str, message: str, **details: Any) -> None:
        self.run.event("alert", alert=kind, message=message)
        self.sinks.alert(
            {
                "kind": kind,
                "severity": "error" if kind != "target_missed" else "warning",
                "message": message,
                **details,
            }
        )

    def round(self, record: dict[str, Any] | None) -> None:
        """A round (the baseline included) has been evaluated and decided."""
        if record is None:
            return
        self.sinks.round(record, read_steps(self.run, [record]))
        if record.get("guards_hold") is False:
            guards = ", ".join(
                f"{r.name} {r.metric} {self._value(record, r)}"
                for r in self.rules
                if r.role == "guard"
            )
            self._alert(
                "guard_broken",
                f"round {record['round']} broke a guard: {guards}",
                round=record["round"],
            )

    @staticmethod
    def _value(record: dict[str, Any], rule: SuiteRule) -> str:
        v = ((record.get("evals") or {}).get(rule.name) or {}).get("metrics", {}).get(rule.metric)
        return "–" if v is None else f"{v:.3f}"

    def finish(self, summary: dict[str, Any]) -> None:
        model = self._register(summary) if self.cfg.tracking.registry.enabled else None
        best = summary.get("best")
        if not best or not best.get("targets_met"):
            scores = "; ".join(
                f"{r.name} {r.metric} {self._value(best or {}, r)} (threshold {r.threshold})"
                for r in self.rules
                if r.role == "target"
            )
            self._alert(
                "target_missed",
                f"targets not met after the last round "
                f"({summary['stop_reason']}): {scores or 'no trained round'}",
                best_round=(best or {}).get("round"),
            )
        files = [self.run.path / name for name in REPORT_FILES]
        self.sinks.finish(summary, files, model, "finished")

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, KeyboardInterrupt):
            self.sinks.finish(None, [], None, "interrupted")
            return
        message = " ".join(str(exc).split())[:1000] or type(exc).__name__
        self._alert("run_failed", f"run {self.run.run_id} failed: {message}")
        self.sinks.finish(None, [], None, "failed")

    def _register(self, summary: dict[str, Any]) -> dict[str, Any] | None:
        """The best round as a ``candidate`` (once: a resumed finish finds it registered)."""
        best = summary.get("best")
        if not best:
            return None
        path = registry_path(self.cfg.tracking, self.workspace)
        try:
            record = describe_round(
                self.run.path, best["round"], target_score=best.get("target_score")
            )
            name = default_name(self.cfg.model_dump(mode="json"))
            model, added = Registry(path).register(
                name,
                record,
                who=f"evaltune run {self.run.run_id}",
                why=f"best round of run {self.run.run_id} ({summary['stop_reason']})",
            )
        except Exception as exc:  # the run is finished whatever the registry says
            self._warn(f"registry: could not register round {best['round']} in {path}: {exc}")
            return None
        self.run.event("registered", model_id=model["id"], registry=str(path), added=added)
        self.warn(f"registry: round {best['round']} is {model['id']} ({model['status']}) in {path}")
        return model
