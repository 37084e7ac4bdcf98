"""Ride out a short database outage instead of spending a job's attempt on it.

A PostgreSQL restart, a failover or a dropped connection makes every write of a running job raise
`OperationalError` for a few seconds. Those writes (heartbeats, progress, loss and frame rows,
success, failure, release, claim) are retried here with a growing pause, for up to
`ATELIER_DB_RETRY_SECONDS`; the engine's `pool_pre_ping` then replaces the dead connections. Only
an outage longer than that reaches the job, which is then treated like any other error.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

from atelier.settings import get_settings

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
TRANSIENT = (OperationalError, InterfaceError)
FIRST_PAUSE = 0.25
LONGEST_PAUSE = 4.0


def retry_transient(call: Callable[P, R]) -> Callable[P, R]:
    """Retry `call` on a connection-level database error until the retry budget is spent.

    The calls wrapped are single transactions that may safely run again: a transaction that
    failed was rolled back, and each one is written so that running it twice changes nothing
    more than running it once.
    """

    @functools.wraps(call)
    def retried(*args: P.args, **kwargs: P.kwargs) -> R:
        deadline = time.monotonic() + get_settings().db_retry_seconds
        pause = FIRST_PAUSE
        while True:
            try:
                return call(*args, **kwargs)
            except TRANSIENT as error:
                if time.monotonic() + pause > deadline:
                    raise
                log.warning(
                    "%s: database unavailable (%s); retrying in %.2f s",
                    call.__name__,
                    str(error).splitlines()[0][:200],
                    pause,
                )
                time.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE)

    return retried
