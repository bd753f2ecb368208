"""The HTTP sink's retries and backoff (an in-process transport), and the fan-out that turns a
failing sink into one line."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from evaltune.tracking.sinks import HTTPSink, Sinks, round_metrics

RECORD = {
    "round": 1,
    "lr": 1e-3,
    "steps": 4,
    "train": {"final_loss": 0.5},
    "evals": {"qa": {"metrics": {"accuracy": 0.75, "n": 8}, "per_tag": {"a": {"accuracy": 1.0}}}},
    "targets_met": False,
    "guards_hold": True,
}


def sink_with(statuses: list[int], seen: list[httpx.Request], **kw: Any) -> HTTPSink:
    answers = iter(statuses)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(next(answers))

    return HTTPSink("http://evalops.test/submit", transport=httpx.MockTransport(handle), **kw)


def test_round_documents_carry_the_metrics_and_the_key_header() -> None:
    seen: list[httpx.Request] = []
    sink = sink_with([200, 200], seen, api_key="k-123", suite_id="s1", backoff_s=0)
    sink.start({"run_id": "r1", "base_model": "m", "backend": "local"})
    sink.round(RECORD, [])
    doc = json.loads(seen[1].content)
    assert doc["type"] == "round" and doc["run_id"] == "r1" and doc["suite_id"] == "s1"
    assert doc["metrics"] == {
        "eval/qa/accuracy": 0.75,
        "eval/qa/n": 8.0,
        "eval/qa/tag/a/accuracy": 1.0,
    }
    assert seen[1].headers["Authorization"] == "Bearer k-123"
    assert round_metrics(RECORD) == doc["metrics"]


def test_server_errors_are_retried_with_backoff_client_errors_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr("evaltune.tracking.sinks.time.sleep", waits.append)
    seen: list[httpx.Request] = []
    sink_with([503, 429, 200], seen, retries=3, backoff_s=0.5).post({"type": "x"})
    assert len(seen) == 3 and waits == [0.5, 1.0]
    seen.clear()
    with pytest.raises(RuntimeError, match=r"after 1 attempt \(HTTP 400\)"):
        sink_with([400], seen, retries=3).post({"type": "x"})
    with pytest.raises(RuntimeError, match=r"after 3 attempts \(HTTP 500\)"):
        sink_with([500] * 3, seen, retries=2, backoff_s=0).post({"type": "x"})


def test_a_failing_sink_is_one_line_and_the_others_still_hear() -> None:
    class Broken:
        name = "broken"

        def round(self, record: Any, steps: Any) -> None:
            raise ConnectionError("endpoint\nunreachable")

    heard: list[int] = []

    class Fine:
        name = "fine"

        def round(self, record: Any, steps: Any) -> None:
            heard.append(record["round"])

    lines: list[str] = []
    sinks = Sinks([Broken(), Fine()], lines.append)  # type: ignore[list-item]
    sinks.round(RECORD, [])
    assert lines == ["tracking: broken could not record round 1: endpoint unreachable"]
    assert heard == [1] and sinks.failures == {"broken": 1}
