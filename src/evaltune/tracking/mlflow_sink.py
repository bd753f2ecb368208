"""The MLflow sink: one MLflow run per evaltune run, through ``MlflowClient`` only.

Params are the resolved config, flattened (``lora.rank``, ``training.batch_size``); metrics
are each optimizer step's (``train/loss``, ``train/lr``, … at the global step) and each round's
eval metrics (``eval/<suite>/<metric>`` at the round number, per tag too); at the end the
reports and ``summary.json`` are logged as artifacts, and the registered best model becomes an
MLflow model version (its PEFT adapter logged under ``adapter/``) with its registry status as
an alias. A resumed run finds its MLflow run again by the ``evaltune.run_id`` tag.

By default the store is local to the workspace (``sqlite:///<workspace>/mlflow/mlflow.db``,
artifacts in ``<workspace>/mlflow/artifacts``); ``tracking_uri`` points at a server instead.
mlflow is an optional extra, imported only when this sink is built.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaltune.errors import ConfigError

__all__ = ["MLflowSink", "flatten_params", "local_store", "set_status_alias"]

RUN_TAG = "evaltune.run_id"
_BAD_NAME = re.compile(r"[^\w\-. /:]")


def local_store(workspace: Path) -> tuple[str, str]:
    """The default tracking URI and artifact folder of a workspace."""
    folder = (workspace / "mlflow").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


def set_status_alias(tracking_uri: str, name: str, registry_id: str, status: str) -> bool:
    """Point alias ``status`` of model ``name`` at the version registered from ``registry_id``
    (``evaltune registry promote`` keeps MLflow in step); False when there is none."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.tags.get("evaltune.registry_id") == registry_id:
            client.set_registered_model_alias(name, status, version.version)
            client.set_model_version_tag(name, version.version, "evaltune.status", status)
            return True
    return False


def flatten_params(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested config → ``{"a.b": "value"}`` (lists as their text), values cut to 500 chars."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten_params(value, f"{prefix}{key}."))
        return out
    out[prefix.rstrip(".")] = str(data)[:500]
    return out


def _name(key: str) -> str:
    return _BAD_NAME.sub("_", key)


class MLflowSink:
    name = "mlflow"

    def __init__(
        self,
        tracking_uri: str,
        *,
        experiment: str,
        artifact_location: str | None = None,
        register_model: bool = True,
    ) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise ConfigError(
                "tracking.mlflow needs mlflow: pip install 'evaltune[mlflow]'"
            ) from exc
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.experiment, self.artifact_location = experiment, artifact_location
        self.register_model = register_model
        self.run_id: str | None = None

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        return str(
            self.client.create_experiment(self.experiment, artifact_location=self.artifact_location)
        )

    def start(self, info: dict[str, Any]) -> None:
        experiment_id = self._experiment_id()
        runs = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{info['run_id']}'"
        )
        if runs:  # resumed: the same MLflow run, its params already logged
            self.run_id = runs[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        run = self.client.create_run(
            experiment_id,
            run_name=info["run_id"],
            tags={
                RUN_TAG: info["run_id"],
                "evaltune.base_model": str(info.get("base_model")),
                "evaltune.run_path": str(info.get("run_path")),
            },
        )
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        params = [Param(_name(k), v) for k, v in flatten_params(info.get("params") or {}).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def _metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(_name(k), float(v), now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def round(self, record: dict[str, Any], steps: Sequence[dict[str, Any]]) -> None:
        from evaltune.tracking.sinks import round_metrics

        for s in steps:
            values = {f"train/{k}": v for k, v in s.items() if k not in ("step", "round")}
            self._metrics(
                {k: v for k, v in values.items() if isinstance(v, int | float)}, int(s["step"])
            )
        k = int(record["round"])
        values = round_metrics(record)
        if record.get("lr") is not None:
            values["round/lr"] = float(record["lr"])
        if (record.get("train") or {}).get("final_loss") is not None:
            values["round/train_loss"] = float(record["train"]["final_loss"])
        self._metrics(values, k)

    def alert(self, alert: dict[str, Any]) -> None:
        self.client.set_tag(self.run_id, f"evaltune.alert.{alert['kind']}", alert["message"][:5000])

    def finish(
        self,
        summary: dict[str, Any] | None,
        files: Sequence[Path],
        model: dict[str, Any] | None,
        status: str,
    ) -> None:
        run_id = self.run_id
        if summary is not None:
            best = summary.get("best") or {}
            final = {"rounds_trained": summary.get("rounds_trained", 0)}
            if best:
                final |= {"best/round": best["round"], "best/target_score": best["target_score"]}
            self._metrics({k: float(v) for k, v in final.items() if v is not None}, 0)
            self.client.set_tag(run_id, "evaltune.stop_reason", str(summary.get("stop_reason")))
        for path in files:
            if path.is_file():
                self.client.log_artifact(run_id, str(path))
        if model is not None and self.register_model:
            self._register(model)
        self.client.set_terminated(run_id, "FINISHED" if status == "finished" else "FAILED")

    def _register(self, model: dict[str, Any]) -> None:
        folder = model["record"]["checkpoint"].get("peft_folder")
        if not folder or not Path(folder).is_dir():
            raise RuntimeError("the best round has no local PEFT folder to register in MLflow")
        self.client.log_artifacts(self.run_id, folder, "adapter")
        name = model["name"]
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name, description="registered by evaltune")
        artifact_uri = self.client.get_run(self.run_id).info.artifact_uri
        version = self.client.create_model_version(
            name,
            source=f"{artifact_uri}/adapter",
            run_id=self.run_id,
            tags={
                "evaltune.registry_id": model["id"],
                "evaltune.status": model["status"],
                "evaltune.round": str(model["round"]),
            },
        )
        self.client.set_registered_model_alias(name, model["status"], version.version)
