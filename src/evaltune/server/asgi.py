"""The ASGI app: both protocols on one port, behind the API-key and body-size guard.

``create_app`` takes a loaded engine (tests pass the tiny in-process one) or loads the
configured base model. Errors never escape as HTML or a dropped connection: a refused request
is a 4xx ``{"error": {"type", "message"}}``, an evaltune error raised while handling a request
is a 400 (a missing checkpoint a 404), and anything unexpected is logged and answered as a JSON
500 while the server keeps serving.

Shutdown is bounded. Under ``uvicorn.run`` (``evaltune serve``) the app adds itself to uvicorn's
SIGTERM/SIGINT handling: the first signal drains (``ServerState.drain``: no new generations,
queued work dropped, running generations stopped after ``drain_s``) while uvicorn waits for open
requests, which then end within a decode step; if the process is still alive ``EXIT_GRACE_S``
after that (a request stuck in something no cancel reaches), it exits anyway.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from evaltune.bridge import CheckpointNotFound
from evaltune.engine import Engine, get_engine
from evaltune.errors import EvaltuneError
from evaltune.server.finetune_routes import finetune_router
from evaltune.server.http import ApiError, GuardMiddleware, KeyRedactor, error_body
from evaltune.server.openai_routes import openai_router
from evaltune.server.state import ServerConfig, ServerState
from evaltune.server.tinker_rest import rest_router
from evaltune.server.tinker_service import service_router
from evaltune.server.tinker_training import training_router

__all__ = ["create_app"]

log = logging.getLogger("evaltune.server")
# Where a request's URL or scope can be logged: uvicorn's access log and, at trace level, its
# ASGI message log; the key filter sits on each while the app runs.
LOGGERS = ("uvicorn.access", "uvicorn.asgi", "uvicorn.error", "evaltune.server")
EXIT_GRACE_S = 30.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_if_stuck(after_s: float) -> None:
    def stuck() -> None:
        log.error("evaltune serve: still busy %.0fs after the drain; exiting now", after_s)
        os._exit(1)

    timer = threading.Timer(after_s, stuck)
    timer.daemon = True
    timer.start()


def _drain_on_signals(state: ServerState) -> Callable[[], None]:
    """Chain a drain in front of the running server's signal handlers (uvicorn's), in the main
    thread only (where signals arrive); returns what puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def handler(sig: int, frame: object) -> None:
        first = not state.generations.closing
        # Off the signal handler: the drain takes locks the interrupted code may hold.
        threading.Thread(target=state.drain, name="evaltune-drain", daemon=True).start()
        if first:
            _exit_if_stuck(state.config.drain_s + EXIT_GRACE_S)
        chained = previous[sig]
        if callable(chained):
            chained(sig, frame)

    for sig in SIGNALS:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(CheckpointNotFound)
    async def checkpoint_not_found(_: Request, exc: CheckpointNotFound) -> JSONResponse:
        return ApiError(404, str(exc)).response()

    @app.exception_handler(EvaltuneError)
    async def evaltune_error(_: Request, exc: EvaltuneError) -> JSONResponse:
        return JSONResponse(error_body("invalid_request_error", str(exc)), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        status = exc.status_code
        message = "no such route on evaltune serve" if status == 404 else str(exc.detail)
        return ApiError(status, message).response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return ApiError(400, f"invalid request: {exc.errors()[:3]}").response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        body = error_body("server_error", f"{type(exc).__name__}: {exc}")
        return JSONResponse(body, status_code=500)


def create_app(config: ServerConfig, engine: Engine | None = None) -> FastAPI:
    """The server for ``config``; ``engine`` defaults to the process's engine for its model."""
    engine = engine or get_engine(config.base_model, config.device, config.dtype)
    state = ServerState(engine, config)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        redactor = KeyRedactor(config.api_key)
        for name in LOGGERS:
            logging.getLogger(name).addFilter(redactor)
        restore_signals = _drain_on_signals(state)
        state.start()
        try:
            yield
        finally:
            restore_signals()
            for name in LOGGERS:
                logging.getLogger(name).removeFilter(redactor)
            state.close()

    app = FastAPI(
        title="evaltune serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.evaltune = state
    _install_error_handlers(app)
    for router in (service_router, training_router, rest_router, openai_router, finetune_router):
        app.include_router(router(state))
    app.add_middleware(
        GuardMiddleware, api_key=config.api_key, max_body_bytes=config.max_body_bytes
    )
    return app
