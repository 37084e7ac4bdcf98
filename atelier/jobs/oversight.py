"""The transitions of those who do not hold a job: the user's cancel, the reaper's requeue, renewal
and giving up (also a claim's, on a job out of attempts), the worker's main process failing the
jobs of a process it killed, and a batch's reuse of a finished twin. Each is fenced on what it saw
of the job (see `atelier.jobs`), so an attempt alive after all keeps its job.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, select, update
from sqlalchemy.orm import Session

from atelier.attempts import end_attempts
from atelier.db import session_scope
from atelier.dbclock import sql_now
from atelier.dbretry import retry_transient
from atelier.fences import Seen, as_seen, exhausted_reason
from atelier.models import AttemptOutcome, Job, JobAttempt, JobState
from atelier.notify import job_changed


@retry_transient
def fail_held(
    db_url: str, job_ids: Sequence[int], worker: str, task_id: str, error: str
) -> list[int]:
    """Fail for good the jobs of `job_ids` whose current attempt is the one that the killed run
    of task `task_id` in process `worker` claimed (it can no longer say so itself); returns
    their ids. A job another attempt has taken over since is left alone, even one claimed under
    the same `worker` (a restarted worker whose process got the same pid): the attempt it holds
    is not the one recorded with `task_id`."""
    held = exists().where(
        JobAttempt.job_id == Job.id,
        JobAttempt.attempt == Job.attempts,
        JobAttempt.task_id == task_id,
        JobAttempt.outcome == AttemptOutcome.RUNNING,
    )
    with session_scope(db_url) as session:
        failed = session.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.state == JobState.RUNNING, Job.worker == worker, held)
            .values(state=JobState.FAILED, error=error[:4000], finished_at=sql_now(session))
            .returning(Job.id, Job.attempts)
        ).all()
        for job_id, attempt in failed:
            end_attempts(session, job_id, AttemptOutcome.FAILED, error, attempt=attempt)
        job_changed(session, [job_id for job_id, _ in failed])
    return [job_id for job_id, _ in failed]


def _change_seen(
    db_url: str,
    seen: Seen,
    lease_cut: datetime,
    values: Callable[[Session], dict[str, Any]],
    landed: ColumnElement[bool] | None = None,
) -> bool:
    """Write `values(session)` to the job if it is still as `seen` (see `as_seen`) and notify;
    False when it is not (nothing written), unless the job is as `landed` says this very write
    leaves it (an earlier try of it committed). A running attempt that leaves `running` here
    ends as abandoned, with the job's new error as the reason."""
    with session_scope(db_url) as session:
        written = values(session)
        if session.execute(as_seen(seen, lease_cut).values(**written)).rowcount != 1:
            if landed is None:
                return False
            return session.scalar(select(Job.id).where(Job.id == seen.job_id, landed)) is not None
        if seen.state == JobState.RUNNING and "state" in written:
            outcome, error = AttemptOutcome.ABANDONED, written.get("error")
            end_attempts(session, seen.job_id, outcome, error, attempt=seen.attempts)
        job_changed(session, [seen.job_id])
    return True


@retry_transient
def give_up(db_url: str, seen: Seen, lease_cut: datetime, now: datetime | None = None) -> bool:
    """Fail a job that has used all its attempts and that nobody holds any more, with the reason
    (`exhausted_reason`); False (nothing written) if it is no longer as `seen`.
    `now`: the time written as its end, by default the database's clock."""
    return _change_seen(
        db_url,
        seen,
        lease_cut,
        lambda session: {
            "state": JobState.FAILED,
            "error": exhausted_reason(seen.attempts, seen.worker),
            "finished_at": now or sql_now(session),
        },
    )


@retry_transient
def requeue(db_url: str, seen: Seen, lease_cut: datetime, now: datetime) -> bool:
    """Put a stranded job back to `queued` (the reaper, which then sends it again), fenced as
    `give_up` is: a worker that is alive after all keeps its job, and the dead attempt is fenced
    off by the state change. A re-queued job shows no progress: its next attempt starts over.

    A retry whose earlier try's commit landed but whose answer was lost recognises that try's
    write (the job queued at `now` in the attempt it saw) and answers True, so the reaper sends
    the job instead of leaving it for another grace period."""
    values: dict[str, Any] = {"state": JobState.QUEUED, "queued_at": now, "progress": 0.0}
    if seen.state == JobState.RUNNING:
        values["error"] = f"worker {seen.worker or 'unknown'} stopped renewing its lease; re-queued"
    own = (Job.state == JobState.QUEUED) & (Job.attempts == seen.attempts) & (Job.queued_at == now)
    return _change_seen(db_url, seen, lease_cut, lambda _session: values, landed=own)


@retry_transient
def renew(db_url: str, seen: Seen, lease_cut: datetime, now: datetime) -> bool:
    """Renew the lapsed lease of a running attempt whose work waits in the broker (a segmented
    video's segments or join), if it is still the attempt `seen`."""
    return _change_seen(db_url, seen, lease_cut, lambda _session: {"heartbeat_at": now})


def reuse(session: Session, reused: Sequence[tuple[Job, Job]]) -> None:
    """Mark just-written queued jobs (`(job, earlier)` pairs, inside the transaction that wrote
    them) succeeded with the result of an identical job that succeeded before (`earlier`)."""
    if not reused:
        return
    now = sql_now(session)
    for job, earlier in reused:
        origin = earlier.reused_from_id or earlier.id
        session.execute(
            update(Job)
            .where(Job.id == job.id, Job.state == JobState.QUEUED, Job.attempts == 0)
            .values(
                state=JobState.SUCCEEDED,
                progress=1.0,
                result_asset_id=earlier.result_asset_id,
                reused_from_id=origin,
                meta={**earlier.meta, "reused_from": origin},
                finished_at=now,
            )
        )
    job_changed(session, [job.id for job, _ in reused])


def cancel(db_url: str, job_id: int) -> bool:
    """Cancel a queued or running job (a running worker stops at its next heartbeat); False
    when it was neither (nothing written).

    Retried across a database outage like every transition: a retry whose earlier try's commit
    landed but whose answer was lost finds the job cancelled, changes nothing and answers True,
    as that try would have.
    """
    return _cancel_once(db_url, job_id, itertools.count())


@retry_transient
def _cancel_once(db_url: str, job_id: int, tries: Iterator[int]) -> bool:
    retried = next(tries) > 0
    with session_scope(db_url) as session:
        changed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_([JobState.QUEUED, JobState.RUNNING]))
            .values(state=JobState.CANCELLED, finished_at=sql_now(session))
        ).rowcount
        if changed:
            end_attempts(session, job_id, AttemptOutcome.CANCELLED)
            job_changed(session, [job_id])
            return True
        state = session.scalar(select(Job.state).where(Job.id == job_id))
        return retried and state == JobState.CANCELLED
