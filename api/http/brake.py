"""A brake on guessing the token: wrong tokens are counted per client, and a client that sent too
many in a minute is refused (429 with `Retry-After`) until that minute has passed, even with the
right token, so a guess that happens to be right does not work at once.

Clients are told apart by address (`scope["client"]`; behind a reverse proxy uvicorn takes it
from `X-Forwarded-For` when the proxy is trusted, see docs/operations.md). The counts live in the
API process: each server process brakes on its own. At most `MAX_CLIENTS` addresses are
remembered, least recently failed first out, so a flood of addresses cannot exhaust memory.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from starlette.types import Scope

MAX_CLIENTS = 10_000


def client_of(scope: Scope) -> str:
    """The client's address, as the server saw it (after trusted proxy headers)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


class FailureBrake:
    """At most `limit` failures per client within `window` seconds (see the module docstring)."""

    def __init__(
        self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None when it may try now."""
        with self._lock:
            recent = self._recent(client)
            if recent is None or len(recent) < self.limit:
                return None
            return max(1, math.ceil(recent[0] + self.window - self.clock()))

    def failed(self, client: str) -> None:
        """Count one wrong token from `client`."""
        with self._lock:
            recent = self._recent(client)
            if recent is None:
                recent = self._failures[client] = deque(maxlen=self.limit)
            recent.append(self.clock())
            self._failures.move_to_end(client)
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)

    def _recent(self, client: str) -> deque[float] | None:
        """`client`'s failures within the window (older ones forgotten); None if there are none."""
        recent = self._failures.get(client)
        if recent is None:
            return None
        cutoff = self.clock() - self.window
        while recent and recent[0] <= cutoff:
            recent.popleft()
        if not recent:
            del self._failures[client]
            return None
        return recent
