"""The beat schedule: which periodic task runs how often, all on the `default` queue.

Each entry expires after its own interval, so while no worker consumes `default` the beat does not
pile up a backlog of identical passes.
"""

from __future__ import annotations

from typing import Any

from atelier.settings import Settings

REAP = "atelier.scheduler.reap"
SCAN_INBOXES = "atelier.scheduler.scan_inboxes"
RETENTION = "atelier.scheduler.retention"


def _entry(task: str, every: float) -> dict[str, Any]:
    return {"task": task, "schedule": every, "options": {"queue": "default", "expires": every}}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The reaper always; inboxes when some are configured; retention when an age is set."""
    schedule = {"reaper": _entry(REAP, settings.reaper_interval)}
    if (settings.inboxes or "").strip():
        schedule["inboxes"] = _entry(SCAN_INBOXES, settings.inbox_interval)
    if settings.retention_days > 0:
        schedule["retention"] = _entry(RETENTION, settings.retention_interval)
    return schedule
