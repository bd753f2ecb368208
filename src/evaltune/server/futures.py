"""Tinker's futures: every training and sampling request returns a request id at once; the
client then polls ``/api/v1/retrieve_future`` until the result is ready.

Each id maps to a ``concurrent.futures.Future`` from the engine's worker (or its sample
batcher) and an encoder that turns the result into the wire shape the SDK expects: protobuf
bytes for ``ForwardBackwardOutput`` / ``SampleResponse``, JSON for the rest. A poll waits up to
``POLL_SECONDS`` for the work (long polling, below the SDK's 45 s request timeout) and otherwise
answers ``try_again``. A failed request answers ``{"error", "category"}``, which the SDK raises
as ``RequestFailedError``: ``user`` for evaltune's own errors (bad input), ``server`` otherwise.
Results are dropped a while after they were fetched, so memory stays flat on long runs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

from evaltune.errors import EngineError, EvaltuneError
from evaltune.server.http import ApiError

__all__ = ["POLL_SECONDS", "Encoded", "FutureStore"]

POLL_SECONDS = 30.0
KEEP_RETRIEVED_S = 300.0  # a retried poll can still fetch a result for this long
KEEP_UNCLAIMED_S = 3600.0
PROTOBUF = "application/x-protobuf"
log = logging.getLogger("evaltune.server")

Encoded = bytes | dict[str, Any]  # protobuf bytes, or a JSON object


@dataclass
class _Entry:
    future: Future[Any]
    encode: Callable[[Any], Encoded]
    created: float
    retrieved: float | None = None


class FutureStore:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._prefix = uuid.uuid4().hex[:8]

    def add(self, future: Future[Any], encode: Callable[[Any], Encoded]) -> str:
        request_id = f"req-{self._prefix}-{next(self._ids)}"
        with self._lock:
            self._purge(time.monotonic())
            self._entries[request_id] = _Entry(future, encode, time.monotonic())
        return request_id

    def _purge(self, now: float) -> None:
        stale = [
            rid
            for rid, e in self._entries.items()
            if (e.retrieved is not None and now - e.retrieved > KEEP_RETRIEVED_S)
            or (e.future.done() and now - e.created > KEEP_UNCLAIMED_S)
        ]
        for rid in stale:
            del self._entries[rid]

    def __len__(self) -> int:
        return len(self._entries)

    def future(self, request_id: str) -> Future[Any] | None:
        entry = self._entries.get(request_id)
        return None if entry is None else entry.future

    def cancel_queued(self) -> None:
        """Cancel every request that has not started (at shutdown: nobody will fetch it)."""
        with self._lock:
            futures = [e.future for e in self._entries.values()]
        for future in futures:
            future.cancel()

    async def retrieve(self, request_id: str, wait_s: float = POLL_SECONDS) -> Response:
        entry = self._entries.get(request_id)
        if entry is None:
            raise ApiError(
                404,
                f"no request {request_id!r} on this server (it may have restarted, or the "
                "result was fetched long ago)",
            )
        if not entry.future.done():
            await asyncio.wait({asyncio.wrap_future(entry.future)}, timeout=wait_s)
        if not entry.future.done():
            return JSONResponse(
                {"type": "try_again", "request_id": request_id, "queue_state": "active"}
            )
        entry.retrieved = time.monotonic()
        if entry.future.cancelled():
            stopped = EngineError("the request was cancelled (by its client, or at shutdown)")
            return JSONResponse(_failure(request_id, stopped))
        exc = entry.future.exception()
        if exc is not None:
            return JSONResponse(_failure(request_id, exc))
        try:
            encoded = entry.encode(entry.future.result())
        except Exception as encode_exc:  # a bug of ours: report it instead of dying
            return JSONResponse(_failure(request_id, encode_exc))
        if isinstance(encoded, bytes):
            return Response(encoded, media_type=PROTOBUF)
        return JSONResponse(encoded)


def _failure(request_id: str, exc: BaseException) -> dict[str, str]:
    if isinstance(exc, EvaltuneError):
        return {"error": str(exc), "category": "user"}
    log.error("request %s failed", request_id, exc_info=exc)
    return {"error": f"{type(exc).__name__}: {exc}", "category": "server"}
