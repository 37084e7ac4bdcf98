"""Every error leaves the API as JSON `{"error": ..., "status": ...}` with a fitting 4xx/5xx.

A client (or a person with curl) gets one shape for everything: a missing route, a bad field, a
refused upload, an unreachable broker. Unexpected errors are logged with their traceback and
answered with a plain 500 that leaks nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.http.schemas import ErrorBody
from atelier.errors import InputError

log = logging.getLogger(__name__)


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


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InputError, _input_error)
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
    503: "The database or the broker is unavailable.",
}
