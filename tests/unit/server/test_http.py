"""The guard and body helpers: keys, size limits, malformed bodies, JSON error shapes."""

from __future__ import annotations

import zstandard
from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.testclient import TestClient

from evaltune.server.http import ApiError, GuardMiddleware, KeyRedactor, read_body, read_model

KEY = "tml-test-key"
LIMIT = 1000


class Echo(BaseModel):
    name: str
    count: int = Field(ge=1)


def make_client() -> TestClient:
    app = FastAPI()

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError):
        return exc.response()

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return (await read_model(request, Echo, LIMIT)).model_dump()

    @app.post("/raw")
    async def raw(request: Request) -> dict:
        return {"size": len(await read_body(request, LIMIT))}

    app.add_middleware(GuardMiddleware, api_key=KEY, max_body_bytes=LIMIT)
    return TestClient(app)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
    return body["error"]


def test_key_is_required_in_either_header() -> None:
    client = make_client()
    ok = {"name": "a", "count": 1}
    assert client.post("/echo", json=ok, headers={"X-API-Key": KEY}).json() == ok
    assert client.post("/echo", json=ok, headers={"Authorization": f"Bearer {KEY}"}).json() == ok
    missing = client.post("/echo", json=ok)
    assert missing.status_code == 401 and "no API key" in error_of(missing)["message"]
    wrong = client.post("/echo", json=ok, headers={"Authorization": "Bearer tml-nope"})
    assert wrong.status_code == 401
    assert error_of(wrong)["type"] == "authentication_error"
    assert "tml-nope" not in wrong.text and KEY not in wrong.text  # keys are never echoed


def test_bad_bodies_are_400_naming_the_problem() -> None:
    client = make_client()
    h = {"X-API-Key": KEY}
    bad_json = client.post("/echo", content=b"{not json", headers=h)
    assert bad_json.status_code == 400 and "malformed JSON" in error_of(bad_json)["message"]
    not_object = client.post("/echo", json=[1, 2], headers=h)
    assert not_object.status_code == 400 and "object" in error_of(not_object)["message"]
    invalid = client.post("/echo", json={"name": "a", "count": 0}, headers=h)
    assert invalid.status_code == 400 and "count" in error_of(invalid)["message"]


def test_oversize_bodies_are_413_with_or_without_a_length() -> None:
    client = make_client()
    h = {"X-API-Key": KEY}
    big = client.post("/raw", content=b"x" * (LIMIT + 1), headers=h)
    assert big.status_code == 413 and "--max-body-mb" in error_of(big)["message"]

    def chunks():
        for _ in range(20):
            yield b"y" * 100

    streamed = client.post("/raw", content=chunks(), headers=h)  # chunked: no Content-Length
    assert streamed.status_code == 413
    assert client.post("/raw", content=b"z" * LIMIT, headers=h).json() == {"size": LIMIT}


def test_zstd_bodies_are_inflated_within_the_limit() -> None:
    client = make_client()
    h = {"X-API-Key": KEY, "Content-Encoding": "zstd"}
    small = zstandard.ZstdCompressor().compress(b"a" * 500)
    assert client.post("/raw", content=small, headers=h).json() == {"size": 500}
    bomb = zstandard.ZstdCompressor().compress(b"a" * (LIMIT * 50))
    assert client.post("/raw", content=bomb, headers=h).status_code == 413
    garbage = client.post("/raw", content=b"not zstd", headers=h)
    assert garbage.status_code == 400
    other = client.post("/raw", content=b"x", headers={"X-API-Key": KEY, "Content-Encoding": "br"})
    assert other.status_code == 415


def test_a_key_in_the_url_is_refused_even_with_the_right_header() -> None:
    client = make_client()
    ok = {"name": "a", "count": 1}
    for url in (f"/echo?api_key={KEY}", "/echo?x=1&API-KEY=tml-other", f"/echo?k={KEY}"):
        for headers in ({}, {"X-API-Key": KEY}):
            refused = client.post(url, json=ok, headers=headers)
            assert refused.status_code == 401, url
            assert "header" in error_of(refused)["message"] and KEY not in refused.text


def test_key_redactor_blanks_keys_in_messages_and_arguments() -> None:
    import logging

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, "%s - %s %s", None, None
    )
    record.args = ("127.0.0.1", "GET", f"/v1/models?api_key={KEY}&token=abc")
    scope = {"query_string": f"key={KEY}".encode(), "path": "/v1/models"}
    trace = logging.LogRecord("uvicorn.asgi", 5, __file__, 1, "scope=%s", None, None)
    trace.args = (scope,)
    redactor = KeyRedactor(KEY)
    for r in (record, trace):
        assert redactor.filter(r) and KEY not in r.getMessage()
    assert record.args[2] == "/v1/models?api_key=***&token=***"
