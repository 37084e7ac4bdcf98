"""The job state machine, with fencing, so a job is never lost and never done twice.

A worker *claims* a job with a compare-and-set on its row: `queued` (or `running` with a lease
gone stale) becomes `running` and `attempts` goes up by one. That attempt number is the fencing
token: every later write (heartbeat, loss rows, success, failure) is conditioned on it, so a
worker that was presumed dead and comes back cannot overwrite the attempt that replaced it.
Every change also notifies followers (`atelier.notify`) when it commits.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from atelier.db import session_scope
from atelier.errors import JobCancelled, LeaseLost
from atelier.models import FrameStat, Job, JobState, LossRecord, utcnow
from atelier.notify import job_changed

log = logging.getLogger(__name__)


class ClaimOutcome(enum.StrEnum):
    CLAIMED = "claimed"
    FINISHED = "finished"  # already succeeded/failed/cancelled: a redelivery, nothing to do
    BUSY = "busy"  # another attempt holds a fresh lease
    MISSING = "missing"
    EXHAUSTED = "exhausted"  # too many attempts: the job was failed with the reason
    TWIN = "twin"  # identical work (same fingerprint) is running as another job: wait for it


@dataclass(frozen=True)
class Lease:
    """Proof that this process holds attempt `attempt` of job `job_id`."""

    db_url: str
    job_id: int
    attempt: int
    worker: str


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    lease: Lease | None = None
    job: Job | None = None


def claim(db_url: str, job_id: int, worker: str, lease_seconds: float) -> Claim:
    """Try to take job `job_id` for a new attempt (see the module docstring).

    A job whose identical twin is running (the database's unique index on the fingerprints of
    running jobs) stays queued and gets TWIN: the twin's `succeed` completes it.
    """
    try:
        return _claim(db_url, job_id, worker, lease_seconds)
    except IntegrityError:
        return Claim(ClaimOutcome.TWIN)


def _claim(db_url: str, job_id: int, worker: str, lease_seconds: float) -> Claim:
    now = utcnow()
    stale = now - timedelta(seconds=lease_seconds)
    with session_scope(db_url) as session:
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
            attempt = claimed.attempts
            if attempt > 1:
                # A new attempt starts from scratch: drop what an earlier, dead attempt recorded.
                session.execute(delete(LossRecord).where(LossRecord.job_id == job_id))
                session.execute(delete(FrameStat).where(FrameStat.job_id == job_id))
            job_changed(session, [job_id])
            return Claim(ClaimOutcome.CLAIMED, Lease(db_url, job_id, attempt, worker), claimed)
        job = session.get(Job, job_id)
    if job is None:
        return Claim(ClaimOutcome.MISSING)
    if JobState(job.state).finished:
        return Claim(ClaimOutcome.FINISHED, job=job)
    if job.attempts >= job.max_attempts and (
        job.state == JobState.QUEUED or _as_aware(job.heartbeat_at) < stale
    ):
        give_up(db_url, job_id, exhausted_reason(job.attempts, job.worker))
        return Claim(ClaimOutcome.EXHAUSTED, job=job)
    return Claim(ClaimOutcome.BUSY, job=job)


def exhausted_reason(attempts: int, worker: str | None) -> str:
    """Why a job nobody finished was failed; shared by `claim` and the scheduler's reaper."""
    return (
        f"gave up after {attempts} attempts: the worker running it "
        f"({worker or 'unknown'}) stopped without finishing"
    )


def _as_aware(value: datetime | None) -> datetime:
    """SQLite returns naive datetimes; they were written as UTC."""
    if value is None:
        return datetime.min.replace(tzinfo=utcnow().tzinfo)
    return value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)


def _fenced(lease: Lease):
    return update(Job).where(
        Job.id == lease.job_id, Job.attempts == lease.attempt, Job.state == JobState.RUNNING
    )


def _explain_lost(session: Any, lease: Lease) -> Exception:
    state = session.execute(select(Job.state).where(Job.id == lease.job_id)).scalar_one_or_none()
    if state == JobState.CANCELLED:
        return JobCancelled(f"job {lease.job_id} was cancelled")
    return LeaseLost(f"job {lease.job_id} attempt {lease.attempt} is no longer current")


def heartbeat(
    lease: Lease,
    progress: float | None = None,
    meta: dict[str, Any] | None = None,
    losses: Iterable[Sequence[float]] = (),
) -> None:
    """Renew the lease, record progress and append loss rows, all in one transaction.

    Raises JobCancelled if the job was cancelled, LeaseLost if another attempt took over; in
    both cases nothing is written.
    """
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, progress))
    if meta is not None:
        values["meta"] = meta
    with session_scope(lease.db_url) as session:
        if session.execute(_fenced(lease).values(**values)).rowcount != 1:
            raise _explain_lost(session, lease)
        loss_rows = [
            {
                "job_id": lease.job_id,
                "iteration": int(it),
                "total": t,
                "content": c,
                "style": s,
                "tv": v,
            }
            for it, t, c, s, v in losses
        ]
        if loss_rows:
            session.execute(insert(LossRecord), loss_rows)
        job_changed(session, [lease.job_id])


def record_frames(
    lease: Lease, start: int, end: int, frames: Iterable[tuple[int, list[list[int]]]]
) -> None:
    """Replace the face rows of frames [start, end): a re-run segment writes them once."""
    with session_scope(lease.db_url) as session:
        if session.execute(_fenced(lease).values(heartbeat_at=utcnow())).rowcount != 1:
            raise _explain_lost(session, lease)
        session.execute(
            delete(FrameStat).where(
                FrameStat.job_id == lease.job_id, FrameStat.frame >= start, FrameStat.frame < end
            )
        )
        rows = [
            {"job_id": lease.job_id, "frame": f, "faces": len(boxes), "boxes": boxes}
            for f, boxes in frames
        ]
        if rows:
            session.execute(insert(FrameStat), rows)


def succeed(
    lease: Lease, result_asset_id: int | None, meta: dict[str, Any], seconds: float
) -> None:
    """Mark the job done. Only called after its result file is completely in storage.

    Queued jobs with the same fingerprint (identical work submitted while this one was queued
    or running) are done too, in the same transaction: they point at this result, as a reused
    job does, and their messages find them finished.
    """
    with session_scope(lease.db_url) as session:
        done = session.execute(
            _fenced(lease).values(
                state=JobState.SUCCEEDED,
                progress=1.0,
                result_asset_id=result_asset_id,
                meta=meta,
                seconds=seconds,
                finished_at=utcnow(),
                heartbeat_at=utcnow(),
            )
        ).rowcount
        if done != 1:
            raise _explain_lost(session, lease)
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
                    error=None,
                    finished_at=utcnow(),
                )
                .returning(Job.id)
            )
            changed.extend(twins.scalars())
        job_changed(session, changed)


def fail(lease: Lease, error: str, meta: dict[str, Any] | None = None) -> None:
    """Fail the job for good, keeping the error text for the user."""
    values: dict[str, Any] = {
        "state": JobState.FAILED,
        "error": error[:4000],
        "finished_at": utcnow(),
    }
    if meta is not None:
        values["meta"] = meta
    with session_scope(lease.db_url) as session:
        if session.execute(_fenced(lease).values(**values)).rowcount != 1:
            log.warning("job %s: not failing, attempt %s is stale", lease.job_id, lease.attempt)
            return
        job_changed(session, [lease.job_id])


def release(lease: Lease, error: str) -> None:
    """Give the job back to the queue after a transient error, so a retry can claim it."""
    with session_scope(lease.db_url) as session:
        session.execute(_fenced(lease).values(state=JobState.QUEUED, error=error[:4000]))
        job_changed(session, [lease.job_id])


def give_up(db_url: str, job_id: int, reason: str) -> None:
    """Fail a job nobody holds (too many attempts); leaves finished jobs alone."""
    with session_scope(db_url) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_([JobState.QUEUED, JobState.RUNNING]))
            .values(state=JobState.FAILED, error=reason, finished_at=utcnow())
        )
        job_changed(session, [job_id])


def cancel(db_url: str, job_id: int) -> bool:
    """Cancel a queued or running job; a running worker stops at its next heartbeat."""
    with session_scope(db_url) as session:
        changed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_([JobState.QUEUED, JobState.RUNNING]))
            .values(state=JobState.CANCELLED, finished_at=utcnow())
        ).rowcount
        if changed:
            job_changed(session, [job_id])
    return changed == 1
