"""Database models: the database is the source of truth for every job.

The broker only carries job ids. A job row exists (state `queued`) before its message is sent, and
only the worker holding the job's current attempt may move it on (see `atelier.jobs`).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Timezone-aware now; stored as UTC on every backend."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class JobState(enum.StrEnum):
    """The life of a job: queued -> running -> succeeded | failed | cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class JobKind(enum.StrEnum):
    PING = "ping"
    NST = "nst"
    VIDEO = "video"


class Asset(Base):
    """A stored file, named by the sha256 of its content (never by a user-supplied name)."""

    __tablename__ = "assets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # image | video | result | preview | plot | sheet
    media_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(255))  # display name only
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Batch(Base):
    """A group of jobs submitted together (a content x style grid, a folder, a video)."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(64), default="cli")  # cli | api | inbox:<name>
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    jobs: Mapped[list[Job]] = relationship(back_populates="batch", order_by="Job.id")


class Job(Base):
    """One unit of work. `attempts` doubles as the fencing token of the current attempt."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_heartbeat", "state", "heartbeat_at"),
        # Identical work runs once at a time: a second job with the same fingerprint cannot
        # become `running` while the first is (see `atelier.jobs.claim` and `succeed`).
        Index(
            "uq_jobs_running_fingerprint",
            "fingerprint",
            unique=True,
            postgresql_where=text("state = 'running'"),
            sqlite_where=text("state = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # asset sha256s by role
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED, index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    error: Mapped[str | None] = mapped_column(Text)
    # What a finished job's user must know although it succeeded (a video with no face found).
    warning: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(255))
    celery_task_id: Mapped[str | None] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # latest losses, stats, device
    result_asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id"))
    reused_from_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    seconds: Mapped[float | None] = mapped_column(Float)

    batch: Mapped[Batch | None] = relationship(back_populates="jobs")
    result_asset: Mapped[Asset | None] = relationship(foreign_keys=[result_asset_id])


class AttemptOutcome(enum.StrEnum):
    """How an attempt ended; RUNNING while it has not."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RELEASED = "released"  # given back to the queue: an error, or its worker stopping
    GIVEN_BACK = "given back"  # given back by an outage: not counted against the job's attempts
    ABANDONED = "abandoned"  # its lease lapsed: re-queued, taken over or given up on
    CANCELLED = "cancelled"


class JobAttempt(Base):
    """One attempt at a job, kept when the next one starts: who ran it, under which message,
    when, and how it ended. `token` is its claim's own: a claim retried after its commit landed
    (the answer lost) finds its attempt by it and goes on instead of finding the job busy."""

    __tablename__ = "job_attempts"
    __table_args__ = (UniqueConstraint("job_id", "attempt", name="uq_attempt_job_attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16), default=AttemptOutcome.RUNNING)
    error: Mapped[str | None] = mapped_column(Text)


class LossRecord(Base):
    """One optimizer iteration of one NST job; (job, iteration) is unique, so no duplicates."""

    __tablename__ = "loss_history"
    __table_args__ = (UniqueConstraint("job_id", "iteration", name="uq_loss_job_iteration"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    iteration: Mapped[int] = mapped_column(Integer)
    total: Mapped[float] = mapped_column(Float)
    content: Mapped[float] = mapped_column(Float)
    style: Mapped[float] = mapped_column(Float)
    tv: Mapped[float] = mapped_column(Float)


class FrameStat(Base):
    """Faces found in one output frame of a video job."""

    __tablename__ = "frame_stats"
    __table_args__ = (UniqueConstraint("job_id", "frame", name="uq_frame_job_frame"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    frame: Mapped[int] = mapped_column(Integer)
    faces: Mapped[int] = mapped_column(Integer)
    boxes: Mapped[list[Any]] = mapped_column(JSON, default=list)


class InboxFile(Base):
    """A file taken from a watched inbox folder; unique so a file is taken once, ever."""

    __tablename__ = "inbox_files"
    __table_args__ = (UniqueConstraint("inbox", "sha256", name="uq_inbox_sha"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inbox: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"))
    error: Mapped[str | None] = mapped_column(Text)  # why the file was refused, if it was
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
