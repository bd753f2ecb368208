"""Hostile request bodies (issue 12): unbounded seeds, very deep nesting and huge integers are
each a 400 with the route's error shape and a message that names the problem, never a 500; the
server keeps serving afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from evaltune.engine import Engine
from evaltune.server import ServerConfig, create_app
from evaltune.server.http import MAX_INT_DIGITS, MAX_JSON_DEPTH, ApiError, parse_json

KEY = "tml-hostile-test"
H = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
SEEDS = [2**64, -(2**63) - 1, 10**30]
COMPLETION = b'{"model": "tiny", "prompt": "x", "max_tokens": 2, "seed": %d}'
CHAT = b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "seed": %d}'
ASAMPLE = (
    b'{"prompt": {"chunks": [{"type": "encoded_text", "tokens": [5, 6]}]}, "num_samples": 1,'
    b' "base_model": "tiny", "sampling_params": {"max_tokens": 2, "seed": %d}}'
)


@pytest.fixture(scope="module")
def client(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    engine = Engine(str(tiny_model_dir), device="cpu", dtype="fp32")
    ckpt = tmp_path_factory.mktemp("hostile") / "ckpt"
    config = ServerConfig(str(tiny_model_dir), KEY, ckpt, served_model_name="tiny")
    with TestClient(create_app(config, engine), raise_server_exceptions=False) as c:
        yield c


def error_of(response, status: int = 400) -> str:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
    return body["error"]["message"]


def still_serving(client: TestClient) -> None:
    ok = client.post("/v1/completions", headers=H, content=COMPLETION % 7)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("route", ["/v1/completions", "/v1/chat/completions", "/api/v1/asample"])
def test_unbounded_seeds_are_400(client: TestClient, route: str, seed: int) -> None:
    body = {"/v1/completions": COMPLETION, "/v1/chat/completions": CHAT}.get(route, ASAMPLE)
    assert "seed" in error_of(client.post(route, headers=H, content=body % seed))
    still_serving(client)


@pytest.mark.parametrize("route", ["/v1/completions", "/api/v1/asample", "/api/v1/create_session"])
def test_deep_nesting_and_huge_integers_are_400(client: TestClient, route: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert "nested deeper" in error_of(client.post(route, headers=H, content=deep))
    shallow_enough_to_parse = b'{"a": ' + b"[" * 200 + b"]" * 200 + b"}"
    error_of(client.post(route, headers=H, content=shallow_enough_to_parse))
    huge = b'{"model": "tiny", "prompt": "x", "max_tokens": ' + b"9" * 5000 + b"}"
    assert "5000 digits" in error_of(client.post(route, headers=H, content=huge))
    for constant in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        body = b'{"model": "tiny", "prompt": "x", "temperature": ' + constant + b"}"
        error_of(client.post(route, headers=H, content=body))
    still_serving(client)


def test_parse_json_bounds() -> None:
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(ApiError, match="nested deeper"):
        parse_json(b'{"x": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}")
    assert parse_json(b"-" + b"9" * MAX_INT_DIGITS) == -int("9" * MAX_INT_DIGITS)
    with pytest.raises(ApiError, match="digits"):
        parse_json(b"9" * (MAX_INT_DIGITS + 1))
    for garbage in (b"\xff\xfe", b"{", b"[1,]", b"NaN", "\ud800".encode("utf-8", "surrogatepass")):
        with pytest.raises(ApiError):
            parse_json(garbage)
