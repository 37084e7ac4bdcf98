"""Every error leaves the API as JSON `{"error": ..., "status": ...}` with a fitting 4xx/5xx.

A client (or a person with curl) gets one shape for everything: a missing route, a bad field, a
refused upload, an unreachable broker. A database, broker or object store that cannot be reached
(or a pool with no free connection in time) is an outage, not a bug: 503 with `Retry-After`, and
for the gallery's pages an HTML page a browser can show. A full disk or store (an upload that
cannot be stored) is one too: 507 with `Retry-After`. What counts as an outage is decided in one
place for the API and the workers alike (`atelier.errors.outage`). Unexpected errors are logged
with their traceback and answered with a plain 500 that leaks nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from kombu.exceptions import OperationalError as BrokerUnreachable
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from api.http.pages import PAGE_HEADERS
from api.http.payloads import ErrorBody
from atelier.errors import InputError, outage

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
DISK_RETRY_AFTER_SECONDS = 60  # space is freed by people or retention, not in seconds
INSUFFICIENT_STORAGE = 507
OUTAGES: tuple[type[Exception], ...] = (
    PoolTimeout,
    BrokerUnreachable,
    RedisConnectionError,
    RedisTimeout,
)
ERROR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Atelier is unavailable</title>
<link rel="stylesheet" href="/static/gallery.css"></head>
<body><main><h1>Atelier is unavailable</h1>
<p>{why} Jobs already submitted are kept; try again {when}.</p></main></body></html>
"""


class ApiError(HTTPException):
    """An error with a status and a message for the user."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)


def error_response(
    status: int,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "status": status}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def _plain(value: Any) -> Any:
    """Validation errors may carry exceptions or bytes in `ctx`/`input`; keep them JSON-safe."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", ""), "type": e["type"]}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return error_response(422, f"invalid request: {summary}", _plain(details))


async def _input_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    if exc.field is None:
        return error_response(422, str(exc))
    details = [{"field": exc.field, "message": str(exc), "type": "value_error"}]
    return error_response(422, f"invalid request: {exc.field}: {exc}", details)


def is_outage(error: BaseException) -> bool:
    """True for a lost or refused connection to the database, the broker or the object store, a
    pool wait that ran out, or a full disk, as opposed to an error in a query (a bug)."""
    return outage(error) is not None


def wants_html(request: Request) -> bool:
    """The gallery's pages answer browsers in HTML; everything under /v1 answers JSON."""
    path = request.url.path
    return not path.startswith(("/v1/", "/healthz", "/docs", "/openapi")) and (
        "text/html" in request.headers.get("accept", "") or path == "/"
    )


def unavailable(request: Request, error: BaseException) -> Response:
    """503 for an outage (507 for a full disk): what is wrong, when to retry, and HTML for a
    browser on the gallery."""
    what = outage(error) or "broker"
    log.warning("%s %s: %s unavailable: %s", request.method, request.url.path, what, error)
    if what == "disk":
        status, wait = INSUFFICIENT_STORAGE, DISK_RETRY_AFTER_SECONDS
        why, when = "Its disk is full: nothing can be stored now.", "once space is freed"
        message = "the server's disk is full; nothing can be stored until space is freed"
    else:
        status, wait = 503, RETRY_AFTER_SECONDS
        why, when = f"Its {what} cannot be reached right now.", "in a few seconds"
        message = f"the {what} is unavailable; retry in a few seconds"
    headers = {"Retry-After": str(wait)}
    if wants_html(request):
        page = ERROR_PAGE.format(why=why, when=when)
        return HTMLResponse(page, status_code=status, headers={**headers, **PAGE_HEADERS})
    return error_response(status, message, headers=headers)


async def _client_gone(request: Request, _exc: Exception) -> Response:
    """Nobody is left to read an answer; the request's own cleanup (scratch files) has run."""
    log.info("%s %s: the client went away before the request was complete",
             request.method, request.url.path)  # fmt: skip
    return Response(status_code=400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    if is_outage(exc):
        return unavailable(request, exc)
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    # Handled where they are raised (not by the last-resort handler, which re-raises to the
    # server's log): the outages, and OSError, which a full disk raises.
    for away in (*OUTAGES, DBAPIError, OSError):
        app.add_exception_handler(away, _unexpected)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer with (403 goes with 401)."""
    if 401 in codes:
        codes = (*codes, 403)
    return {code: {"model": ErrorBody, "description": _MEANING[code]} for code in codes}


_MEANING = {
    400: "The request body is malformed.",
    403: "The bearer token is wrong.",
    401: "Missing or wrong bearer token.",
    404: "No such resource.",
    409: "The resource is not in a state that allows this.",
    410: "The file was removed by retention.",
    413: "The upload is larger than the limit.",
    415: "The upload is not an image or video Atelier can read.",
    422: "The request or its parameters are invalid.",
    429: "Too many requests of this kind from your address: retry after `Retry-After`.",
    503: "The database, the broker or the object store is unavailable.",
    507: "The server's disk (or object store) is full: nothing can be stored until space is"
    " freed; retry after `Retry-After`.",
}
