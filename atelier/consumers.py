"""Which workers consume which queue, asked of the workers themselves.

A job sent to a queue that no worker consumes waits for ever without a word: a deployment that
starts workers on `nst` and `video,default` leaves every fast-engine job in `fast`. Producers and
`atelier doctor` therefore ask the running workers which queues they take (Celery's remote
control `inspect().active_queues()`, a broadcast that every worker answers) and say so, naming
the command that starts a consumer. The embedded default needs none of this: each command runs
a worker of its own on the queues it sends to.
"""

from __future__ import annotations

import logging
import threading
import time
from fnmatch import fnmatch

from celery import Celery

from atelier.celery_app import QUEUES, ROUTES

log = logging.getLogger(__name__)
INSPECT_SECONDS = 1.0  # how long a broadcast waits for the workers' replies
START = {
    "nst": "atelier worker --queues nst --concurrency 1   # one per GPU",
    "fast": "atelier worker --queues fast",
    "video": "atelier worker --queues video",
    "default": "atelier worker --queues default",
}


def queue_of(task_name: str) -> str:
    """The queue Celery routes `task_name` to (`atelier.celery_app.ROUTES`)."""
    for pattern, route in ROUTES.items():
        if fnmatch(task_name, pattern):
            return route["queue"]
    return "default"


def queue_consumers(app: Celery, timeout: float = INSPECT_SECONDS) -> dict[str, list[str]]:
    """Every queue of Atelier (and any other a worker takes) with the workers consuming it,
    as the workers that answer within `timeout` say. A broker that cannot be reached raises
    at once (one connection attempt), rather than after the producer's retries."""
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=3)
        replies = app.control.inspect(timeout=timeout, connection=connection).active_queues()
    replies = replies or {}
    found: dict[str, list[str]] = {name: [] for name in QUEUES}
    for worker, queues in sorted(replies.items()):
        for queue in queues or []:
            found.setdefault(queue["name"], []).append(worker)
    return found


def unconsumed_warning(queue: str) -> str:
    return (
        f"no worker consumes queue `{queue}`: its jobs wait there until one does; start one"
        f" with `{START.get(queue, f'atelier worker --queues {queue}')}`"
    )


class ConsumerWatch:
    """The last answer to "who consumes what", kept for `ttl` seconds, so a busy API asks the
    workers at most that often; each queue found without a consumer is logged once (until it
    has one again)."""

    def __init__(self, app: Celery, ttl: float = 30.0) -> None:
        self.app = app
        self.ttl = ttl
        self._lock = threading.Lock()
        self._known: dict[str, list[str]] = {}
        self._asked = float("-inf")
        self._logged: set[str] = set()

    def unconsumed(self, queue: str) -> bool:
        with self._lock:
            if time.monotonic() - self._asked > self.ttl:
                try:
                    self._known = queue_consumers(self.app)
                except Exception as error:  # noqa: BLE001 - no answer is no finding
                    log.info("cannot ask the workers which queues they consume: %s", error)
                    return False
                self._asked = time.monotonic()
            missing = not self._known.get(queue)
            if missing and queue not in self._logged:
                self._logged.add(queue)
                log.warning(unconsumed_warning(queue))
            elif not missing:
                self._logged.discard(queue)
            return missing
