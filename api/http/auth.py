"""Bearer-token authentication, on when `ATELIER_API_TOKEN` is set.

Every path but `/healthz` (and the login/logout forms) needs the token: the API, the gallery,
stored files, `/docs` and `/openapi.json`. Programs send `Authorization: Bearer <token>`. A
browser cannot add that header to a page's images and videos, so the gallery's login form
(`/login`) keeps the same token in an HttpOnly, SameSite=Strict cookie, and the cookie is accepted
for reading (GET/HEAD) only: a request that changes something always needs the header, which a
foreign page cannot forge.

The check is an ASGI middleware so it covers routes, static files and the docs alike; the
`bearer` dependency only declares the scheme in the OpenAPI document.
"""

from __future__ import annotations

import hmac

from fastapi.security import HTTPBearer
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.http.errors import error_response

COOKIE = "atelier_token"
OPEN_PATHS = frozenset({"/healthz", "/login", "/logout"})
READ_METHODS = frozenset({"GET", "HEAD"})
bearer = HTTPBearer(auto_error=False, description="The value of ATELIER_API_TOKEN.")


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def refusal(request: Request, expected: str) -> tuple[int, str] | None:
    """None when the request carries the token; else the status and message to refuse with
    (401 when no token was sent, 403 when the one sent is wrong)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    sent = scheme.lower() == "bearer"
    if sent and token_matches(expected, value.strip()):
        return None
    if request.method in READ_METHODS and COOKIE in request.cookies:
        if token_matches(expected, request.cookies[COOKIE]):
            return None
        sent = True
    if sent:
        return 403, "the bearer token is wrong"
    return 401, "this API needs a bearer token: send `Authorization: Bearer <ATELIER_API_TOKEN>`"


class TokenGate:
    """Refuse every request without the token, except on OPEN_PATHS."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.token or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refused = refusal(request, self.token)
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, message = refused
        if scope["path"] == "/" and request.method in READ_METHODS:
            response = RedirectResponse("/login", status_code=303)
        else:
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            response = error_response(status, message, headers=headers)
        await response(scope, receive, send)
