"""A loop on the tiny model with every sink on: the best round lands in the registry, MLflow
(read back with MlflowClient) holds the numbers of summary.json, the HTTP endpoint (a local
server started here) gets each round, the alerts and the API key, trackio writes its project;
with the endpoint down the run still finishes, and says so in one line."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from evaltune.cli import app
from evaltune.config import load_config
from evaltune.loop import run_loop
from evaltune.registry import Registry

KEY = "evalops-secret-5d1c0e7a9b3f42d8a6"


class Endpoint:
    """An EvalOps-style endpoint on 127.0.0.1 that keeps what it is sent."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.docs.append(json.loads(body))
                outer.auth.append(self.headers.get("Authorization"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/submit"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/submit"  # nothing listens there any more


def write_config(tmp: Path, model: Path, tracking: dict[str, Any]) -> Path:
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    for name, rows, answer in (("train", range(8), str), ("eval", range(12, 16), lambda i: "zz")):
        with open(data / f"{name}.jsonl", "w") as f:
            for i in rows:
                tag = "odd" if i % 2 else "even"
                row = {"question": f"What is {i} plus {i}?", "answer": answer(2 * i), "tags": [tag]}
                f.write(json.dumps(row) + "\n")
    config = {
        "base_model": str(model),
        "data": {"train": str(data / "train.jsonl"), "renderer": "role_colon"},
        "lora": {"rank": 8},
        "training": {"batch_size": 4, "steps_per_round": 3, "learning_rate": 1e-2},
        "evals": [{"name": "qa", "file": str(data / "eval.jsonl"), "threshold": 0.9,
                   "max_tokens": 4}],
        "loop": {"max_rounds": 1},
        "output": {"workspace": str(tmp / "ws"), "run_name": "tracked"},
        "tracking": tracking,
    }  # fmt: skip
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_run_registers_its_best_round_and_reports_to_every_sink(
    tiny_model_dir: Path, tmp_path: Path, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALOPS_API_KEY", KEY)
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "ws" / "trackio"))
    tracking = {
        "mlflow": {"enabled": True},
        "trackio": {"enabled": True},
        "http": {"enabled": True, "url": endpoint.url, "suite_id": "demo-suite"},
    }
    messages: list[str] = []

    class Rep:
        def message(self, text: str) -> None:
            messages.append(text)

        def start(self, *a: Any) -> None: ...
        def advance(self, *a: Any) -> None: ...
        def finish(self, *a: Any) -> None: ...

    run = run_loop(load_config(write_config(tmp_path, tiny_model_dir, tracking)), Rep())
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["best"]["round"] == 1
    assert not [m for m in messages if m.startswith("tracking:")], messages
    ws = tmp_path / "ws"

    # the registry: the best round as a candidate, with its evidence
    (model,) = Registry(ws / "registry.sqlite").list()
    assert model["id"] == "tracked-v1" and model["status"] == "candidate"
    assert model["record"]["lineage"] == {
        "run_id": run.run_id, "run_path": str(run.path.resolve()), "round": 1,
        "parent_model": str(tiny_model_dir),
    }  # fmt: skip
    assert any("registry: round 1 is tracked-v1" in m for m in messages)
    listed = CliRunner().invoke(app, ["registry", "list", "--workspace", str(ws)])
    assert listed.exit_code == 0, listed.output
    assert "tracked-v1" in listed.output and "candidate" in listed.output

    # MLflow, read back with its own client: the numbers of summary.json
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("evaltune")
    (mrun,) = client.search_runs([experiment.experiment_id])
    assert mrun.info.status == "FINISHED" and mrun.data.tags["evaltune.run_id"] == run.run_id
    assert mrun.data.params["lora.rank"] == "8" and mrun.data.params["loop.max_rounds"] == "1"
    history = client.get_metric_history(mrun.info.run_id, "eval/qa/accuracy")
    assert {(m.step, m.value) for m in history} == {
        (rd["round"], rd["evals"]["qa"]["metrics"]["accuracy"]) for rd in summary["rounds"]
    }
    ci = client.get_metric_history(mrun.info.run_id, "eval/qa/accuracy_ci_high")
    assert {m.step: m.value for m in ci}[1] == summary["rounds"][1]["evals"]["qa"]["metrics"][
        "accuracy_ci_high"
    ]
    steps = json.loads((run.path / "rounds" / "1" / "train.json").read_text())["steps"]
    loss = client.get_metric_history(mrun.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in sorted(loss, key=lambda m: m.step)] == [
        (s["step"], s["loss"]) for s in steps
    ]
    assert mrun.data.metrics["best/target_score"] == summary["best"]["target_score"]
    artifacts = {a.path for a in client.list_artifacts(mrun.info.run_id)}
    assert {"summary.json", "report.md", "report.html", "EXPERIMENT.md", "adapter"} <= artifacts
    version = client.get_model_version_by_alias("tracked", "candidate")
    assert (
        version.run_id == mrun.info.run_id and version.tags["evaltune.registry_id"] == "tracked-v1"
    )
    promoted = CliRunner().invoke(
        app, ["registry", "promote", "tracked-v1", "--to", "staging", "--workspace", str(ws)]
    )
    assert "mlflow: tracked alias staging → tracked-v1" in promoted.output, promoted.output
    staged = client.get_model_version_by_alias("tracked", "staging")
    assert staged.version == version.version

    # the HTTP endpoint: each round, the alert, the end; the key only in the header
    kinds = [d["type"] for d in endpoint.docs]
    assert kinds == ["run_started", "round", "round", "alert", "run_finished"], kinds
    assert set(endpoint.auth) == {f"Bearer {KEY}"}
    rounds = [d for d in endpoint.docs if d["type"] == "round"]
    assert [d["metrics"]["eval/qa/accuracy"] for d in rounds] == [
        rd["evals"]["qa"]["metrics"]["accuracy"] for rd in summary["rounds"]
    ]
    (alert,) = [d for d in endpoint.docs if d["type"] == "alert"]
    assert alert["kind"] == "target_missed" and alert["suite_id"] == "demo-suite"
    assert endpoint.docs[-1]["model_id"] == "tracked-v1"

    # trackio's local project, and no file anywhere holds the API key
    assert list((ws / "trackio").glob("*.db"))
    holding = [p for p in ws.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert holding == []


def test_a_run_completes_while_the_endpoint_is_down(tiny_model_dir: Path, tmp_path: Path) -> None:
    http = {"enabled": True, "url": closed_port_url(), "retries": 2, "backoff_s": 0.01}
    messages: list[str] = []

    class Rep:
        def message(self, text: str) -> None:
            messages.append(text)

        def start(self, *a: Any) -> None: ...
        def advance(self, *a: Any) -> None: ...
        def finish(self, *a: Any) -> None: ...

    run = run_loop(load_config(write_config(tmp_path, tiny_model_dir, {"http": http})), Rep())
    assert json.loads((run.path / "state.json").read_text())["status"] == "finished"
    down = [m for m in messages if m.startswith("tracking: http could not record")]
    assert len(down) == 5 and all("after 3 attempts" in m for m in down), down
    assert any(e["event"] == "tracking_failed" for e in run.events())
    assert Registry(tmp_path / "ws" / "registry.sqlite").list()  # registered all the same
