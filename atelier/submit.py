"""Producer side of the job life: write rows first, then send ids, then follow the database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from celery import Celery
from sqlalchemy import select, update

from atelier.db import session_scope
from atelier.limits import limits, message_seconds
from atelier.models import Job, JobKind, JobState
from atelier.notify import job_feed


def new_task_id() -> str:
    return str(uuid.uuid4())


def send_jobs(
    app: Celery,
    db_url: str,
    task_name: str,
    job_ids: Sequence[int],
    countdown: float | None = None,
    task_id: str | None = None,
) -> str:
    """Send one message carrying `job_ids`, its task id remembered on every row.

    The rows must already be committed as `queued`: if this process dies after the commit and
    before the send, the scheduler's reaper finds them and sends them again. Producers write
    the task id with the rows (`task_id` given): a commit is the dearest step between queueing
    a job and a worker starting it, so sending then only reads. Without it (the reaper re-sending
    old rows) a fresh id is written first. The message carries time limits derived from its
    jobs' size (`atelier.limits`), scaled by the app's `atelier_time_limit_scale`.
    """
    with session_scope(db_url) as session:
        if task_id is None:
            task_id = new_task_id()
            session.execute(update(Job).where(Job.id.in_(job_ids)).values(celery_task_id=task_id))
        rows = list(session.scalars(select(Job).where(Job.id.in_(job_ids))))
        seconds = message_seconds(session, rows)
    options = {} if seconds is None else limits(seconds, app.conf.atelier_time_limit_scale)
    app.send_task(task_name, args=[list(job_ids)], task_id=task_id, countdown=countdown, **options)
    return task_id


def create_ping_job(db_url: str, max_attempts: int = 3, task_id: str | None = None) -> int:
    """A job that does nothing but prove the round trip producer -> broker -> worker -> DB;
    `task_id`: the id of the message that will carry it (see `send_jobs`)."""
    with session_scope(db_url) as session:
        job = Job(
            kind=JobKind.PING,
            max_attempts=max_attempts,
            inputs={},
            params={},
            meta={},
            celery_task_id=task_id,
        )
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
    interval: float = 1.0,
) -> dict[int, Job]:
    """Follow jobs until every one is finished or time runs out, reading the database (the
    record) whenever a notice says one of them changed (`atelier.notify`), and every `interval`
    seconds regardless, in case a notice cannot reach this process."""
    deadline = None if timeout is None else time.monotonic() + timeout
    wanted = set(job_ids)
    with job_feed(db_url) as feed:
        while True:
            jobs = job_states(db_url, job_ids)
            if on_update is not None:
                on_update(jobs)
            finished = all(JobState(job.state).finished for job in jobs.values())
            if finished and len(jobs) == len(job_ids):
                return jobs
            left = interval if deadline is None else min(interval, deadline - time.monotonic())
            if left <= 0:
                return jobs
            if feed is None:
                time.sleep(left)
                continue
            wait_until = time.monotonic() + left
            while not feed.wait(max(0.0, wait_until - time.monotonic())) & wanted:
                if time.monotonic() >= wait_until:
                    break
