"""The beat schedule: which periodic task runs how often, all on the `default` queue.

Each entry expires after its own interval, so while no worker consumes `default` the beat does not
pile up a backlog of identical passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atelier.settings import Settings
from scheduler.inboxes import Inbox

REAP = "atelier.scheduler.reap"
SCAN_INBOXES = "atelier.scheduler.scan_inboxes"
RETENTION = "atelier.scheduler.retention"
SWEEP_SCRATCH = "atelier.scheduler.sweep_scratch"


def _entry(task: str, every: float) -> dict[str, Any]:
    return {"task": task, "schedule": every, "options": {"queue": "default", "expires": every}}


def beat_schedule(settings: Settings, inboxes: Sequence[Inbox] = ()) -> dict[str, dict[str, Any]]:
    """The reaper and the scratch sweep always; inboxes when some are given; retention when an
    age is set.

    The inboxes' configuration travels in every scan message (the task's `inboxes` argument),
    and the retention age and the inboxes' styles in every retention message (`days`,
    `protected`), so it is the beat's `ATELIER_INBOXES` and `ATELIER_RETENTION_DAYS` that count,
    not those of the worker that runs the pass.
    """
    schedule = {
        "reaper": _entry(REAP, settings.reaper_interval),
        "scratch": _entry(SWEEP_SCRATCH, settings.scratch_interval),
    }
    if inboxes:
        schedule["inboxes"] = {
            **_entry(SCAN_INBOXES, settings.inbox_interval),
            "kwargs": {"inboxes": [inbox.model_dump(mode="json") for inbox in inboxes]},
        }
    if settings.retention_days > 0:
        protected = sorted({style for inbox in inboxes for style in inbox.styles})
        schedule["retention"] = {
            **_entry(RETENTION, settings.retention_interval),
            "kwargs": {"days": settings.retention_days, "protected": protected},
        }
    return schedule
