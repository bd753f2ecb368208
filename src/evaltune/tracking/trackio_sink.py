"""The trackio sink: local-first experiment tracking (a SQLite file per project, a dashboard).

One trackio run per evaltune run (``name`` = the run id, resumed by name), the flattened config
as its config; each optimizer step's ``train/*`` metrics at the global step, and each round's
eval metrics at the step its training ended on (trackio has one step axis); the end logs the
best round's score. trackio keeps its files in ``TRACKIO_DIR``, read when it is first
imported: the builder sets it (``<workspace>/trackio`` by default) before the import, unless
the environment already names one. trackio is an optional extra, imported only here.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaltune.errors import ConfigError
from evaltune.tracking.mlflow_sink import flatten_params
from evaltune.tracking.sinks import round_metrics

__all__ = ["TrackioSink"]


class TrackioSink:
    name = "trackio"

    def __init__(self, project: str, directory: Path | None) -> None:
        if directory is not None and "TRACKIO_DIR" not in os.environ:
            directory.mkdir(parents=True, exist_ok=True)
            os.environ["TRACKIO_DIR"] = str(directory)
        try:
            import trackio
        except ImportError as exc:
            raise ConfigError(
                "tracking.trackio needs trackio: pip install 'evaltune[trackio]'"
            ) from exc
        self.trackio = trackio
        self.project = project
        self.run: Any = None
        self.last_step = 0

    def start(self, info: dict[str, Any]) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # its banner would break our output
            self.run = self.trackio.init(
                project=self.project,
                name=info["run_id"],
                config=flatten_params(info.get("params") or {}),
                resume="allow",
                embed=False,
                auto_log_gpu=False,
                auto_log_cpu=False,
                capture_console=False,
            )

    def round(self, record: dict[str, Any], steps: Sequence[dict[str, Any]]) -> None:
        for s in steps:
            values = {f"train/{k}": v for k, v in s.items() if k not in ("step", "round")}
            numbers = {k: v for k, v in values.items() if isinstance(v, int | float)}
            self.last_step = int(s["step"])
            self.run.log(numbers, step=self.last_step)
        metrics: dict[str, float] = {**round_metrics(record), "round": float(record["round"])}
        if record.get("lr") is not None:
            metrics["round/lr"] = float(record["lr"])
        self.run.log(metrics, step=self.last_step)

    def alert(self, alert: dict[str, Any]) -> None:
        self.run.log({f"alert/{alert['kind']}": 1.0}, step=self.last_step)

    def finish(
        self,
        summary: dict[str, Any] | None,
        files: Sequence[Path],
        model: dict[str, Any] | None,
        status: str,
    ) -> None:
        best = (summary or {}).get("best") or {}
        if best:
            self.run.log(
                {
                    "best/round": float(best["round"]),
                    "best/target_score": float(best["target_score"]),
                },
                step=self.last_step,
            )
        with contextlib.redirect_stdout(io.StringIO()):
            self.run.finish()
