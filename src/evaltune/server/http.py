"""HTTP plumbing shared by both protocols: API-key auth, body limits, JSON errors.

Every response to a bad request is ``{"error": {"type": ..., "message": ...}}`` with a 4xx
status, whichever protocol the route speaks (OpenAI clients read that shape; the Tinker SDK
puts the body into its exception message). The key check and the size check run as a small
ASGI middleware before any route, so a request with a wrong key or an oversize
``Content-Length`` never reaches a handler; bodies without a length are counted while read.
Keys are accepted only in a header: a key in the URL (``?api_key=``, or the server's key
anywhere in the path or query) is refused with a 401 and blanked in the request's scope, which
is what uvicorn's access log prints; ``KeyRedactor`` blanks keys in any log record as well.
JSON bodies are parsed within bounds (``MAX_JSON_DEPTH`` levels of nesting, integers of at most
``MAX_INT_DIGITS`` digits, finite numbers only), so a hostile body is a 400, not a 500.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

import zstandard
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from evaltune.errors import EvaltuneError
from evaltune.limits import MAX_DEPTH, MAX_INT_DIGITS, depth_over

__all__ = [
    "ApiError",
    "GuardMiddleware",
    "KeyRedactor",
    "error_body",
    "parse_json",
    "read_body",
    "read_json",
    "read_model",
]

M = TypeVar("M", bound=BaseModel)
MAX_JSON_DEPTH = MAX_DEPTH
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limit_error",
    499: "client_closed_request",
    503: "server_unavailable",
}


class ApiError(EvaltuneError):
    """A request the server refuses: an HTTP status and a message that says what to fix."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_ or _TYPES.get(status, "invalid_request_error")
        self.message = message
        self.headers = headers

    def response(self) -> JSONResponse:
        body = error_body(self.type, self.message)
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def error_body(type_: str, message: str) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message}}


# Query parameters that carry a key by convention; their values never reach a log.
_KEY_PARAM = re.compile(
    r"(?i)(?<![^&?])((?:x[-_])?api[-_]?key|key|(?:access[-_])?token|auth(?:orization)?)=[^&]*"
)
REDACTED = "***"


def _redact(text: str, key: str) -> str:
    return _KEY_PARAM.sub(rf"\1={REDACTED}", text.replace(key, REDACTED) if key else text)


class KeyRedactor(logging.Filter):
    """Blank the server's key, and any ``api_key=``-style query value, in log records.

    Installed on uvicorn's loggers while the app runs, so no log level (``trace`` included,
    which prints every request's scope) writes a key that a client put in a URL.
    """

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return _redact(value, self.key)
        if isinstance(value, bytes):
            return _redact(value.decode("latin-1"), self.key).encode("latin-1")
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, tuple | list):
            return type(value)(self._clean(v) for v in value)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _redact(record.msg, self.key)
        if record.args:
            record.args = self._clean(record.args)
        return True


def _key_in_url(scope: Scope, key: str) -> bool:
    """Whether the URL carries a key; if so, blank it in ``scope`` (the access log reads it)."""
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("path", "")
    clean_query, clean_path = _redact(query, key), path.replace(key, REDACTED)
    if clean_query == query and clean_path == path:
        return False
    scope["query_string"] = clean_query.encode("latin-1")
    scope["path"] = clean_path
    scope["raw_path"] = clean_path.encode()
    return True


def _presented_key(headers: dict[bytes, bytes]) -> str | None:
    if key := headers.get(b"x-api-key"):
        return key.decode("latin-1").strip()
    auth = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


class GuardMiddleware:
    """Refuse requests without the server's API key, or with a body over the limit.

    The key is accepted as ``X-API-Key`` (the Tinker SDK) or ``Authorization: Bearer``
    (OpenAI clients, curl), compared in constant time, and never logged.
    """

    def __init__(self, app: Any, api_key: str, max_body_bytes: int) -> None:
        self.app = app
        self._key = api_key.encode()
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _key_in_url(scope, self._key.decode()):
            error = ApiError(
                401,
                "an API key in the URL is refused (URLs end up in logs and browser history); "
                "send it only in a header, 'Authorization: Bearer <key>' or 'X-API-Key: <key>', "
                "and consider the key exposed",
            )
            await error.response()(scope, receive, send)
            return
        headers = dict(scope["headers"])
        presented = _presented_key(headers)
        if presented is None or not hmac.compare_digest(presented.encode(), self._key):
            what = "no API key" if presented is None else "a wrong API key"
            error = ApiError(
                401,
                f"request has {what}; send the key evaltune serve printed at start-up (or set "
                "with --api-key / EVALTUNE_SERVE_API_KEY) as 'Authorization: Bearer <key>' or "
                "'X-API-Key: <key>'",
            )
            await error.response()(scope, receive, send)
            return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                await ApiError(400, "malformed Content-Length header").response()(
                    scope, receive, send
                )
                return
            if size > self.max_body_bytes:
                await _too_large(size, self.max_body_bytes).response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        f"request body of {size} bytes is over this server's limit of {limit} bytes; send "
        "smaller batches or restart evaltune serve with a larger --max-body-mb",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (after zstd decompression, if any)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "zstd":
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(body)
            body = reader.read(limit + 1)
        except zstandard.ZstdError as exc:
            raise ApiError(400, f"malformed zstd body: {exc}") from None
        if len(body) > limit:
            raise _too_large(len(body), limit)
    elif encoding not in ("identity", ""):
        raise ApiError(415, f"unsupported Content-Encoding {encoding!r}; send identity or zstd")
    return body


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ApiError(
            400,
            f"malformed JSON body: an integer with {digits} digits; this server accepts at most "
            f"{MAX_INT_DIGITS}",
        )
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 24 else f"{text[:20]}…"
        raise ApiError(400, f"malformed JSON body: the number {shown} is out of range")
    return value


def _parse_constant(name: str) -> float:
    raise ApiError(400, f"malformed JSON body: {name} is not JSON; send a finite number")


def _too_deep() -> ApiError:
    return ApiError(
        400, f"malformed JSON body: nested deeper than {MAX_JSON_DEPTH} levels of arrays/objects"
    )


def _check_depth(data: Any) -> None:
    """Refuse nesting deeper than ``MAX_JSON_DEPTH``."""
    if depth_over(data, MAX_JSON_DEPTH):
        raise _too_deep()


def parse_json(body: bytes) -> Any:
    """``body`` as JSON within this server's bounds; a 400 naming the problem otherwise."""
    try:
        data = json.loads(
            body,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON body: {exc}") from None
    except RecursionError:  # deeper than the interpreter's stack allows: far over the bound
        raise _too_deep() from None
    _check_depth(data)
    return data


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    data = parse_json(await read_body(request, limit) or b"{}")
    if not isinstance(data, dict):
        raise ApiError(400, f"the JSON body must be an object; found {type(data).__name__}")
    return data


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


async def read_model(request: Request, model: type[M], limit: int) -> M:
    """The JSON body validated as ``model``; a 400 naming each bad field otherwise."""
    data = await read_json(request, limit)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, f"invalid {model.__name__}: {validation_message(exc)}") from None
