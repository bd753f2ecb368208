"""Future retrieval: long poll then try_again, results as JSON or protobuf, failures by category."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import Future

import pytest

from evaltune.errors import EngineError
from evaltune.server.futures import FutureStore
from evaltune.server.http import ApiError


def retrieve(store: FutureStore, request_id: str, wait_s: float = 0.05):
    return asyncio.run(store.retrieve(request_id, wait_s))


def test_pending_then_done_as_json_or_protobuf() -> None:
    store = FutureStore()
    fut: Future = Future()
    rid = store.add(fut, lambda r: {"value": r})
    pending = json.loads(retrieve(store, rid).body)
    assert pending == {"type": "try_again", "request_id": rid, "queue_state": "active"}
    fut.set_result(3)
    assert json.loads(retrieve(store, rid).body) == {"value": 3}
    proto: Future = Future()
    proto.set_result(b"\x01\x02")
    response = retrieve(store, store.add(proto, lambda r: r))
    assert response.body == b"\x01\x02" and response.media_type == "application/x-protobuf"


def test_a_poll_returns_as_soon_as_the_work_finishes() -> None:
    store = FutureStore()
    fut: Future = Future()
    rid = store.add(fut, lambda r: {"value": r})
    threading.Timer(0.1, fut.set_result, args=(1,)).start()
    assert json.loads(retrieve(store, rid, wait_s=10).body) == {"value": 1}


def test_failures_carry_a_category() -> None:
    store = FutureStore()
    user: Future = Future()
    user.set_exception(EngineError("prompt too long"))
    assert json.loads(retrieve(store, store.add(user, str)).body) == {
        "error": "prompt too long",
        "category": "user",
    }
    bug: Future = Future()
    bug.set_exception(ZeroDivisionError("oops"))
    body = json.loads(retrieve(store, store.add(bug, str)).body)
    assert body["category"] == "server" and "ZeroDivisionError" in body["error"]


def test_unknown_requests_are_404() -> None:
    with pytest.raises(ApiError) as err:
        retrieve(FutureStore(), "req-nope")
    assert err.value.status == 404
