"""The transitions of the worker holding a job: its claim, then its attempt's heartbeat, loss and
frame rows, success, failure and release, each fenced on the attempt it claimed (see
`atelier.jobs`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from atelier.attempts import claimed_by, end_attempts, open_attempt
from atelier.db import session_scope
from atelier.dbclock import as_aware, db_now, sql_now
from atelier.dbretry import retry_transient
from atelier.errors import JobCancelled, LeaseLost
from atelier.fences import (
    Claim,
    ClaimOutcome,
    Lease,
    Seen,
    already_succeeded,
    explain_lost,
    fenced,
)
from atelier.history import add_losses, replace_frames
from atelier.jobs.oversight import give_up
from atelier.models import AttemptOutcome, FrameStat, Job, JobState
from atelier.notify import job_changed

log = logging.getLogger(__name__)


def claim(
    db_url: str, job_id: int, worker: str, lease_seconds: float, task_id: str | None = None
) -> Claim:
    """Try to take job `job_id` for a new attempt (see `atelier.jobs`), recorded as a
    `JobAttempt` of `worker` under the message `task_id`.

    The claim carries a token of its own, written on its attempt: retried after its commit
    landed but its answer was lost (`atelier.dbretry`), it finds the job running under that
    token and goes on with the attempt instead of finding the job busy. A job whose identical
    twin is running (the database's unique index on the fingerprints of running jobs) stays
    queued and gets TWIN: the twin's `succeed` completes it.
    """
    return _claim_once(db_url, job_id, worker, lease_seconds, task_id, uuid.uuid4().hex)


@retry_transient
def _claim_once(
    db_url: str, job_id: int, worker: str, lease_seconds: float, task_id: str | None, token: str
) -> Claim:
    try:
        return _claim(db_url, job_id, worker, lease_seconds, task_id, token)
    except IntegrityError:
        return Claim(ClaimOutcome.TWIN)


def _claim(
    db_url: str, job_id: int, worker: str, lease_seconds: float, task_id: str | None, token: str
) -> Claim:
    lease = timedelta(seconds=lease_seconds)
    with session_scope(db_url) as session:
        now = sql_now(session)
        stale = now - lease
        claimed = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.attempts < Job.max_attempts,
                or_(
                    Job.state == JobState.QUEUED,
                    (Job.state == JobState.RUNNING) & (Job.heartbeat_at < stale),
                ),
            )
            .values(
                state=JobState.RUNNING,
                attempts=Job.attempts + 1,
                worker=worker,
                started_at=now,
                heartbeat_at=now,
                error=None,
                progress=0.0,
            )
            .returning(Job)
        ).scalar_one_or_none()
        if claimed is not None:
            open_attempt(session, claimed, task_id, token, now)
            job_changed(session, [job_id])
            return Claim(
                ClaimOutcome.CLAIMED, Lease(db_url, job_id, claimed.attempts, worker), claimed
            )
        job = session.get(Job, job_id)
        stale_at = db_now(session) - lease
        if job is not None and claimed_by(session, job, token):  # its commit landed, answer lost
            return Claim(ClaimOutcome.CLAIMED, Lease(db_url, job_id, job.attempts, worker), job)
    return _not_claimed(db_url, job, stale_at)


def _not_claimed(db_url: str, job: Job | None, stale_at: datetime) -> Claim:
    """Why a claim that changed nothing did not: the job is gone, finished, out of attempts (it
    is failed with the reason), or held by a live attempt."""
    if job is None:
        return Claim(ClaimOutcome.MISSING)
    if JobState(job.state).finished:
        return Claim(ClaimOutcome.FINISHED, job=job)
    exhausted = job.attempts >= job.max_attempts and (
        job.state == JobState.QUEUED or as_aware(job.heartbeat_at) < stale_at
    )
    # Fenced on what was read: a holder that renews its lease meanwhile keeps its job.
    if exhausted and give_up(db_url, Seen.of(job), stale_at):
        return Claim(ClaimOutcome.EXHAUSTED, job=job)
    return Claim(ClaimOutcome.BUSY, job=job)


@retry_transient
def heartbeat(
    lease: Lease,
    progress: float | None = None,
    meta: dict[str, Any] | None = None,
    losses: Iterable[Sequence[float]] = (),
) -> None:
    """Renew the lease, record progress and append loss rows, all in one transaction.

    Raises LeaseLost if another attempt took over, and nothing is written. Raises JobCancelled
    if the job was cancelled, after keeping what this attempt computed before it learnt of the
    cancel: its loss rows and the progress they reached.
    """
    losses = list(losses)
    values: dict[str, Any] = {}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, progress))
    if meta is not None:
        values["meta"] = meta
    stop: Exception | None = None
    with session_scope(lease.db_url) as session:
        renewed = fenced(lease).values(heartbeat_at=sql_now(session), **values)
        if session.execute(renewed).rowcount != 1:
            stop = explain_lost(session, lease)
            if not isinstance(stop, JobCancelled):
                raise stop
            held = select(Job.attempts).where(Job.id == lease.job_id)
            if session.execute(held).scalar_one() != lease.attempt:
                raise LeaseLost(f"job {lease.job_id} attempt {lease.attempt} is no longer current")
            if values:
                session.execute(
                    update(Job)
                    .where(Job.id == lease.job_id, Job.attempts == lease.attempt)
                    .values(**values)
                )
        add_losses(session, lease.job_id, losses)
        job_changed(session, [lease.job_id])
    if stop is not None:
        raise stop


@retry_transient
def record_frames(
    lease: Lease,
    start: int,
    end: int,
    frames: Iterable[tuple[int, list[list[int]]]],
    of: int | None = None,
) -> None:
    """Replace the face rows of frames [start, end): a re-run segment writes them once.

    With `of` (the video's frame count; segments run in any order), progress becomes the share
    of frames recorded so far, short of 1 until the job is finished.
    """
    frames = list(frames)
    with session_scope(lease.db_url) as session:
        # The rows first, the job's row last: rows that wait (for a lock on `frame_stats`) must
        # not hold the job's row meanwhile, or the lease keeper could not renew its lease. A
        # stale attempt's rows go with the transaction, rolled back when the fence refuses it.
        replace_frames(session, lease.job_id, start, end, frames)
        values: dict[str, Any] = {"heartbeat_at": sql_now(session)}
        if of:
            recorded = session.scalar(select(func.count()).where(FrameStat.job_id == lease.job_id))
            values["progress"] = min(0.99, recorded / of)
        if session.execute(fenced(lease).values(**values)).rowcount != 1:
            raise explain_lost(session, lease)
        job_changed(session, [lease.job_id])


@retry_transient
def succeed(
    lease: Lease,
    result_asset_id: int | None,
    meta: dict[str, Any],
    seconds: float,
    warning: str | None = None,
) -> None:
    """Mark the job done. Only called after its result file is completely in storage.
    `warning` is what the user must know although the job succeeded.

    Queued jobs with the same fingerprint (identical work submitted while this one was queued
    or running) are done too, in the same transaction: they point at this result, as a reused
    job does, and their messages find them finished.
    """
    with session_scope(lease.db_url) as session:
        now = sql_now(session)
        done = session.execute(
            fenced(lease).values(
                state=JobState.SUCCEEDED,
                progress=1.0,
                result_asset_id=result_asset_id,
                meta=meta,
                warning=warning,
                seconds=seconds,
                finished_at=now,
                heartbeat_at=now,
            )
        ).rowcount
        if done != 1 and not already_succeeded(session, lease, result_asset_id):
            raise explain_lost(session, lease)
        end_attempts(session, lease.job_id, AttemptOutcome.SUCCEEDED, attempt=lease.attempt)
        changed = [lease.job_id]
        fingerprint = session.scalar(select(Job.fingerprint).where(Job.id == lease.job_id))
        if fingerprint is not None and result_asset_id is not None:
            twins = session.execute(
                update(Job)
                .where(
                    Job.fingerprint == fingerprint,
                    Job.state == JobState.QUEUED,
                    Job.id != lease.job_id,
                )
                .values(
                    state=JobState.SUCCEEDED,
                    progress=1.0,
                    result_asset_id=result_asset_id,
                    reused_from_id=lease.job_id,
                    meta={**meta, "reused_from": lease.job_id},
                    warning=warning,
                    error=None,
                    finished_at=now,
                )
                .returning(Job.id)
            )
            changed.extend(twins.scalars())
        job_changed(session, changed)


@retry_transient
def fail(lease: Lease, error: str, meta: dict[str, Any] | None = None) -> bool:
    """Fail the job for good, keeping the error text for the user; False when the attempt was
    no longer current (nothing written)."""
    values: dict[str, Any] = {"state": JobState.FAILED, "error": error[:4000]}
    if meta is not None:
        values["meta"] = meta
    with session_scope(lease.db_url) as session:
        values["finished_at"] = sql_now(session)
        if session.execute(fenced(lease).values(**values)).rowcount != 1:
            log.warning("job %s: not failing, attempt %s is stale", lease.job_id, lease.attempt)
            return False
        end_attempts(session, lease.job_id, AttemptOutcome.FAILED, error, attempt=lease.attempt)
        job_changed(session, [lease.job_id])
    return True


@retry_transient
def release(lease: Lease, error: str | None, spent: bool = True) -> bool:
    """Give the job back to the queue after an error (or a worker that stops, with no error), so
    a retry can claim it; False when the attempt was no longer current (nothing written). Its
    progress goes back to 0: the next attempt starts over.

    An attempt that an outage cut short is not `spent`: the job's `max_attempts` goes up by one,
    so it does not count against the job, while `attempts` (the fencing token) still only grows.
    """
    values: dict[str, Any] = {"state": JobState.QUEUED, "error": error[:4000] if error else None}
    if not spent:
        values["max_attempts"] = Job.max_attempts + 1
    with session_scope(lease.db_url) as session:
        released = session.execute(fenced(lease).values(progress=0.0, **values)).rowcount == 1
        if released:
            outcome = AttemptOutcome.RELEASED if spent else AttemptOutcome.GIVEN_BACK
            end_attempts(session, lease.job_id, outcome, values["error"], attempt=lease.attempt)
            job_changed(session, [lease.job_id])
    return released
