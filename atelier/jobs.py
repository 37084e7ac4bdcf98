"""The job state machine, with fencing, so a job is never lost and never done twice.

A worker *claims* a job with a compare-and-set on its row: `queued` (or `running` with a lease
gone stale) becomes `running` and `attempts` goes up by one. That attempt number is the fencing
token: every later write (heartbeat, loss rows, success, failure) is conditioned on it, so a
worker that was presumed dead and comes back cannot overwrite the attempt that replaced it.

Leases are read and written by the database's clock (PostgreSQL's `now()`), not by the clock of
the machine that happens to write or check them, so machines whose clocks disagree cannot take
each other's live jobs. The embedded SQLite database is only ever used from one machine, whose
clock is used. Every write retries across a short database outage (`atelier.dbretry`).
Every change also notifies followers (`atelier.notify`) when it commits.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from atelier.db import session_scope
from atelier.dbretry import retry_transient
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


def _now(session: Session) -> Any:
    """Now by the database's clock: PostgreSQL's `now()` (the transaction's start) as an SQL
    expression; on SQLite, this machine's clock."""
    return func.now() if session.get_bind().dialect.name == "postgresql" else utcnow()


def db_now(session: Session) -> datetime:
    """The database's clock as a value (see `_now`)."""
    now = _now(session)
    return now if isinstance(now, datetime) else _as_aware(session.scalar(select(now)))


@retry_transient
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
    lease = timedelta(seconds=lease_seconds)
    with session_scope(db_url) as session:
        now = _now(session)
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
            attempt = claimed.attempts
            if attempt > 1:
                # A new attempt starts from scratch: drop what an earlier, dead attempt recorded.
                session.execute(delete(LossRecord).where(LossRecord.job_id == job_id))
                session.execute(delete(FrameStat).where(FrameStat.job_id == job_id))
            job_changed(session, [job_id])
            return Claim(ClaimOutcome.CLAIMED, Lease(db_url, job_id, attempt, worker), claimed)
        job = session.get(Job, job_id)
        stale_at = db_now(session) - lease
    if job is None:
        return Claim(ClaimOutcome.MISSING)
    if JobState(job.state).finished:
        return Claim(ClaimOutcome.FINISHED, job=job)
    if job.attempts >= job.max_attempts and (
        job.state == JobState.QUEUED or _as_aware(job.heartbeat_at) < stale_at
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
        renewed = _fenced(lease).values(heartbeat_at=_now(session), **values)
        if session.execute(renewed).rowcount != 1:
            stop = _explain_lost(session, lease)
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
        _add_losses(session, lease.job_id, losses)
        job_changed(session, [lease.job_id])
    if stop is not None:
        raise stop


def _add_losses(session: Session, job_id: int, losses: list[Sequence[float]]) -> None:
    """Insert loss rows, replacing rows of the same iterations: a heartbeat retried after a
    commit whose answer was lost writes them once."""
    if not losses:
        return
    iterations = [int(row[0]) for row in losses]
    session.execute(
        delete(LossRecord).where(LossRecord.job_id == job_id, LossRecord.iteration.in_(iterations))
    )
    session.execute(
        insert(LossRecord),
        [
            {"job_id": job_id, "iteration": int(it), "total": t, "content": c, "style": s, "tv": v}
            for it, t, c, s, v in losses
        ],
    )


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
        if session.execute(_fenced(lease).values(heartbeat_at=_now(session))).rowcount != 1:
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
        if of:
            recorded = session.scalar(select(func.count()).where(FrameStat.job_id == lease.job_id))
            session.execute(_fenced(lease).values(progress=min(0.99, recorded / of)))


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
        now = _now(session)
        done = session.execute(
            _fenced(lease).values(
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
        if done != 1 and not _already_succeeded(session, lease, result_asset_id):
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
                    warning=warning,
                    error=None,
                    finished_at=now,
                )
                .returning(Job.id)
            )
            changed.extend(twins.scalars())
        job_changed(session, changed)


def _already_succeeded(session: Session, lease: Lease, result_asset_id: int | None) -> bool:
    """Whether this attempt's success is already recorded (a retried commit that had landed)."""
    row = session.execute(
        select(Job.state, Job.attempts, Job.result_asset_id).where(Job.id == lease.job_id)
    ).one_or_none()
    return row is not None and tuple(row) == (JobState.SUCCEEDED, lease.attempt, result_asset_id)


@retry_transient
def fail(lease: Lease, error: str, meta: dict[str, Any] | None = None) -> bool:
    """Fail the job for good, keeping the error text for the user; False when the attempt was
    no longer current (nothing written)."""
    values: dict[str, Any] = {"state": JobState.FAILED, "error": error[:4000]}
    if meta is not None:
        values["meta"] = meta
    with session_scope(lease.db_url) as session:
        values["finished_at"] = _now(session)
        if session.execute(_fenced(lease).values(**values)).rowcount != 1:
            log.warning("job %s: not failing, attempt %s is stale", lease.job_id, lease.attempt)
            return False
        job_changed(session, [lease.job_id])
    return True


@retry_transient
def fail_held(db_url: str, job_ids: Sequence[int], worker: str, error: str) -> list[int]:
    """Fail for good the jobs of `job_ids` still running under `worker` (a process that was
    killed: it can no longer say so itself); returns their ids."""
    with session_scope(db_url) as session:
        failed = list(
            session.scalars(
                update(Job)
                .where(Job.id.in_(job_ids), Job.state == JobState.RUNNING, Job.worker == worker)
                .values(state=JobState.FAILED, error=error[:4000], finished_at=_now(session))
                .returning(Job.id)
            )
        )
        job_changed(session, failed)
    return failed


@retry_transient
def release(lease: Lease, error: str | None) -> None:
    """Give the job back to the queue after a transient error (or a worker that stops, with no
    error), so a retry can claim it. Its progress goes back to 0: the next attempt starts over."""
    text = error[:4000] if error else None
    with session_scope(lease.db_url) as session:
        released = _fenced(lease).values(state=JobState.QUEUED, error=text, progress=0.0)
        if session.execute(released).rowcount:
            job_changed(session, [lease.job_id])


@retry_transient
def give_up(db_url: str, job_id: int, reason: str) -> None:
    """Fail a job nobody holds (too many attempts); leaves finished jobs alone."""
    with session_scope(db_url) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_([JobState.QUEUED, JobState.RUNNING]))
            .values(state=JobState.FAILED, error=reason, finished_at=_now(session))
        )
        job_changed(session, [job_id])


def cancel(db_url: str, job_id: int) -> bool:
    """Cancel a queued or running job; a running worker stops at its next heartbeat."""
    with session_scope(db_url) as session:
        changed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_([JobState.QUEUED, JobState.RUNNING]))
            .values(state=JobState.CANCELLED, finished_at=_now(session))
        ).rowcount
        if changed:
            job_changed(session, [job_id])
    return changed == 1
