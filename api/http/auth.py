"""Bearer-token authentication, on when `ATELIER_API_TOKEN` is set.

Every path but `/healthz` (and the login/logout forms) needs the token: the API, the gallery,
stored files, `/docs` and `/openapi.json`. Programs send `Authorization: Bearer <token>`. A
browser cannot add that header to a page's images and videos, so the gallery's login form
(`/login`) gives it a session cookie (`api.http.session`: signed, expiring, not the token itself;
HttpOnly, SameSite=Strict), and the cookie is accepted for reading (GET/HEAD) only: a request that
changes something always needs the header, which a foreign page cannot forge.

Wrong tokens and forged sessions are counted per client (`api.http.brake`): past
`ATELIER_AUTH_FAILURES_PER_MINUTE` the client is answered 429 with `Retry-After` for the rest of
the minute. The check is an ASGI middleware, so it covers routes, static files and the docs
alike, and it runs before anything reads the request's body: a refused upload is never received
(the refusal closes the connection rather than drain the body). The `bearer` dependency only
declares the scheme in the OpenAPI document.
"""

from __future__ import annotations

import hmac

from fastapi.security import HTTPBearer
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.http import session
from api.http.brake import FailureBrake, client_of
from api.http.errors import error_response

OPEN_PATHS = frozenset({"/healthz", "/login", "/logout"})
READ_METHODS = frozenset({"GET", "HEAD"})
bearer = HTTPBearer(auto_error=False, description="The value of ATELIER_API_TOKEN.")


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def has_body(scope: Scope) -> bool:
    """Whether the request announces a body (which an early answer leaves unread)."""
    headers = dict(scope.get("headers", []))
    length = headers.get(b"content-length", b"0").strip()
    return b"transfer-encoding" in headers or not length.isdigit() or int(length) > 0


def early_headers(scope: Scope, headers: dict[str, str] | None = None) -> dict[str, str]:
    """Headers of an answer given before the body was read: close the connection, so the server
    does not receive (and throw away) the rest of a body nobody will read."""
    extra = {"Connection": "close"} if has_body(scope) else {}
    return {**(headers or {}), **extra}


def throttled(scope: Scope, retry_after: int, what: str) -> Response:
    """429: this client sent too many wrong tokens lately."""
    headers = early_headers(scope, {"Retry-After": str(retry_after)})
    message = f"too many wrong {what} from your address; try again in {retry_after} s"
    return error_response(429, message, headers=headers)


def refusal(request: Request, expected: str) -> tuple[int, str, bool] | None:
    """None when the request carries the token (or, for reading, a valid session); else the
    status and message to refuse with (401: nothing sent, or an expired session; 403: a wrong
    token or a forged session) and whether it counts as a wrong guess."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        if token_matches(expected, value.strip()):
            return None
        return 403, "the bearer token is wrong", True
    cookie = request.cookies.get(session.COOKIE)
    if request.method in READ_METHODS and cookie is not None:
        verdict = session.check(expected, cookie)
        if verdict == "ok":
            return None
        if verdict == "expired":
            return 401, "the gallery session has expired: log in again", False
        return 403, "the gallery session is not valid: log in again", True
    return (
        401,
        "this API needs a bearer token: send `Authorization: Bearer <ATELIER_API_TOKEN>`",
        False,
    )


class TokenGate:
    """Refuse every request without the token, except on OPEN_PATHS."""

    def __init__(self, app: ASGIApp, token: str | None, brake: FailureBrake) -> None:
        self.app = app
        self.token = token
        self.brake = brake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.token or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        client = client_of(scope)
        wait = self.brake.retry_after(client)
        if wait is not None:  # even the right token: a guess that is right must not work now
            await throttled(scope, wait, "tokens")(scope, receive, send)
            return
        refused = refusal(request, self.token)
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, message, guess = refused
        if guess:
            self.brake.failed(client)
        if scope["path"] == "/" and request.method in READ_METHODS:
            response: Response = RedirectResponse("/login", status_code=303)
        else:
            extra = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            response = error_response(status, message, headers=early_headers(scope, extra))
        await response(scope, receive, send)
