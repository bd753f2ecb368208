"""The files and fine-tuning jobs routes in-process, with a scripted ``JobRunner``: the upload
checks line by line, the job lifecycle (queued → running → succeeded, cancel, failure), OpenAI's
cursor pages, persistence across an app restart, and the routes staying off without a runner."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from evaltune.cli.finetune import _load, job_config
from evaltune.engine import Engine
from evaltune.errors import DataError, EvalError
from evaltune.server import ServerConfig, create_app
from evaltune.server.http import ApiError
from evaltune.server.jobs import JobOutcome, JobReport, JobSpec
from evaltune.server.uploads import check_chat_jsonl, file_kind

KEY = "tml-unit-test"
H = {"Authorization": f"Bearer {KEY}"}
GOOD = json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "2+2?"},
                                {"role": "assistant", "content": "4", "weight": 1}]})  # fmt: skip


PAIR = json.dumps({"input": {"messages": [{"role": "user", "content": "2+2?"}]},
                   "preferred_output": [{"role": "assistant", "content": "4"}],
                   "non_preferred_output": [{"role": "assistant", "content": "5"}]})  # fmt: skip


def pair_with(**change: Any) -> str:
    record = json.loads(PAIR)
    for key, value in change.items():
        record[key] = value
    return json.dumps(record)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (pair_with(input={"messages": [{"role": "system", "content": "s"},
                                      {"role": "user", "content": "q"}]}),
         "input.messages: evaltune trains preferences on one user message"),
        (pair_with(input={"messages": [{"role": "user", "content": "q"}], "tools": [{"x": 1}]}),
         "input.tools: tools are not supported"),
        (pair_with(preferred_output=[{"role": "user", "content": "4"}]),
         "preferred_output[0].role: expected 'assistant'"),
        (pair_with(non_preferred_output=[{"role": "assistant", "content": ""}]),
         "non_preferred_output[0].content: expected a non-empty string"),
        (pair_with(non_preferred_output=[{"role": "assistant", "content": "4"}]),
         "preferred_output and non_preferred_output are the same answer"),
        (pair_with(weight=1), "unknown key 'weight'"),
        (GOOD, "line 2: a chat example, but line 1 is a preference example"),
    ],
)  # fmt: skip
def test_preference_files_are_checked_line_by_line(
    line: str, expected: str, tmp_path: Path
) -> None:
    assert check_chat_jsonl(f"{PAIR}\n{PAIR}\n".encode(), "prefs.jsonl") == 2
    (tmp_path / "p.jsonl").write_text(f"\n{PAIR}\n")
    (tmp_path / "c.jsonl").write_text(GOOD)
    assert file_kind(tmp_path / "p.jsonl") == "preference"
    assert file_kind(tmp_path / "c.jsonl") == "chat"
    with pytest.raises(ApiError) as caught:
        check_chat_jsonl(f"{PAIR}\n{line}\n".encode(), "prefs.jsonl")
    assert "prefs.jsonl" in caught.value.message and expected in caught.value.message


def test_a_dpo_job_becomes_pairs_a_held_out_suite_and_dpo_rounds(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    lines = [pair_with(input={"messages": [{"role": "user", "content": f"{i}+{i}?"}]},
                       preferred_output=[{"role": "assistant", "content": str(2 * i)}])
             for i in range(10)]  # fmt: skip
    (tmp_path / "prefs.jsonl").write_text("\n".join(lines) + "\n")
    spec = JobSpec("ftjob-1", str(tiny_model_dir), "tiny", tmp_path / "prefs.jsonl", None, 5,
                   {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": "auto",
                    "beta": "auto"}, method="dpo")  # fmt: skip
    config, notes = job_config(spec, tmp_path / "work")
    cfg = _load(config, tmp_path / "work")
    assert cfg.training.method == "dpo" and cfg.dpo.beta == 0.1
    assert cfg.dpo.steps_per_round == 3 and cfg.loop.max_rounds == 2  # 9 pairs kept, 4 a step
    assert notes == ["no validation_file: 1 of 10 training examples are held out to evaluate "
                     "each round"]  # fmt: skip
    pairs = [json.loads(x) for x in Path(cfg.dpo.pairs[0]).read_text().splitlines()]
    held = [json.loads(x) for x in Path(cfg.evals[0].file).read_text().splitlines()]
    assert len(pairs) == 9 and all(p["rejected"] == "5" for p in pairs)
    assert len(held) == 1 and held[0]["messages"][1]["role"] == "assistant"
    assert held[0]["messages"][0]["content"] not in {p["prompt"] for p in pairs}
    chosen = [json.loads(x) for x in Path(cfg.data.train[0]).read_text().splitlines()]
    assert [c["messages"][1]["content"] for c in chosen] == [p["chosen"] for p in pairs]


class Runner:
    """Reports two checkpoints; holds before finishing until ``go`` is set (or it is
    stopped); ``fail`` makes it raise an evaltune error instead."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.go = threading.Event()
        self.runs: list[str] = []
        self.fail: str | None = None

    def check_file(self, path: Path, filename: str) -> None:
        if filename == "refused.jsonl":
            raise DataError(f"{filename}:1: the data layer refuses this")

    def check_job(self, spec: JobSpec) -> None:
        if spec.extension.get("bad"):
            raise EvalError("evaltune.bad: not a run setting")

    def run(self, spec: JobSpec, folder: Path, report: JobReport) -> JobOutcome:
        self.runs.append(spec.id)
        assert spec.training_file.is_file() and spec.base_model
        for step in (1, 2):
            report.event(f"Step {step}", kind="metrics", data={"step": step})
            report.checkpoint(step, {"train_loss": 1.0 / step}, self.tmp)
        while not self.go.wait(0.01):
            report.check_stop()
        if self.fail:
            raise EvalError(self.fail)
        return JobOutcome(self.tmp, trained_tokens=42, hyperparameters={"n_epochs": 2})


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    return Engine(str(tiny_model_dir), device="cpu", dtype="fp32")


def app_for(engine: Engine, tmp: Path, runner: Runner | None) -> TestClient:
    config = ServerConfig(engine.model_path, KEY, tmp / "ckpt", "tiny", jobs_dir=tmp / "jobs",
                          job_runner=runner)  # fmt: skip
    return TestClient(create_app(config, engine))


@pytest.fixture
def app(engine: Engine, tmp_path: Path) -> Iterator[tuple[TestClient, Runner]]:
    runner = Runner(tmp_path)
    with app_for(engine, tmp_path, runner) as client:
        yield client, runner
        runner.go.set()


def upload(client: TestClient, text: str, name: str = "t.jsonl", purpose: str = "fine-tune"):
    return client.post("/v1/files", headers=H, files={"file": (name, text.encode())},
                       data={"purpose": purpose})  # fmt: skip


def error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["message"])


def wait_for(client: TestClient, job_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60  # only so a broken worker cannot hang the suite
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/fine_tuning/jobs/{job_id}", headers=H).json()
        if job["status"] in statuses:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {statuses}")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"messages": [{"role": "user", "content": "hi"}]}', "messages: no assistant message"),
        ('{"messages": []}', "messages: expected a non-empty list"),
        ('{"prompt": "x"}', "no 'messages' key; found keys prompt"),
        ('{"input": {}, "preferred_output": [], "non_preferred_output": []}', "input: expected an object with 'messages'"),
        ('[1, 2]', "expected a JSON object with 'messages'"),
        ('{"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]}',
         "messages[1].role: tool messages are not supported"),
        ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "tool_calls": []}]}',
         "messages[1].tool_calls: tool and function calls are not supported yet"),
        ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", '
         '"weight": 0}]}', "messages[1].weight: 0 is not supported yet"),
        ('{"messages": [{"role": "user", "content": [{"type": "image_url"}]}, {"role": '
         '"assistant", "content": "b"}]}', "messages[0].content: content parts (images) are not"),
        ('{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}, '
         '{"role": "assistant", "content": "b"}]}', "messages[1].role: 'system' is allowed only as the first"),
        ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, '
         '{"role": "user", "content": "c"}]}', "messages[2]: the last message must be the assistant"),
        ('{"messages": [{"role": "user", "content": "a", "x": 1}, {"role": "assistant", '
         '"content": "b"}]}', "messages[0]: unknown key 'x'"),
        ('{"messages": [{"role": "user", "content": "a"', "not JSON: Expecting ',' delimiter: column 46"),
    ],
)  # fmt: skip
def test_chat_files_are_checked_line_by_line(line: str, expected: str) -> None:
    assert check_chat_jsonl(f"{GOOD}\n\n{GOOD}\n".encode(), "ok.jsonl") == 2
    with pytest.raises(ApiError) as caught:
        check_chat_jsonl(f"{line}\n{GOOD}\n".encode(), "data.jsonl")
    assert caught.value.status == 400 and "data.jsonl" in caught.value.message
    assert f"line 1: {expected}" in caught.value.message


def test_files_are_stored_listed_read_and_deleted(app) -> None:
    client, _ = app
    info = upload(client, GOOD + "\n").json()
    assert info["object"] == "file" and info["purpose"] == "fine-tune" and info["bytes"] > 0
    assert client.get(f"/v1/files/{info['id']}", headers=H).json() == info
    assert client.get(f"/v1/files/{info['id']}/content", headers=H).text == GOOD + "\n"
    evals = upload(client, "anything, checked when a job uses it", purpose="evals").json()
    listed = client.get("/v1/files?purpose=evals", headers=H).json()["data"]
    assert [f["id"] for f in listed] == [evals["id"]]
    assert client.delete(f"/v1/files/{info['id']}", headers=H).json()["deleted"] is True
    assert "GET /v1/files" in error(client.get(f"/v1/files/{info['id']}", headers=H), 404)
    assert "refuses this" in error(upload(client, GOOD, name="refused.jsonl"), 400)
    assert "purpose 'assistants'" in error(upload(client, GOOD, purpose="assistants"), 400)
    assert "multipart" in error(client.post("/v1/files", headers=H, json={"a": 1}), 415)
    assert client.get("/v1/files", headers={}).status_code == 401


def test_a_job_runs_reports_and_is_served(app, tmp_path: Path) -> None:
    client, runner = app
    file_id = upload(client, GOOD + "\n").json()["id"]
    body = {"model": "tiny", "training_file": file_id, "suffix": "s1",
            "hyperparameters": {"n_epochs": 2}, "metadata": {"team": "a"}}  # fmt: skip
    job = client.post("/v1/fine_tuning/jobs", headers=H, json=body).json()
    assert job["status"] == "queued" and job["hyperparameters"]["batch_size"] == "auto"
    wait_for(client, job["id"], "running")
    runner.go.set()
    done = wait_for(client, job["id"], "succeeded")
    assert done["fine_tuned_model"] == f"ft:tiny:s1:{job['id'][6:]}"
    assert done["trained_tokens"] == 42 and done["metadata"] == {"team": "a"}
    models = {m["id"] for m in client.get("/v1/models", headers=H).json()["data"]}
    assert {done["fine_tuned_model"], f"{done['fine_tuned_model']}:ckpt-step-2"} <= models

    url = f"/v1/fine_tuning/jobs/{job['id']}"
    first = client.get(f"{url}/events?limit=2", headers=H).json()
    assert first["has_more"] and [e["message"] for e in first["data"]] == [
        "The job has successfully completed", f"New fine-tuned model created: {done['fine_tuned_model']}"
    ]  # fmt: skip
    rest = client.get(f"{url}/events?after={first['data'][-1]['id']}&limit=100", headers=H).json()
    assert not rest["has_more"] and rest["data"][-1]["message"].startswith("Created fine-tuning")
    assert "not in this list" in error(client.get(f"{url}/events?after=x", headers=H), 400)
    assert "from 1 to 100" in error(client.get(f"{url}/events?limit=0", headers=H), 400)
    ckpts = client.get(f"{url}/checkpoints", headers=H).json()
    assert [c["step_number"] for c in ckpts["data"]] == [2, 1] and "adapter" not in ckpts["data"][0]
    assert ckpts["first_id"] == ckpts["data"][0]["id"]
    assert "already succeeded" in error(client.post(f"{url}/cancel", headers=H), 400)


def test_cancel_stops_a_running_job_and_failures_are_reported(app) -> None:
    client, runner = app
    file_id = upload(client, GOOD + "\n").json()["id"]
    body = {"model": "tiny", "training_file": file_id}
    job = client.post("/v1/fine_tuning/jobs", headers=H, json=body).json()
    wait_for(client, job["id"], "running")
    cancelled = client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=H).json()
    assert cancelled["status"] == "cancelled"
    runner.fail = "the suite could not be graded"
    second = client.post("/v1/fine_tuning/jobs", headers=H, json=body).json()
    wait_for(client, second["id"], "running")  # the cancelled one gave the worker back
    runner.go.set()
    failed = wait_for(client, second["id"], "failed")
    assert failed["error"]["message"] == "the suite could not be graded"
    assert wait_for(client, job["id"], "cancelled")["fine_tuned_model"] is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"method": {"type": "dpo"}}, "holds chat examples; a dpo job needs preference examples"),
        ({"method": {"type": "reinforcement"}}, "method 'reinforcement' is not supported yet"),
        ({"hyperparameters": {"n_epochs": 2}, "method": {"type": "supervised", "supervised": {
            "hyperparameters": {"n_epochs": 3}}}}, "differ"),
        ({"learning_rate": 0.1}, "Extra inputs are not permitted"),
        ({"integrations": [{"type": "wandb"}]}, "integrations are not supported"),
        ({"validation_file": "file-x"}, "validation_file: no validation_file 'file-x'"),
        ({"evaltune": {"bad": True}}, "evaltune.bad"),
        ({"evaltune": {"evals": [{"file": "file-" + "1" * 24}]}},
         "evaltune.evals[0].file: no file 'file-111"),
        ({"suffix": "has spaces"}, "suffix"),
    ],
)  # fmt: skip
def test_bad_job_requests_are_400s(app, change: dict[str, Any], expected: str) -> None:
    client, _ = app
    file_id = upload(client, GOOD + "\n").json()["id"]
    body = {"model": "tiny", "training_file": file_id, **change}
    assert expected in error(client.post("/v1/fine_tuning/jobs", headers=H, json=body), 400)


def test_an_evals_file_cannot_be_training_data(app) -> None:
    client, _ = app
    evals = upload(client, GOOD + "\n", purpose="evals").json()["id"]
    body = {"model": "tiny", "training_file": evals}
    assert "upload it with purpose fine-tune" in error(
        client.post("/v1/fine_tuning/jobs", headers=H, json=body), 400
    )


def test_unfinished_jobs_resume_when_the_server_starts_again(
    engine: Engine, tmp_path: Path
) -> None:
    runner = Runner(tmp_path)
    with app_for(engine, tmp_path, runner) as client:
        file_id = upload(client, GOOD + "\n").json()["id"]
        body = {"model": "tiny", "training_file": file_id}
        job = client.post("/v1/fine_tuning/jobs", headers=H, json=body).json()
        wait_for(client, job["id"], "running")
        while not runner.runs:  # in the runner: "running" is on disk (not only in memory)
            time.sleep(0.01)
    # the app stopped with the job running: it stays running on disk, its files and events too
    again = Runner(tmp_path)
    again.go.set()
    with app_for(engine, tmp_path, again) as client:
        assert wait_for(client, job["id"], "succeeded")["fine_tuned_model"]
        events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events?limit=100", headers=H).json()
        assert "Resuming after a server restart" in [e["message"] for e in events["data"]]
        assert client.get(f"/v1/files/{file_id}", headers=H).status_code == 200
    assert again.runs == [job["id"]]


def test_without_a_runner_the_routes_say_how_to_turn_them_on(
    engine: Engine, tmp_path: Path
) -> None:
    with app_for(engine, tmp_path, None) as client:
        assert "evaltune serve" in error(client.get("/v1/fine_tuning/jobs", headers=H), 400)
        assert "not enabled" in error(upload(client, GOOD), 400)
