"""Property-based tests of the server's request parsing (issue 12): whatever a client sends to
any route, both protocols, the answer is a 2xx or a 4xx in the route's error shape, never a
500; bodies are valid requests with any field replaced by any JSON value (huge integers, deep
nesting, lone surrogates, markup, control characters), or arbitrary bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from evaltune.engine import Engine
from evaltune.server import ServerConfig, create_app
from evaltune.server.http import ApiError, parse_json

KEY = "tml-property-test"
H = {"Authorization": f"Bearer {KEY}", "X-API-Key": KEY, "Content-Type": "application/json"}
PROMPT = {"chunks": [{"type": "encoded_text", "tokens": [5, 6]}]}


def templates(session: str, model: str, request: str) -> dict[str, dict[str, Any]]:
    """A valid request per route, naming a session, training model and future that exist."""
    return {
        "/v1/completions": {"model": "tiny", "prompt": "x", "max_tokens": 2, "seed": 1},
        "/v1/chat/completions": {
            "model": "tiny",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 2,
            "temperature": 0.5,
        },
        "/api/v1/asample": {
            "prompt": PROMPT,
            "num_samples": 1,
            "base_model": "tiny",
            "sampling_params": {"max_tokens": 2, "seed": 3},
        },
        "/api/v1/create_session": {"tags": [], "user_metadata": {}, "sdk_version": "0.38.0"},
        "/api/v1/create_model": {
            "session_id": session,
            "model_seq_id": 1,
            "base_model": "tiny",
            "lora_config": {"rank": 4},
        },
        "/api/v1/get_info": {"model_id": model},
        "/api/v1/optim_step": {"model_id": model, "adam_params": {"learning_rate": 1e-3}},
        "/api/v1/retrieve_future": {"request_id": request},
        "/api/v1/save_weights_for_sampler": {"model_id": model, "path": "x"},
        "/api/v1/create_sampling_session": {"session_id": session, "base_model": "tiny"},
        "/api/v1/weights_info": {"tinker_path": "tinker://x/weights/y"},
    }


HOSTILE_TEXT = st.sampled_from(
    [
        "[/bold]",
        "[red]x[/red]",
        "\ud800",
        "\x00\x1b[2J",
        "💥" * 50,
        "tinker://../../etc",
        "a" * 5000,
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | HOSTILE_TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a field or item of ``value``."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        out = dict(value)
        if new is _DROP and not rest:
            out.pop(head)
        else:
            out[head] = _replace(value[head], rest, new)
        return out
    out = list(value)
    out[head] = _replace(value[head], rest, None if new is _DROP and not rest else new)
    return out


_DROP = object()


def mutated(draw: Any, templates: dict[str, dict[str, Any]]) -> tuple[str, bytes]:
    """A route's valid request with one to three fields replaced by any JSON value, dropped,
    or joined by an unknown field."""
    route = draw(st.sampled_from(sorted(templates)))
    body: Any = templates[route]
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(body)[1:]
        path = draw(st.sampled_from(paths)) if paths else ()
        kind = draw(st.integers(0, 4))
        if kind == 0 and path:
            body = _replace(body, path, _DROP)
        elif kind == 1 and isinstance(body, dict):
            body = {**body, draw(st.text(max_size=6)): draw(JSON)}
        else:
            body = _replace(body, path, draw(JSON))
    return route, json.dumps(body, ensure_ascii=True).encode()  # "\ud800" as a JSON escape


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[str, dict[str, Any]]]]:
    engine = Engine(str(tiny_model_dir), device="cpu", dtype="fp32")
    ckpt = tmp_path_factory.mktemp("properties") / "ckpt"
    config = ServerConfig(str(tiny_model_dir), KEY, ckpt, served_model_name="tiny", max_tokens=16)
    with TestClient(create_app(config, engine), raise_server_exceptions=False) as c:
        body = templates("", "", "")["/api/v1/create_session"]
        session = c.post("/api/v1/create_session", headers=H, json=body).json()
        body = templates(session["session_id"], "", "")["/api/v1/create_model"]
        created = c.post("/api/v1/create_model", headers=H, json={**body, "model_seq_id": 0})
        request = created.json()["request_id"]
        model = c.post("/api/v1/retrieve_future", headers=H, json={"request_id": request})
        assert model.status_code == 200, model.text
        yield c, templates(session["session_id"], model.json()["model_id"], request)


def _answered(response: Any) -> None:
    assert response.status_code < 500 or response.status_code == 503, response.text[:500]
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_field_of_any_route_is_answered_never_500(server: Any, data: Any) -> None:
    client, routes = server
    route, body = mutated(data.draw, routes)
    _answered(client.post(route, headers=H, content=body))


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    body=st.binary(max_size=200) | JSON.map(lambda v: str(v).encode("utf-8", "surrogatepass")),
)
def test_arbitrary_bytes_are_a_4xx(server: Any, data: Any, body: bytes) -> None:
    client, routes = server
    route = data.draw(st.sampled_from([*sorted(routes), "/api/v1/forward_backward"]))
    _answered(client.post(route, headers=H, content=body))
    protobuf = {**H, "Content-Type": "application/x-protobuf"}
    _answered(client.post("/api/v1/forward_backward", headers=protobuf, content=body))


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()))
def test_parse_json_returns_a_value_or_raises_its_own_error(body: bytes) -> None:
    try:
        parse_json(body)
    except ApiError as exc:
        assert exc.status == 400
