"""Every request body has a size limit, enforced before and while it arrives, on every route.

`POST /v1/assets` (uploads) may send `ATELIER_MAX_UPLOAD_BYTES` plus room for a multipart form's
framing (the upload code checks the file itself to the byte); every other request, JSON bodies
and the login form among them, `ATELIER_MAX_REQUEST_BYTES`. A body that declares a larger
`Content-Length` is refused with 413 before a byte of it is read; one without (chunked) is counted
as it streams and refused as soon as it passes the limit, so nothing ever reads or parses more
than the limit. This is an ASGI middleware outside the token check, so it also bounds requests
that carry no token: a huge body to `/login` is refused after the first megabyte, not received
in full. The refusal closes the connection, so the server does not receive the rest either.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.http.errors import ApiError, error_response

UPLOAD_PATHS = frozenset({"/v1/assets"})
MULTIPART_ROOM = 1024 * 1024
"""Bytes an upload's body may have beyond the file: multipart boundaries, headers, small fields."""


class BodyTooLarge(ApiError):
    """413 for a body past its limit; the answer closes the connection."""

    def __init__(self, limit: int, setting: str) -> None:
        message = f"the request body is larger than {limit} bytes ({setting})"
        super().__init__(413, message, headers={"Connection": "close"})


class BodyLimit:
    """Refuse bodies over their limit (see the module docstring)."""

    def __init__(self, app: ASGIApp, max_request_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    def _limit(self, scope: Scope) -> tuple[int, str]:
        if scope["method"] == "POST" and scope["path"] in UPLOAD_PATHS:
            return self.max_upload_bytes + MULTIPART_ROOM, "ATELIER_MAX_UPLOAD_BYTES"
        return self.max_request_bytes, "ATELIER_MAX_REQUEST_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self._limit(scope)
        declared = dict(scope["headers"]).get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > limit:
            refused = BodyTooLarge(limit, setting)
            response = error_response(413, refused.detail, headers=refused.headers)
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, setting)
            return message

        await self.app(scope, limited, send)
