"""Each attempt at a job as a row of its own (`JobAttempt`), so a job's history is kept.

The job row says what the job is now; its attempts say who tried, under which message, when,
and how each try ended: a job that failed twice and then succeeded shows the first two errors.
These are written only inside the transitions of `atelier.jobs`, in their transactions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from atelier.dbclock import sql_now
from atelier.history import forget
from atelier.models import AttemptOutcome, Job, JobAttempt, JobState


def open_attempt(session: Session, job: Job, task_id: str | None, token: str, now: Any) -> None:
    """Record the attempt `job` was just claimed for; the attempts before it that never ended
    (their lease lapsed and this claim took over) end as abandoned. A new attempt starts from
    scratch: what earlier attempts recorded (loss and frame rows) is dropped."""
    if job.attempts > 1:
        forget(session, job.id)
    end_attempts(
        session,
        job.id,
        AttemptOutcome.ABANDONED,
        f"its lease lapsed; attempt {job.attempts} took over",
        before=job.attempts,
    )
    session.add(
        JobAttempt(
            job_id=job.id,
            attempt=job.attempts,
            worker=job.worker,
            task_id=task_id,
            token=token,
            claimed_at=now,
            heartbeat_at=now,
            outcome=AttemptOutcome.RUNNING,
        )
    )
    session.flush()


def claimed_by(session: Session, job: Job, token: str) -> bool:
    """Whether `job` is running its current attempt as the one claimed with `token`."""
    if job.state != JobState.RUNNING:
        return False
    found = session.scalar(
        select(JobAttempt.attempt).where(
            JobAttempt.job_id == job.id,
            JobAttempt.token == token,
            JobAttempt.outcome == AttemptOutcome.RUNNING,
        )
    )
    return found is not None and found == job.attempts


def end_attempts(
    session: Session,
    job_id: int,
    outcome: AttemptOutcome,
    error: str | None = None,
    *,
    attempt: int | None = None,
    before: int | None = None,
) -> None:
    """End the job's attempts still running (only `attempt`, or only those before `before`),
    with the job's last heartbeat as theirs."""
    last_beat = select(Job.heartbeat_at).where(Job.id == job_id).scalar_subquery()
    stmt = update(JobAttempt).where(
        JobAttempt.job_id == job_id, JobAttempt.outcome == AttemptOutcome.RUNNING
    )
    if attempt is not None:
        stmt = stmt.where(JobAttempt.attempt == attempt)
    if before is not None:
        stmt = stmt.where(JobAttempt.attempt < before)
    session.execute(
        stmt.values(
            outcome=outcome,
            error=error[:4000] if error else None,
            heartbeat_at=last_beat,
            ended_at=sql_now(session),
        )
    )


def history(session: Session, job_id: int) -> list[JobAttempt]:
    """The job's attempts, first first."""
    return list(
        session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.attempt)
        )
    )
