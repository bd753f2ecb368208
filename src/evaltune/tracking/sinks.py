"""Sinks: where a run is reported besides its folder, and the rule that none of them fails it.

A ``Sink`` hears four things, all plain data: the run starting (``start``: ids and flattened
params), each round once it is decided (``round``: the round record and its optimizer steps),
an alert (``alert``: target missed after the last round, a guard broken, the run failed), and
the end (``finish``: the summary, the report files, the registered model, the status).
``Sinks`` hands each call to every sink and turns any exception into one line through ``warn``
(a sink that is down, misconfigured or missing its package never stops a run), and keeps the
count of failures per sink for the run's events.

``HTTPSink`` is the EvalOps-style endpoint: each call becomes one JSON document POSTed to a
URL with ``Authorization: Bearer`` when a key is given, retried on connection errors, 429 and
5xx with exponential backoff. MLflow and trackio live in ``mlflow_sink`` and ``trackio_sink``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

__all__ = ["HTTPSink", "Sink", "Sinks", "round_metrics"]

Warn = Callable[[str], None]


class Sink(Protocol):
    name: str

    def start(self, info: dict[str, Any]) -> None: ...

    def round(self, record: dict[str, Any], steps: Sequence[dict[str, Any]]) -> None: ...

    def alert(self, alert: dict[str, Any]) -> None: ...

    def finish(
        self,
        summary: dict[str, Any] | None,
        files: Sequence[Path],
        model: dict[str, Any] | None,
        status: str,
    ) -> None: ...


def round_metrics(record: dict[str, Any]) -> dict[str, float]:
    """A round's eval metrics as flat ``eval/<suite>/<metric>`` keys (per tag:
    ``eval/<suite>/tag/<tag>/accuracy``), numbers only."""
    out: dict[str, float] = {}
    for suite, ev in (record.get("evals") or {}).items():
        for name, value in (ev.get("metrics") or {}).items():
            if isinstance(value, int | float):
                out[f"eval/{suite}/{name}"] = float(value)
        for tag, stats in (ev.get("per_tag") or {}).items():
            if isinstance(stats.get("accuracy"), int | float):
                out[f"eval/{suite}/tag/{tag}/accuracy"] = float(stats["accuracy"])
    if record.get("val_nll") is not None:
        out["eval/val_nll"] = float(record["val_nll"])
    return out


class Sinks:
    """Every configured sink behind one call each; a failing sink is one line, never an error."""

    def __init__(self, sinks: Sequence[Sink], warn: Warn) -> None:
        self.sinks = list(sinks)
        self.warn = warn
        self.failures: dict[str, int] = {}

    def _each(self, what: str, call: Callable[[Sink], None]) -> None:
        for sink in self.sinks:
            try:
                call(sink)
            except Exception as exc:  # a sink never fails the run: say so in one line
                self.failures[sink.name] = self.failures.get(sink.name, 0) + 1
                reason = " ".join(str(exc).split())[:300] or type(exc).__name__
                self.warn(f"tracking: {sink.name} could not record {what}: {reason}")

    def start(self, info: dict[str, Any]) -> None:
        self._each("the run's start", lambda s: s.start(info))

    def round(self, record: dict[str, Any], steps: Sequence[dict[str, Any]]) -> None:
        self._each(f"round {record['round']}", lambda s: s.round(record, steps))

    def alert(self, alert: dict[str, Any]) -> None:
        self._each(f"the {alert['kind']} alert", lambda s: s.alert(alert))

    def finish(
        self,
        summary: dict[str, Any] | None,
        files: Sequence[Path],
        model: dict[str, Any] | None,
        status: str,
    ) -> None:
        self._each("the run's end", lambda s: s.finish(summary, files, model, status))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class HTTPSink:
    """POST one JSON document per event to ``url``; see the module docstring."""

    name = "http"

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        suite_id: str | None = None,
        alerts: bool = True,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "evaltune"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.url, self.suite_id, self.alerts = url, suite_id, alerts
        self.retries, self.backoff_s = retries, backoff_s
        self.client = httpx.Client(headers=headers, timeout=timeout_s, transport=transport)
        self.run_id: str | None = None
        self.sent = 0

    def post(self, doc: dict[str, Any]) -> None:
        """One document, retried; raises after the last attempt (``Sinks`` reports it)."""
        body = {"run_id": self.run_id, "suite_id": self.suite_id, "sent_at": _now(), **doc}
        delay, last = self.backoff_s, ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
            try:
                response = self.client.post(self.url, json=body)
            except httpx.HTTPError as exc:  # refused, reset, timed out: worth another try
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 300:
                self.sent += 1
                return
            last = f"HTTP {response.status_code}"
            if response.status_code != 429 and response.status_code < 500:
                break  # the endpoint refused the document itself: retrying will not help
        tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
        raise RuntimeError(f"POST {self.url} failed after {tries} ({last})")

    def start(self, info: dict[str, Any]) -> None:
        self.run_id = info["run_id"]
        self.post(
            {
                "type": "run_started",
                "base_model": info.get("base_model"),
                "backend": info.get("backend"),
            }
        )

    def round(self, record: dict[str, Any], steps: Sequence[dict[str, Any]]) -> None:
        train = record.get("train") or {}
        self.post(
            {
                "type": "round",
                "round": record["round"],
                "metrics": round_metrics(record),
                "targets_met": record.get("targets_met"),
                "guards_hold": record.get("guards_hold", True),
                "lr": record.get("lr"),
                "steps": record.get("steps"),
                "train_loss": train.get("final_loss"),
                "decision": record.get("decision"),
            }
        )

    def alert(self, alert: dict[str, Any]) -> None:
        if self.alerts:
            self.post({"type": "alert", **alert})

    def finish(
        self,
        summary: dict[str, Any] | None,
        files: Sequence[Path],
        model: dict[str, Any] | None,
        status: str,
    ) -> None:
        best = (summary or {}).get("best") or {}
        self.post(
            {
                "type": "run_finished",
                "status": status,
                "stop_reason": (summary or {}).get("stop_reason"),
                "best_round": best.get("round"),
                "target_score": best.get("target_score"),
                "targets_met": best.get("targets_met"),
                "model_id": (model or {}).get("id"),
            }
        )
        self.client.close()
