"""The beat's scheduler sends the schedule only while its beat holds the single-beat lock.

A beat that cannot renew its lock's Redis key (Redis out of its reach) cannot tell whether
another beat has taken the lock after the key expired; if it went on, the two could send every
periodic task twice the moment it reached Redis again, its own backlog of due entries first.
So each tick first asks the lock (`BeatLock.holds`); while it is not held, nothing is sent and
due entries wait. They are sent, once each, when a renewal succeeds; if another beat has the key
instead, the lock stops this beat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.beat import PersistentScheduler

PAUSED_TICK_SECONDS = 0.5
"""How often a beat that does not hold its lock looks again."""


class HeldScheduler(PersistentScheduler):
    """Celery's default scheduler, ticking only while `holds()` says the lock is held."""

    holds: Callable[[], bool] = staticmethod(lambda: True)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.holds():
            return PAUSED_TICK_SECONDS
        return super().tick(*args, **kwargs)


def held_scheduler(holds: Callable[[], bool]) -> type[HeldScheduler]:
    """A `HeldScheduler` class for `Beat(scheduler=...)` (Celery builds the instance itself)."""
    return type("HeldScheduler", (HeldScheduler,), {"holds": staticmethod(holds)})
