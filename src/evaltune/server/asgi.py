"""The ASGI app: both protocols on one port, behind the API-key and body-size guard.

``create_app`` takes a loaded engine (tests pass the tiny in-process one) or loads the
configured base model. Errors never escape as HTML or a dropped connection: a refused request
is a 4xx ``{"error": {"type", "message"}}``, an evaltune error raised while handling a request
is a 400 (a missing checkpoint a 404), and anything unexpected is logged and answered as a JSON 500 while the server keeps
serving.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from evaltune.bridge import CheckpointNotFound
from evaltune.engine import Engine, get_engine
from evaltune.errors import EvaltuneError
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
        try:
            yield
        finally:
            for name in LOGGERS:
                logging.getLogger(name).removeFilter(redactor)
            state.close()

    app = FastAPI(
        title="evaltune serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.evaltune = state
    _install_error_handlers(app)
    for router in (service_router, training_router, rest_router, openai_router):
        app.include_router(router(state))
    app.add_middleware(
        GuardMiddleware, api_key=config.api_key, max_body_bytes=config.max_body_bytes
    )
    return app
