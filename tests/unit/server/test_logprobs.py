"""``logprobs`` and ``echo`` on ``/v1/completions`` (what lm-evaluation-harness's loglikelihood
tasks send), in-process on the tiny model: the numbers are the engine's own prompt logprobs,
the top alternatives hold the greedy token, and what is not supported is a 400."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from evaltune.engine import Engine
from evaltune.server import ServerConfig, create_app

KEY = "tml-unit-test"
H = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def app(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    engine = Engine(str(tiny_model_dir), device="cpu", dtype="fp32")
    config = ServerConfig(str(tiny_model_dir), KEY, tmp_path_factory.mktemp("ckpt"), "tiny")
    with TestClient(create_app(config, engine)) as client:
        yield client, engine


def test_echo_scores_every_prompt_token_as_lm_eval_reads_them(app) -> None:
    client, engine = app
    prompt = engine.tokenizer("The capital of France is Paris").input_ids
    body = {
        "model": "tiny",
        "prompt": [prompt],
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": 1,
        "echo": True,
        "seed": 1234,
    }
    choice = client.post("/v1/completions", headers=H, json=body).json()["choices"][0]
    lp = choice["logprobs"]
    assert len(lp["token_logprobs"]) == len(prompt) + 1  # the prompt, then the one generated
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    expected = engine.submit(engine.logprobs, None, [prompt]).result()[0]
    for got, want in zip(lp["token_logprobs"][1 : len(prompt)], expected, strict=True):
        assert math.isclose(got, want, abs_tol=1e-4)
    for token_lp, top in zip(lp["token_logprobs"][1:], lp["top_logprobs"][1:], strict=True):
        assert len(top) == 1 and max(top.values()) >= token_lp - 1e-6
    # the generated token is greedy (temperature 0): it is the best alternative at its position
    assert math.isclose(lp["token_logprobs"][-1], max(lp["top_logprobs"][-1].values()))
    assert lp["text_offset"] == sorted(lp["text_offset"]) and lp["text_offset"][0] == 0
    assert choice["text"].startswith(engine.tokenizer.decode(prompt))


def test_max_tokens_zero_with_echo_scores_the_prompt_alone(app) -> None:
    client, _ = app
    body = {
        "model": "tiny",
        "prompt": "The quick brown fox",
        "max_tokens": 0,
        "echo": True,
        "logprobs": 3,
    }
    choice = client.post("/v1/completions", headers=H, json=body).json()["choices"][0]
    assert choice["text"] == "The quick brown fox"
    assert all(len(t) == 3 for t in choice["logprobs"]["top_logprobs"][1:])
    assert len(choice["logprobs"]["tokens"]) == len(choice["logprobs"]["token_logprobs"])


def test_logprobs_without_echo_cover_the_generated_tokens(app) -> None:
    client, _ = app
    body = {
        "model": "tiny",
        "prompt": "Numbers 0 1 2",
        "max_tokens": 4,
        "temperature": 0,
        "logprobs": 2,
    }
    data = client.post("/v1/completions", headers=H, json=body).json()
    lp = data["choices"][0]["logprobs"]
    assert len(lp["token_logprobs"]) == data["usage"]["completion_tokens"]
    assert None not in lp["token_logprobs"]
    assert "".join(lp["tokens"]).startswith(data["choices"][0]["text"])


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/v1/completions", {"prompt": "hi", "max_tokens": 0}, "only with echo"),
        ("/v1/completions", {"prompt": "hi", "logprobs": 21}, "logprobs"),
        ("/v1/completions", {"prompt": "hi", "echo": True, "stream": True}, "stream"),
        ("/v1/completions", {"prompt": [[]], "echo": True}, "empty token list"),
        (
            "/v1/completions",
            {"prompt": [[10**6]], "echo": True, "max_tokens": 0, "logprobs": 1},
            "outside the vocabulary",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "logprobs": True},
            "logprobs is not supported",
        ),
    ],
)
def test_unsupported_or_bad_scoring_requests_are_400(app, path, body, expected) -> None:
    client, _ = app
    response = client.post(path, headers=H, json={"model": "tiny", **body})
    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]["message"]
