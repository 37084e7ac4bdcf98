"""The gallery's login session: a signed, expiring cookie that is not the API token.

A browser cannot add an `Authorization` header to a page's images and videos, so the login form
gives it a cookie instead. The cookie holds only an expiry time and a random nonce, signed with
HMAC-SHA256 under a key derived from the API token: it proves that someone who knew the token
logged in, until it expires, without carrying the token itself (a stolen cookie is good for one
session's lifetime, not for the API's header for ever). Changing the token ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

COOKIE = "atelier_session"
_PURPOSE = b"atelier gallery session v1"


def _key(token: str) -> bytes:
    return hmac.new(token.encode(), _PURPOSE, hashlib.sha256).digest()


def _signature(token: str, payload: str) -> str:
    return hmac.new(_key(token), payload.encode(), hashlib.sha256).hexdigest()


def issue(token: str, lifetime: float, now: float | None = None) -> str:
    """A session value good for `lifetime` seconds from `now`."""
    expires = int((time.time() if now is None else now) + lifetime)
    payload = f"{expires}.{secrets.token_urlsafe(16)}"
    return f"{payload}.{_signature(token, payload)}"


def check(token: str, value: str, now: float | None = None) -> str:
    """`ok` for a session issued under `token` that has not expired, `expired` for one that has,
    `forged` for anything else (signed under another token, altered, or made up)."""
    payload, _, signature = value.rpartition(".")
    expires, _, _nonce = payload.partition(".")
    expected = _signature(token, payload).encode()
    if not expires.isdigit() or not hmac.compare_digest(signature.encode(), expected):
        return "forged"
    return "ok" if int(expires) > (time.time() if now is None else now) else "expired"
