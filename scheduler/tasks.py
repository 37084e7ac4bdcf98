"""The periodic tasks the beat sends; any worker consuming `default` runs them. Every worker
also sweeps the scratch area as it starts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_init

from atelier.scratch import sweep_scratch
from atelier.settings import get_settings
from scheduler.inboxes import Inbox, scan_inboxes
from scheduler.reaper import requeue_stale
from scheduler.retention import purge_expired
from scheduler.schedule import REAP, RETENTION, SCAN_INBOXES, SWEEP_SCRATCH


@shared_task(name=REAP, bind=True, ignore_result=True)
def reap(self: Task) -> dict:
    return {"requeued": requeue_stale(get_settings(), self.app)}


@shared_task(name=SCAN_INBOXES, bind=True, ignore_result=True)
def inboxes(self: Task, inboxes: list[dict[str, Any]] | None = None) -> dict:
    """Scan the inboxes the beat sent (its configuration); sent without them, the ones this
    worker's own `ATELIER_INBOXES` configures."""
    given = None if inboxes is None else [Inbox.model_validate(item) for item in inboxes]
    reports = scan_inboxes(get_settings(), self.app, given)
    return {r.inbox: {"taken": r.taken, "refused": r.refused, "batch": r.batch_id} for r in reports}


@shared_task(name=RETENTION, ignore_result=True)
def retention(days: float | None = None, protected: list[str] | None = None) -> dict:
    """Remove what the beat's configuration says has expired: its `days` and the styles of its
    inboxes (`protected`) travel in the message; sent without them, this worker's own
    `ATELIER_RETENTION_DAYS` and `ATELIER_INBOXES`."""
    age = None if days is None else timedelta(days=days)
    report = purge_expired(get_settings(), age, protected=protected)
    return {"removed": len(report.removed), "bytes": report.bytes_freed}


@shared_task(name=SWEEP_SCRATCH, ignore_result=True)
def scratch() -> dict:
    removed = sweep_scratch(get_settings(), "every ATELIER_SCRATCH_INTERVAL", work_files=True)
    return {"removed": removed}


@worker_init.connect
def _sweep_on_start(**_kwargs: Any) -> None:
    """What an earlier, killed process left in scratch goes as a worker starts (an `atelier
    worker`, or the worker a command runs in its own process on the embedded default)."""
    sweep_scratch(get_settings(), "worker start")
