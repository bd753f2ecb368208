"""OpenAI's fine-tuning API on a real ``evaltune serve`` (127.0.0.1, the tiny model), driven by
the official ``openai`` client as a script written for OpenAI would drive it: upload, create a
job, poll it to ``succeeded``, read its events and checkpoints, chat with the fine-tuned model.
A malformed upload is a 400 naming its line; a server killed in the middle of a job finishes
it after a restart, without repeating a round."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from evaltune.server.launch import ServerProcess, launch_server
from tiny import write_tiny_model

# Prefix-stable (a conversation renders as a prefix of a longer one) with an end-of-turn
# marker, so the chat_template renderer trains on it and /v1/chat/completions asks with it.
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'assistant' %}"
    "model: {{ m['content'] }}<eos>\n{% else %}{{ m['role'] }}: {{ m['content'] }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}model:{% endif %}"
)
FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = write_tiny_model(tmp_path_factory.mktemp("tiny-chat"), chat_template=TEMPLATE)
    return folder


def sums(numbers: range) -> str:
    return "".join(
        json.dumps({"messages": [
            {"role": "user", "content": f"What is {i} plus {i}?"},
            {"role": "assistant", "content": str(2 * i)},
        ]}) + "\n"
        for i in numbers
    )  # fmt: skip


def serve(model: Path, tmp: Path) -> ServerProcess:
    return launch_server(
        str(model),
        checkpoint_dir=tmp / "ckpt",
        extra_args=("--jobs-dir", str(tmp / "jobs"), "--served-model-name", "tiny"),
    )


def client_of(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0)


def upload(client: openai.OpenAI, path: Path, text: str, purpose: Any = "fine-tune") -> str:
    path.write_text(text)
    with open(path, "rb") as f:
        return client.files.create(file=f, purpose=purpose).id


def wait(client: openai.OpenAI, job_id: str) -> Any:
    """The job once it has finished (polled as an OpenAI script polls; the deadline only keeps
    a broken server from hanging the suite)."""
    deadline = time.monotonic() + 900
    job = client.fine_tuning.jobs.retrieve(job_id)
    while job.status not in FINISHED and time.monotonic() < deadline:
        time.sleep(0.3)
        job = client.fine_tuning.jobs.retrieve(job_id)
    return job


@pytest.fixture(scope="module")
def server(chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serve(chat_model, tmp_path_factory.mktemp("serve")) as process:
        yield process


def test_a_job_trains_evaluates_and_serves_its_model(server: ServerProcess, tmp_path: Path) -> None:
    client = client_of(server)
    train = upload(client, tmp_path / "train.jsonl", sums(range(12)))
    valid = upload(client, tmp_path / "valid.jsonl", sums(range(12, 15)))
    assert client.files.retrieve(train).filename == "train.jsonl"
    created = client.fine_tuning.jobs.create(
        model="tiny",
        training_file=train,
        validation_file=valid,
        suffix="sums",
        seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 150}}},
    )  # fmt: skip
    assert created.status == "queued" and created.fine_tuned_model is None
    assert created.id in [j.id for j in client.fine_tuning.jobs.list().data]

    job = wait(client, created.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:tiny:sums:{job.id.removeprefix('ftjob-')}"
    assert job.trained_tokens and job.trained_tokens > 0

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=5))  # pages through all
    assert events[0].message == "The job has successfully completed"  # newest first
    steps = [e for e in events if e.type == "metrics"]
    assert [e.data["step"] for e in steps][::-1] == list(range(1, 7))  # 2 rounds × 3 steps
    assert all(e.data["train_loss"] > 0 for e in steps)
    assert any("validation: accuracy" in e.message for e in events)

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [6, 3]
    assert all(c.metrics.train_loss and c.metrics.valid_loss for c in checkpoints)
    served = {m.id for m in client.models.list().data}
    assert {job.fine_tuned_model, *(c.fine_tuned_model_checkpoint for c in checkpoints)} <= served

    def answer(model: str) -> str:
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "What is 3 plus 3?"}],
            max_tokens=6, temperature=0,
        )  # fmt: skip
        return reply.choices[0].message.content or ""

    assert answer(job.fine_tuned_model) != answer("tiny")  # the trained adapter answers


def preferences(numbers: range) -> str:
    """OpenAI's DPO format: the right sum preferred to a wrong one."""
    return "".join(
        json.dumps({
            "input": {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}]},
            "preferred_output": [{"role": "assistant", "content": str(2 * i)}],
            "non_preferred_output": [{"role": "assistant", "content": str(2 * i + 1)}],
        }) + "\n"
        for i in numbers
    )  # fmt: skip


def test_a_dpo_job_trains_on_preference_pairs_and_serves_its_model(
    server: ServerProcess, tmp_path: Path
) -> None:
    client = client_of(server)
    train = upload(client, tmp_path / "prefs.jsonl", preferences(range(10)))
    created = client.fine_tuning.jobs.create(
        model="tiny",
        training_file=train,
        suffix="dpo",
        seed=3,
        method={"type": "dpo", "dpo": {"hyperparameters": {
            "n_epochs": 2, "batch_size": 3, "beta": 0.2, "learning_rate_multiplier": 150}}},
    )  # fmt: skip
    assert created.method.type == "dpo" and created.method.dpo.hyperparameters.beta == 0.2
    job = wait(client, created.id)
    assert job.status == "succeeded", job.error
    assert job.method.type == "dpo" and job.hyperparameters.n_epochs == 2
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert any("1 of 10 training examples are held out" in e.message for e in events)
    steps = [e for e in events if e.type == "metrics"]
    # 9 pairs kept, 3 a step: 3 DPO steps a round, each with DPO's loss (log 2 at the start)
    assert [e.data["step"] for e in steps][::-1] == list(range(1, 7))
    assert all(0 < e.data["train_loss"] < 2 for e in steps)
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [6, 3]
    reply = client.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": "What is 3 plus 3?"}],
        max_tokens=4, temperature=0,
    )  # fmt: skip
    assert reply.choices[0].message.content is not None


def test_bad_uploads_and_jobs_are_400s_that_say_what_to_fix(
    server: ServerProcess, tmp_path: Path
) -> None:
    client = client_of(server)
    bad = (
        sums(range(2)) + '{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", '
        '"content": "x"}]}\n{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n'
    )
    with pytest.raises(openai.BadRequestError) as caught:
        upload(client, tmp_path / "bad.jsonl", bad)
    message = caught.value.body["message"]
    assert "bad.jsonl" in message and "line 3: messages[1].role: expected one of system" in message
    assert "line 4: messages: no assistant message" in message and "line 5: not JSON" in message
    with pytest.raises(openai.BadRequestError, match="purpose 'batch' is not supported"):
        upload(client, tmp_path / "b.jsonl", sums(range(2)), purpose="batch")

    train = upload(client, tmp_path / "t.jsonl", sums(range(4)))
    refusals = {
        "training_file: file-": {"method": {"type": "dpo", "dpo": {}}},  # chat, not pairs
        "method 'reinforcement' is not supported yet": {"method": {"type": "reinforcement"}},
        "training_file: no training_file 'file-": {"training_file": "file-" + "0" * 24},
        "cannot be fine-tuned here": {"model": "gpt-4o-mini"},
        "n_epochs": {"hyperparameters": {"n_epochs": 0}},
        "Extra inputs are not permitted": {"hyperparameters": {"epochs": 3}},
        "evaltune.base_model: set by the job": {"extra_body": {"evaltune": {"base_model": "x"}}},
        "evals.0.grader": {"extra_body": {"evaltune": {"evals": [
            {"name": "e", "file": str(tmp_path / "t.jsonl"), "grader": "exat",
             "threshold": 0.5}]}}},
    }  # fmt: skip
    for expected, change in refusals.items():
        args = {"model": "tiny", "training_file": train, **change}
        with pytest.raises(openai.BadRequestError) as caught:
            client.fine_tuning.jobs.create(**args)
        assert expected in caught.value.body["message"], (expected, caught.value.body)
    with pytest.raises(openai.NotFoundError, match="no fine-tuning job"):
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    keyless = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="tml-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        keyless.files.list()
    client.files.delete(train)
    assert train not in [f.id for f in client.files.list().data]


GATE = '''
import time
from pathlib import Path

GATE = Path({folder!r})


def gate(response, target, example):
    """Scores 0; the first call after {hold} holds until the test releases it."""
    calls = GATE / "calls"
    n = int(calls.read_text()) + 1 if calls.exists() else 1
    calls.write_text(str(n))
    if n > {hold} and not (GATE / "release").exists():
        (GATE / "reached").write_text(str(n))
        while not (GATE / "release").exists():
            time.sleep(0.05)
    return 0.0
'''


def test_a_server_killed_mid_job_finishes_it_after_a_restart(
    chat_model: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    items = 3  # the eval suite's items: round 0 and round 1 grade 6, round 2 is held
    (tmp_path / "gate.py").write_text(GATE.format(folder=str(gate), hold=2 * items))
    with serve(chat_model, tmp_path) as first:
        client = client_of(first)
        train = upload(client, tmp_path / "train.jsonl", sums(range(8)))
        evals = upload(client, tmp_path / "evals.jsonl", sums(range(20, 20 + items)), "evals")
        job = client.fine_tuning.jobs.create(
            model="tiny", training_file=train, seed=3,
            hyperparameters={"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 100},
            extra_body={"evaltune": {
                "evals": [{"name": "gated", "file": evals, "grader": "python",
                           "function": f"{tmp_path / 'gate.py'}:gate", "threshold": 1.0}],
                "loop": {"plateau_rounds": 0},
            }},
        )  # fmt: skip
        while not (gate / "reached").exists():  # round 2 is trained and being evaluated
            status = client.fine_tuning.jobs.retrieve(job.id).status
            assert first.alive() and status in ("queued", "running")
            time.sleep(0.1)
        first.process.kill()  # no drain, no goodbye: as a crash or an OOM kill
        first.process.wait()
    (gate / "release").write_text("")
    with serve(chat_model, tmp_path) as second:
        client = client_of(second)
        done = wait(client, job.id)
        assert done.status == "succeeded", done.error
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id)]
        assert "Resuming after a server restart" in messages
        checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
        assert [c.step_number for c in checkpoints] == [4, 2]  # each round once, 2 steps each
        steps = [e for e in client.fine_tuning.jobs.list_events(job.id) if e.type == "metrics"]
        assert sorted(e.data["step"] for e in steps) == [1, 2, 3, 4]  # no step trained twice
        assert done.fine_tuned_model in {m.id for m in client.models.list().data}
