"""What every write of a job is fenced on, so a write by someone who no longer holds it is lost.

A worker's write carries its `Lease` (the attempt it claimed); someone else's write (the reaper,
a claim that lost) carries what it `Seen` of the job. The transitions themselves are in
`atelier.jobs`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Update, select, update
from sqlalchemy.orm import Session

from atelier.errors import JobCancelled, LeaseLost
from atelier.models import Job, JobState


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


@dataclass(frozen=True)
class Seen:
    """A job as someone other than its holder saw it (the reaper, a claim that lost): what its
    transitions are fenced on."""

    job_id: int
    attempts: int
    state: str
    worker: str | None = None

    @classmethod
    def of(cls, job: Job) -> Seen:
        return cls(job.id, job.attempts, job.state, job.worker)


def exhausted_reason(attempts: int, worker: str | None) -> str:
    """Why a job nobody finished was failed; shared by `claim` and the scheduler's reaper."""
    return (
        f"gave up after {attempts} attempts: the worker running it "
        f"({worker or 'unknown'}) stopped without finishing"
    )


def fenced(lease: Lease) -> Update:
    """An update of the job only while `lease` is its current, running attempt."""
    return update(Job).where(
        Job.id == lease.job_id, Job.attempts == lease.attempt, Job.state == JobState.RUNNING
    )


def as_seen(seen: Seen, lease_cut: datetime) -> Update:
    """An update of the job only while it is as `seen`: the same attempt, still queued, or still
    running with its lease lapsed before `lease_cut` (a holder that renewed it keeps its job)."""
    stmt = update(Job).where(Job.id == seen.job_id, Job.attempts == seen.attempts)
    if seen.state == JobState.RUNNING:
        return stmt.where(Job.state == JobState.RUNNING, Job.heartbeat_at < lease_cut)
    return stmt.where(Job.state == JobState.QUEUED)


def explain_lost(session: Session | Any, lease: Lease) -> Exception:
    """Why a fenced write of `lease` changed nothing: the job was cancelled, or it is another
    attempt's now."""
    state = session.execute(select(Job.state).where(Job.id == lease.job_id)).scalar_one_or_none()
    if state == JobState.CANCELLED:
        return JobCancelled(f"job {lease.job_id} was cancelled")
    return LeaseLost(f"job {lease.job_id} attempt {lease.attempt} is no longer current")


def already_succeeded(session: Session, lease: Lease, result_asset_id: int | None) -> bool:
    """Whether this attempt's success is already recorded (a retried commit that had landed)."""
    row = session.execute(
        select(Job.state, Job.attempts, Job.result_asset_id).where(Job.id == lease.job_id)
    ).one_or_none()
    return row is not None and tuple(row) == (JobState.SUCCEEDED, lease.attempt, result_asset_id)
