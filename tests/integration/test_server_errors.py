"""Bad requests against a real ``evaltune serve``: wrong keys, malformed bodies, unknown models,
oversize requests and failing work each get the right 4xx (or a failed future), never a 500,
and the server keeps serving afterwards."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import tinker
from tinker import types

from evaltune.backends.tinker import make_service_client
from serve_once import SharedServer, serve_once

POST_ROUTES = [
    "/api/v1/client/config",
    "/api/v1/create_session",
    "/api/v1/session_heartbeat",
    "/api/v1/create_model",
    "/api/v1/get_info",
    "/api/v1/forward_backward",
    "/api/v1/optim_step",
    "/api/v1/save_weights",
    "/api/v1/save_weights_for_sampler",
    "/api/v1/load_weights",
    "/api/v1/create_sampling_session",
    "/api/v1/join_sampling_session",
    "/api/v1/asample",
    "/api/v1/retrieve_future",
    "/api/v1/weights_info",
    "/v1/completions",
    "/v1/chat/completions",
]


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path) -> SharedServer:
    return serve_once(tiny_model_dir)


def http(server: SharedServer, key: str | None = "default") -> httpx.Client:
    headers = {} if key is None else {"X-API-Key": server.api_key if key == "default" else key}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=60)


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert set(error) == {"type", "message"}
    return error["message"]


def assert_serving(server: SharedServer) -> None:
    with http(server) as c:
        base = c.get("/v1/models").json()["data"][0]["id"]
        body = {"model": base, "prompt": "The quick", "max_tokens": 3}
        done = c.post("/v1/completions", json=body)
        assert done.status_code == 200 and done.json()["choices"][0]["text"] is not None


@pytest.mark.parametrize("key", [None, "tml-wrong", ""])
@pytest.mark.parametrize("route", ["/v1/models", "/api/v1/healthz", "/api/v1/training_runs"])
def test_wrong_or_missing_keys_are_401(server: SharedServer, key, route) -> None:
    with http(server, key) as c:
        assert_error(c.get(route), 401)
        assert_error(c.post("/api/v1/create_session", json={}), 401)


@pytest.mark.parametrize("route", POST_ROUTES)
def test_garbage_bodies_are_4xx_on_every_route(server: SharedServer, route: str) -> None:
    with http(server) as c:
        for body, ctype in (
            (b"\x00\xff{{not json", "application/json"),
            (b"[1, 2, 3]", "application/json"),
            (b'{"unexpected": true}', "application/json"),
            (b"\x0a\x05hello\x12\x03", "application/x-protobuf"),
        ):
            response = c.post(route, content=body, headers={"Content-Type": ctype})
            if route.endswith(("client/config", "heartbeat")) and response.status_code == 200:
                continue  # routes that ignore their body
            assert 400 <= response.status_code < 500, (route, body, response.text)
            assert "error" in response.json()
    assert_serving(server)


def test_unknown_models_and_checkpoints(server: SharedServer) -> None:
    with http(server) as c:
        assert "does not exist" in assert_error(
            c.post(
                "/v1/chat/completions",
                json={"model": "gpt-5", "messages": [{"role": "user", "content": "x"}]},
            ),
            404,
        )
        session = c.post(
            "/api/v1/create_session",
            json={"tags": [], "user_metadata": {}, "sdk_version": "0.38.0"},
        ).json()["session_id"]
        body = {
            "session_id": session,
            "model_seq_id": 0,
            "base_model": "llama",
            "lora_config": {"rank": 2},
        }
        assert "unknown base model 'llama'" in assert_error(
            c.post("/api/v1/create_model", json=body), 400
        )
        sampling = {
            "session_id": session,
            "sampling_session_seq_id": 0,
            "model_path": f"tinker://{session}:train:0/sampler_weights/nope",
        }
        assert_error(c.post("/api/v1/create_sampling_session", json=sampling), 404)
    assert_serving(server)


def test_oversize_requests_are_413(tiny_model_dir: Path) -> None:
    small = serve_once(tiny_model_dir, ("--max-body-mb", "1"))
    big = b'{"model": "x", "prompt": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    with http(small) as c:
        assert "--max-body-mb" in assert_error(c.post("/v1/completions", content=big), 413)

        def chunked():
            for i in range(0, len(big), 65536):
                yield big[i : i + 65536]

        assert_error(c.post("/v1/completions", content=chunked()), 413)
    assert_serving(small)


def test_failing_work_fails_its_future_only(server: SharedServer, tiny_model_dir: Path) -> None:
    service = make_service_client(server.base_url, server.key_env)
    tc = service.create_lora_training_client(str(tiny_model_dir), rank=4, seed=0).result()
    good = types.Datum(
        model_input=types.ModelInput.from_ints([2, 10, 11, 12]),
        loss_fn_inputs={"target_tokens": [10, 11, 12, 13]},
    )
    bad = types.Datum(
        model_input=types.ModelInput.from_ints([2, 10, 99_999]),
        loss_fn_inputs={"target_tokens": [10, 11, 12]},
    )
    with pytest.raises(tinker.RequestFailedError, match="outside the vocabulary"):
        tc.forward([bad], "cross_entropy").result()
    with pytest.raises(tinker.RequestFailedError, match="not supported"):
        tc.forward([good], "dpo").result()
    sampler = service.create_sampling_client(base_model=str(tiny_model_dir)).result()
    too_long = types.SamplingParams(max_tokens=500)  # under the server's cap, over the context
    with pytest.raises(tinker.RequestFailedError, match="context"):
        sampler.sample(types.ModelInput.from_ints([2, 10]), 1, too_long).result()
    over_cap = types.SamplingParams(max_tokens=100_000)  # refused before anything is queued
    with pytest.raises(tinker.BadRequestError, match="limit of 1024 tokens"):
        sampler.sample(types.ModelInput.from_ints([2, 10]), 1, over_cap).result()
    # ... and the same client and server carry on.
    assert tc.forward([good], "cross_entropy").result().metrics["loss:sum"] > 0
    assert_serving(server)
