"""The read model: batches, jobs and assets as both producers show them.

The HTTP routes return these shapes and the gallery renders them; `atelier status` prints them
(`--json`: the API's body) and `atelier results` writes one as batch.json. So a field added here
reaches the API and the CLI at once. Plain SQLAlchemy + pydantic: no web server, and no
TensorFlow, OpenCV or onnxruntime (the import contracts in pyproject.toml hold it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Generic, Self, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from atelier.attempts import history
from atelier.models import Asset, AttemptOutcome, Batch, Job, JobKind, JobState

Item = TypeVar("Item", bound=BaseModel)
Row = TypeVar("Row", Batch, Job)


class AssetOut(BaseModel):
    sha256: str
    kind: str = Field(description="image | video | result | preview | plot | sheet")
    media_type: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    label: str | None = None
    created_at: datetime
    content_url: str
    thumbnail_url: str


class AttemptOut(BaseModel):
    attempt: int
    worker: str
    task_id: str | None = Field(description="The Celery task (message) it ran under.")
    claimed_at: datetime
    heartbeat_at: datetime | None = Field(description="Its last renewal of the lease.")
    ended_at: datetime | None
    outcome: str = Field(
        description="running | succeeded | failed | released (given back to the queue) | "
        "given back (by an outage: not counted against the job's attempts) | "
        "abandoned (its lease lapsed) | cancelled"
    )
    error: str | None


class JobOut(BaseModel):
    id: int
    kind: str
    batch_id: int | None
    state: str
    progress: float
    attempts: int
    max_attempts: int
    error: str | None
    warning: str | None = Field(
        None,
        description="What a finished job's user must know although it succeeded: for a video, "
        "that no face was found, or that a face was lost inside the picture and not found again.",
    )
    worker: str | None
    inputs: dict[str, Any]
    params: dict[str, Any]
    meta: dict[str, Any]
    result: AssetOut | None = None
    reused_from_id: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    seconds: float | None = None
    history: list[AttemptOut] | None = Field(
        None,
        description="Every attempt at the job, first first, with its worker and error (one "
        "job's detail only; null in lists).",
    )


class Page(BaseModel, Generic[Item]):
    """One page of a list, newest first, and where it sits in the whole list."""

    items: list[Item]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last.")

    @classmethod
    def of(cls, items: list[Item], total: int, limit: int, offset: int) -> Self:
        """The page of `items` at `offset` in a list of `total` (`next_offset` follows)."""
        following = offset + limit if offset + limit < total else None
        return cls(items=items, total=total, limit=limit, offset=offset, next_offset=following)


class JobPage(Page[JobOut]):
    pass


class BatchSummary(BaseModel):
    id: int
    kind: str
    label: str | None
    source: str
    params: dict[str, Any]
    created_at: datetime
    total: int = Field(description="Number of jobs.")
    counts: dict[str, int] = Field(description="Jobs per state.")
    progress: float = Field(description="0..1; finished jobs count as done.")
    finished: bool
    reused: int = Field(description="Jobs that reused an identical earlier result.")
    sheet_url: str | None = Field(None, description="Contact sheet (NST batches).")


class BatchOut(BatchSummary):
    jobs: list[JobOut]
    warnings: list[str] = Field(
        default_factory=list,
        description="When the batch was just created: what stands in its way, such as a queue"
        " that no worker consumes (its jobs wait until one does).",
    )


class BatchPage(Page[BatchSummary]):
    pass


def asset_out(asset: Asset) -> AssetOut:
    return AssetOut(
        sha256=asset.sha256,
        kind=asset.kind,
        media_type=asset.media_type,
        size_bytes=asset.size_bytes,
        width=asset.width,
        height=asset.height,
        duration=asset.duration,
        label=asset.label,
        created_at=asset.created_at,
        content_url=f"/v1/assets/{asset.sha256}/content",
        thumbnail_url=f"/v1/assets/{asset.sha256}/thumbnail",
    )


def job_out(job: Job, result: Asset | None) -> JobOut:
    return JobOut(
        id=job.id,
        kind=job.kind,
        batch_id=job.batch_id,
        state=job.state,
        progress=job.progress,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        error=job.error,
        warning=job.warning,
        worker=job.worker,
        inputs=job.inputs or {},
        params=job.params or {},
        meta=job.meta or {},
        result=asset_out(result) if result is not None and result.deleted_at is None else None,
        reused_from_id=job.reused_from_id,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        seconds=job.seconds,
    )


def jobs_out(session: Session, jobs: Sequence[Job]) -> list[JobOut]:
    """Jobs with their result assets, fetched in one query."""
    ids = {job.result_asset_id for job in jobs if job.result_asset_id}
    results = (
        {a.id: a for a in session.scalars(select(Asset).where(Asset.id.in_(ids)))} if ids else {}
    )
    return [job_out(job, results.get(job.result_asset_id)) for job in jobs]  # type: ignore[arg-type]


def job_detail(session: Session, job: Job) -> JobOut:
    """One job as `GET /v1/jobs/{id}` and `atelier status --job` show it, with its attempts."""
    detail = jobs_out(session, [job])[0]
    detail.history = [
        AttemptOut.model_validate(row, from_attributes=True) for row in history(session, job.id)
    ]
    for attempt in detail.history:  # the running attempt renews its lease on the job's row
        if attempt.outcome == AttemptOutcome.RUNNING and attempt.attempt == job.attempts:
            attempt.heartbeat_at = job.heartbeat_at
    return detail


def batch_progress(states: Sequence[tuple[str, float]]) -> tuple[dict[str, int], float, bool]:
    """Counts by state, overall progress and whether every job is finished. A succeeded or
    failed job counts as done; a cancelled one counts as far as it got."""
    counts = Counter(state for state, _ in states)
    done = [
        1.0 if JobState(state).finished and state != JobState.CANCELLED else progress
        for state, progress in states
    ]
    progress = sum(done) / len(done) if done else 0.0
    finished = bool(states) and all(JobState(state).finished for state, _ in states)
    return dict(sorted(counts.items())), progress, finished


def batch_summary(batch: Batch, jobs: Sequence[Job]) -> BatchSummary:
    counts, progress, finished = batch_progress([(j.state, j.progress) for j in jobs])
    return BatchSummary(
        id=batch.id,
        kind=batch.kind,
        label=batch.label,
        source=batch.source,
        params=batch.params or {},
        created_at=batch.created_at,
        total=len(jobs),
        counts=counts,
        progress=round(progress, 4),
        finished=finished,
        reused=sum(1 for j in jobs if j.reused_from_id is not None),
        sheet_url=f"/v1/batches/{batch.id}/sheet.png" if batch.kind == JobKind.NST else None,
    )


def batch_jobs(session: Session, batch_id: int) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.id)))


def batch_out(session: Session, batch: Batch) -> BatchOut:
    jobs = batch_jobs(session, batch.id)
    summary = batch_summary(batch, jobs)
    return BatchOut(**summary.model_dump(), jobs=jobs_out(session, jobs))


def newest_first(
    session: Session, query: Select[tuple[Row]], model: type[Batch | Job], limit: int, offset: int
) -> tuple[list[Row], int]:
    """One page of `query`'s rows, highest id first, and how many rows the whole query has."""
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(session.scalars(query.order_by(model.id.desc()).limit(limit).offset(offset)))
    return rows, total


def list_batches(session: Session, limit: int, offset: int, kind: str | None = None) -> BatchPage:
    """Newest first, each with its counts (one query for the batches, one for their jobs)."""
    query = select(Batch)
    if kind is not None:
        query = query.where(Batch.kind == kind)
    batches, total = newest_first(session, query, Batch, limit, offset)
    by_batch: dict[int, list[Job]] = {b.id: [] for b in batches}
    if batches:
        for job in session.scalars(select(Job).where(Job.batch_id.in_(by_batch))):
            by_batch[job.batch_id].append(job)  # type: ignore[index]
    items = [batch_summary(b, by_batch[b.id]) for b in batches]
    return BatchPage.of(items, total, limit, offset)


def list_jobs(
    session: Session,
    *,
    state: str | None = None,
    kind: str | None = None,
    batch: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> JobPage:
    """Jobs matching every given filter, newest first."""
    query = select(Job)
    if state is not None:
        query = query.where(Job.state == state)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if batch is not None:
        query = query.where(Job.batch_id == batch)
    jobs, total = newest_first(session, query, Job, limit, offset)
    return JobPage.of(jobs_out(session, jobs), total, limit, offset)


def asset_labels(session: Session, shas: set[str]) -> dict[str, str]:
    """Display names of input assets, for captions (the sha prefix where there is none)."""
    if not shas:
        return {}
    rows = session.execute(select(Asset.sha256, Asset.label).where(Asset.sha256.in_(shas)))
    labels = {sha: label or sha[:12] for sha, label in rows}
    return {sha: labels.get(sha, sha[:12]) for sha in shas}


def job_inputs(job: Job) -> list[str]:
    """Every asset a job reads, in role order."""
    inputs = job.inputs or {}
    shas = [inputs.get("content"), *inputs.get("styles", []), inputs.get("video")]
    return [s for s in shas if s]
