"""The app in-process on the tiny model (no port, no subprocess): OpenAI routes, the Tinker
routes' refusals, and JSON errors everywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from evaltune.engine import Engine, SampleSpec
from evaltune.server import ServerConfig, create_app
from tiny import CHAT_TEMPLATE, write_tiny_model

KEY = "tml-unit-test"
H = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = write_tiny_model(tmp_path_factory.mktemp("tiny-chat"), chat_template=CHAT_TEMPLATE)
    return folder


def client_for(model: Path, tmp: Path) -> Iterator[tuple[TestClient, Engine]]:
    engine = Engine(str(model), device="cpu", dtype="fp32")
    config = ServerConfig(str(model), KEY, tmp / "ckpt", served_model_name="tiny")
    with TestClient(create_app(config, engine)) as client:
        yield client, engine


@pytest.fixture(scope="module")
def app(chat_model: Path, tmp_path_factory: pytest.TempPathFactory):
    yield from client_for(chat_model, tmp_path_factory.mktemp("srv"))


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"type", "message"}
    return body["error"]["message"]


def test_models_lists_the_base_model(app) -> None:
    client, _ = app
    data = client.get("/v1/models", headers=H).json()["data"]
    assert [m["id"] for m in data] == ["tiny"]


def test_completion_is_the_engines_greedy_sample(app) -> None:
    client, engine = app
    prompt = "The quick brown fox"
    ids = engine.tokenizer(prompt).input_ids
    spec = SampleSpec(prompt=ids, max_tokens=6, temperature=0.0)
    (expected,) = engine.submit(engine.sample, None, [spec]).result()[0:1]
    body = client.post(
        "/v1/completions",
        headers=H,
        json={"model": "tiny", "prompt": prompt, "max_tokens": 6, "temperature": 0},
    ).json()
    (choice,) = body["choices"]
    assert choice["text"] == engine.tokenizer.decode(expected[0].tokens, skip_special_tokens=True)
    assert body["usage"]["prompt_tokens"] == len(ids)
    assert choice["finish_reason"] in ("stop", "length")


def test_stop_strings_are_cut_and_seeds_repeat(app) -> None:
    client, _ = app
    req = {"model": "tiny", "prompt": "The capital of", "max_tokens": 12, "temperature": 0}
    free = client.post("/v1/completions", headers=H, json=req).json()["choices"][0]["text"]
    assert len(free) > 4
    stop = free[2:4]
    cut = client.post("/v1/completions", headers=H, json={**req, "stop": [stop]}).json()
    assert cut["choices"][0]["text"] == free[: free.find(stop)]
    assert cut["choices"][0]["finish_reason"] == "stop"
    sampled = {**req, "temperature": 1.0, "n": 3, "seed": 11}
    first = client.post("/v1/completions", headers=H, json=sampled).json()["choices"]
    again = client.post("/v1/completions", headers=H, json=sampled).json()["choices"]
    assert len(first) == 3 and [c["text"] for c in first] == [c["text"] for c in again]


def test_chat_uses_the_template_and_streams(app) -> None:
    client, _ = app
    req = {"model": "tiny", "messages": [{"role": "user", "content": "hello there!"}],
           "max_tokens": 5, "temperature": 0}  # fmt: skip
    body = client.post("/v1/chat/completions", headers=H, json=req).json()
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and isinstance(message["content"], str)
    assert body["usage"]["prompt_tokens"] > 3
    with client.stream(
        "POST", "/v1/chat/completions", headers=H, json={**req, "stream": True}
    ) as stream:
        lines = [line for line in stream.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len({c["id"] for c in chunks}) == 1  # one stream, one id
    deltas = [c["choices"][0]["delta"].get("content", "") for c in chunks]
    assert "".join(deltas) == message["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == body["choices"][0]["finish_reason"]


@pytest.mark.parametrize(
    ("route", "body", "status", "needle"),
    [
        ("/v1/completions", {"model": "nope", "prompt": "x"}, 404, "/v1/models"),
        ("/v1/completions", {"model": "tiny", "prompt": "x", "temperature": 5}, 400, "temperature"),
        ("/v1/completions", {"model": "tiny", "prompt": "x", "n": 0}, 400, "n"),
        ("/v1/completions", {"model": "tiny", "prompt": "x", "logprobs": 99}, 400, "logprobs"),
        ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                  "logprobs": True}, 400, "logprobs"),
        ("/v1/completions", {"model": "tiny"}, 400, "prompt"),
        ("/v1/chat/completions", {"model": "tiny", "messages": []}, 400, "messages"),
        ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "x"}]}, 400, "role"),
        ("/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": 500}, 400, "context"),
        ("/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": 10_000}, 400, "limit of 1024"),
        ("/api/v1/create_model", {"session_id": "s", "model_seq_id": 0, "base_model": "m"}, 404, "session"),
        ("/api/v1/get_info", {"model_id": "s:train:9"}, 404, "no training model"),
        ("/api/v1/retrieve_future", {"request_id": "req-x"}, 404, "req-x"),
        ("/api/v1/create_sampling_session", {"session_id": "s", "sampling_session_seq_id": 0,
                                             "model_path": "tinker://m/sampler_weights/x"}, 404, "not found"),
        ("/api/v1/create_sampling_session", {"session_id": "s", "sampling_session_seq_id": 0,
                                             "model_path": "tinker://m/other/x"}, 400, "malformed"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_4xx_json_error(app, route, body, status, needle) -> None:
    client, _ = app
    assert needle in error_of(client.post(route, headers=H, json=body), status)


def test_unknown_base_model_lists_the_supported_one(app, chat_model: Path) -> None:
    client, _ = app
    session = client.post(
        "/api/v1/create_session",
        headers=H,
        json={"tags": [], "user_metadata": {}, "sdk_version": "0.38.0"},
    ).json()["session_id"]
    body = {"session_id": session, "model_seq_id": 0, "base_model": "Qwen/Qwen3-8B",
            "lora_config": {"rank": 4}}  # fmt: skip
    message = error_of(client.post("/api/v1/create_model", headers=H, json=body), 400)
    assert "Qwen/Qwen3-8B" in message and str(chat_model) in message


def test_protocol_refusals(app) -> None:
    client, _ = app
    json_fb = client.post("/api/v1/forward_backward", headers=H, json={"model_id": "m"})
    assert "protobuf" in error_of(json_fb, 415)
    garbage = client.post(
        "/api/v1/forward_backward",
        headers={**H, "Content-Type": "application/x-protobuf"},
        content=b"\xff\x00garbage",
    )
    error_of(garbage, 400)
    error_of(client.get("/api/v1/nowhere", headers=H), 404)
    error_of(client.get("/api/v1/create_session", headers=H), 405)
    assert client.get("/v1/models").status_code == 401


def test_chat_without_a_template_points_to_completions(tiny_model_dir: Path, tmp_path) -> None:
    for client, _ in client_for(tiny_model_dir, tmp_path):
        req = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
        assert "/v1/completions" in error_of(
            client.post("/v1/chat/completions", headers=H, json=req), 400
        )


def test_idle_sessions_are_released_with_a_clear_message(app, chat_model: Path) -> None:
    client, _ = app
    state = client.app.state.evaltune
    new = {"tags": [], "user_metadata": {}, "sdk_version": "0.38.0"}
    session = client.post("/api/v1/create_session", headers=H, json=new).json()["session_id"]
    body = {"session_id": session, "model_seq_id": 0, "base_model": "tiny",
            "lora_config": {"rank": 2}}  # fmt: skip
    assert client.post("/api/v1/create_model", headers=H, json=body).status_code == 200
    model_id = f"{session}:train:0"
    assert (
        client.post("/api/v1/get_info", headers=H, json={"model_id": model_id}).status_code == 200
    )
    state.sessions[session].seen -= 10_000  # as if its client had died long ago
    client.post("/api/v1/session_heartbeat", headers=H, json={"session_id": "s-other"})
    gone = client.post("/api/v1/get_info", headers=H, json={"model_id": model_id})
    assert "sent nothing" in error_of(gone, 404)
    assert session not in state.sessions


def test_an_adapter_for_another_base_model_is_refused_on_every_route(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """One rule (``ServerState.check_adapter_base``) on the OpenAI routes, Tinker's sampling
    session and its load_weights: a 400 naming both models, before any work is queued."""
    folder = tmp_path / "ckpt" / "run-1" / "sampler_weights" / "r1"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "evaltune_checkpoint.json").write_text(json.dumps({"base_model": "org/other-7b"}))
    uri = "tinker://run-1/sampler_weights/r1"
    for client, _ in client_for(tiny_model_dir, tmp_path):
        body = {"model": "run-1/r1", "prompt": "hi", "max_tokens": 2}
        message = error_of(client.post("/v1/completions", headers=H, json=body), 400)
        assert "org/other-7b" in message and "--base-model org/other-7b" in message
        session = client.post(
            "/api/v1/create_session",
            headers=H,
            json={"tags": [], "user_metadata": {}, "sdk_version": "0.38.0"},
        ).json()["session_id"]
        body = {"session_id": session, "sampling_session_seq_id": 0, "model_path": uri}
        message = error_of(
            client.post("/api/v1/create_sampling_session", headers=H, json=body), 400
        )
        assert uri in message and "org/other-7b" in message
        body = {"session_id": session, "model_seq_id": 0, "path": uri, "optimizer": False}
        message = error_of(client.post("/api/v1/load_weights", headers=H, json=body), 400)
        assert uri in message and "org/other-7b" in message
