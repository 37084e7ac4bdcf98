"""Ride out a short database outage instead of spending a job's attempt on it.

A PostgreSQL restart, a failover or a dropped connection makes every write of a running job raise
`OperationalError` for a few seconds (`atelier.errors.database_away` says which errors mean the
database is away). Those writes (heartbeats, progress, loss and frame rows,
success, failure, release, claim; a cancel; the reaper's requeue, renewal and giving up) are
retried here with a growing pause (`atelier.backoff`),
for up to `ATELIER_DB_RETRY_SECONDS`; the engine's `pool_pre_ping` then replaces the dead
connections. Only an outage longer than that reaches the job, which is then given back without
spending an attempt (the error policy, `atelier.errors.verdict`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from atelier.backoff import retry_while_away
from atelier.errors import database_away
from atelier.settings import get_settings

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def retry_transient(call: Callable[P, R]) -> Callable[P, R]:
    """Retry `call` on a connection-level database error until the retry budget is spent.

    The calls wrapped are single transactions that may safely run again: a transaction that
    failed was rolled back, and each one is written so that running it twice changes nothing
    more than running it once.
    """

    @functools.wraps(call)
    def retried(*args: P.args, **kwargs: P.kwargs) -> R:
        return retry_while_away(
            lambda: call(*args, **kwargs),
            database_away,
            get_settings().db_retry_seconds,
            call.__name__,
            "database",
            log,
        )

    return retried
