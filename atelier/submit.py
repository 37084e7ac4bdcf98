"""Producer side of the job life: write rows first, then send ids, then wait on the database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from celery import Celery
from sqlalchemy import select, update

from atelier.db import session_scope
from atelier.limits import limits, message_seconds
from atelier.models import Job, JobKind, JobState


def send_jobs(
    app: Celery,
    db_url: str,
    task_name: str,
    job_ids: Sequence[int],
    countdown: float | None = None,
) -> str:
    """Send one message carrying `job_ids` and remember its task id on every row.

    The rows must already be committed as `queued`: if this process dies after the commit and
    before the send, the scheduler's reaper finds them and sends them again. The message carries
    time limits derived from its jobs' size (`atelier.limits`), scaled by the app's
    `atelier_time_limit_scale`.
    """
    task_id = str(uuid.uuid4())
    with session_scope(db_url) as session:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(celery_task_id=task_id))
        rows = list(session.scalars(select(Job).where(Job.id.in_(job_ids))))
    seconds = message_seconds(rows)
    options = {} if seconds is None else limits(seconds, app.conf.atelier_time_limit_scale)
    app.send_task(task_name, args=[list(job_ids)], task_id=task_id, countdown=countdown, **options)
    return task_id


def create_ping_job(db_url: str, max_attempts: int = 3) -> int:
    """A job that does nothing but prove the round trip producer -> broker -> worker -> DB."""
    with session_scope(db_url) as session:
        job = Job(kind=JobKind.PING, max_attempts=max_attempts, inputs={}, params={}, meta={})
        session.add(job)
        session.flush()
        return job.id


def job_states(db_url: str, job_ids: Sequence[int]) -> dict[int, Job]:
    with session_scope(db_url) as session:
        rows = session.execute(select(Job).where(Job.id.in_(job_ids))).scalars().all()
        return {job.id: job for job in rows}


def wait_for_jobs(
    db_url: str,
    job_ids: Sequence[int],
    timeout: float | None = None,
    on_update: Callable[[dict[int, Job]], None] | None = None,
    interval: float = 0.2,
) -> dict[int, Job]:
    """Poll the database (the source of truth) until every job is finished or time runs out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        jobs = job_states(db_url, job_ids)
        if on_update is not None:
            on_update(jobs)
        if all(JobState(job.state).finished for job in jobs.values()) and len(jobs) == len(job_ids):
            return jobs
        if deadline is not None and time.monotonic() > deadline:
            return jobs
        time.sleep(interval)
