"""Retry a call while what it talks to is away, instead of failing the work that made it.

The database's writes (`atelier.dbretry`) and the object store's calls (`atelier.objectstore`)
ride out a restart or a failover the same way: the call runs again after a pause that starts at
`FIRST_PAUSE` and doubles up to `LONGEST_PAUSE`, each retry logged, until a budget of seconds is
spent; then the last error is raised. Only errors the caller calls transient are retried.

Every pause is jittered: drawn at random between half its length and its length. Without that,
every process that met the same outage at the same moment would retry at the same moments and
hit the service together as it comes back.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
FIRST_PAUSE = 0.25
LONGEST_PAUSE = 4.0


def jittered(pause: float) -> float:
    """A pause of between half of `pause` and `pause` seconds, drawn at random."""
    return random.uniform(pause / 2, pause)


def retry_while_away(
    call: Callable[[], T],
    transient: Callable[[Exception], bool],
    seconds: float,
    what: str,
    away: str,
    log: logging.Logger,
) -> T:
    """Run `call`, again while it raises a `transient` error, for up to `seconds`; each retry
    is logged on `log` as "`what`: `away` unavailable (the error); retrying in N s"."""
    deadline = time.monotonic() + seconds
    pause = FIRST_PAUSE
    while True:
        try:
            return call()
        except Exception as error:
            wait = jittered(pause)
            if not transient(error) or time.monotonic() + wait > deadline:
                raise
            log.warning(
                "%s: %s unavailable (%s); retrying in %.3f s",
                what,
                away,
                str(error).splitlines()[0][:200],
                wait,
            )
            time.sleep(wait)
            pause = min(pause * 2, LONGEST_PAUSE)
