"""Sending and revoking: the API's only contact with the broker.

Rows are committed before anything is sent (see `atelier.submit`), so a broker outage never loses
a job: the request answers 503 and the queued rows are sent again by the scheduler's reaper.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import select

from api.http.deps import Services
from api.http.errors import RETRY_AFTER_SECONDS, ApiError
from atelier import jobs
from atelier.batches import BatchPlan, send_plan
from atelier.consumers import queue_of, unconsumed_warning
from atelier.db import session_scope
from atelier.models import Job, JobState

log = logging.getLogger(__name__)


def send(svc: Services, plan: BatchPlan) -> list[str]:
    """Send the plan's messages; returns warnings for the client: a queue no worker consumes
    (its jobs would wait without a word). Embedded, the API's jobs wait for a worker anyway."""
    try:
        send_plan(svc.celery, svc.settings, plan)
    except Exception as error:  # kombu and redis raise many connection errors
        # The library's own words go to the log only: they can be wrong about what comes next
        # (Celery's result consumer says the process "must be restarted"; it need not be).
        log.error("batch %s: cannot send to the broker: %r", plan.batch_id, error)
        raise ApiError(
            503,
            f"batch {plan.batch_id} is saved, but the broker cannot be reached right now; its "
            "queued jobs are sent automatically once it is back",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from error
    queue = queue_of(plan.task_name)
    if svc.settings.embedded or not plan.messages or not svc.consumers.unconsumed(queue):
        return []
    return [unconsumed_warning(queue)]


def cancel(svc: Services, job_ids: Iterable[int]) -> list[int]:
    """Cancel queued or running jobs; returns the ids that were cancelled.

    A running job stops at its next heartbeat (the worker sees the state). A message carries
    several jobs of a grid, so its task is revoked only once none of its jobs is left to run:
    revoking it earlier would drop its other, still wanted, jobs.
    """
    cancelled = [job_id for job_id in job_ids if jobs.cancel(svc.db_url, job_id)]
    if not cancelled:
        return cancelled
    with session_scope(svc.db_url) as session:
        task_ids = set(
            session.scalars(
                select(Job.celery_task_id).where(
                    Job.id.in_(cancelled), Job.celery_task_id.is_not(None)
                )
            )
        )
        still_wanted = set(
            session.scalars(
                select(Job.celery_task_id).where(
                    Job.celery_task_id.in_(task_ids),
                    Job.state.in_([JobState.QUEUED, JobState.RUNNING]),
                )
            )
        )
    for task_id in sorted(task_ids - still_wanted):
        _revoke(svc, task_id)
    return cancelled


def _revoke(svc: Services, task_id: str) -> None:
    if svc.settings.embedded:
        return  # the embedded worker has no remote control; the job state alone stops it
    try:
        svc.celery.control.revoke(task_id)
    except Exception as error:  # noqa: BLE001 - the cancel itself is already recorded
        log.warning("could not revoke task %s: %s", task_id, error)
