"""Jobs: list with filters, one job, its result file, its loss history, cancelling it."""

from __future__ import annotations

import enum
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy.orm import Session

from api.http import dispatch
from api.http.deps import Services, services
from api.http.errors import ApiError, responses
from api.http.renders import loss_plot
from api.http.routes.assets import DOWNLOAD_HEADERS, file_response
from atelier.db import session_scope
from atelier.export import loss_rows, no_history_reason
from atelier.models import Asset, Job, JobKind, JobState
from atelier.read import JobOut, JobPage, job_detail, list_jobs
from atelier.reports import LOSS_COLUMNS, loss_csv

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
JobId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The job id.")]


class LossFormat(enum.StrEnum):
    JSON = "json"
    CSV = "csv"
    PNG = "png"


def _get(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id}")
    return job


@router.get("", response_model=JobPage, responses=responses(401, 422))
def get_jobs(
    svc: Annotated[Services, Depends(services)],
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    kind: Annotated[JobKind | None, Query(description="Only jobs of this kind.")] = None,
    batch: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Only this batch.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> JobPage:
    """Jobs, newest first; follow `next_offset` for the next page."""
    with svc.session() as session:
        return list_jobs(
            session,
            state=state.value if state else None,
            kind=kind.value if kind else None,
            batch=batch,
            limit=limit,
            offset=offset,
        )


@router.get("/{job_id}", response_model=JobOut, responses=responses(401, 404, 422))
def get_job(job_id: JobId, svc: Annotated[Services, Depends(services)]) -> JobOut:
    """One job: state, progress, attempts, latest losses or stats (`meta`), result."""
    with svc.session() as session:
        job = _get(session, job_id)
        return job_detail(session, job)


@router.get(
    "/{job_id}/result",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {}, "video/mp4": {}}},
        **responses(401, 404, 409, 410, 422),
    },
)
def get_result(
    job_id: JobId, request: Request, svc: Annotated[Services, Depends(services)]
) -> Response:
    """The job's result file (409 until the job has succeeded); the file streams after the
    database connection is back in the pool."""
    with svc.session() as session:
        job = _get(session, job_id)
        if job.state != JobState.SUCCEEDED:
            detail = f": {job.error}" if job.error and job.state == JobState.FAILED else ""
            raise ApiError(409, f"job {job_id} is {job.state}, it has no result{detail}")
        asset = session.get(Asset, job.result_asset_id) if job.result_asset_id else None
    if asset is None:
        raise ApiError(404, f"job {job_id} produced no file")
    if asset.deleted_at is not None:
        raise ApiError(410, f"the result of job {job_id} was removed by retention")
    return file_response(svc, asset, request)


@router.get(
    "/{job_id}/losses",
    responses={
        200: {
            "description": "The loss history: JSON rows, CSV with a header, or a log-scale plot.",
            "content": {"application/json": {}, "text/csv": {}, "image/png": {}},
        },
        **responses(401, 404, 422),
    },
)
def get_losses(
    job_id: JobId,
    svc: Annotated[Services, Depends(services)],
    format: Annotated[LossFormat, Query(description="json, csv or png.")] = LossFormat.JSON,
) -> Response:
    """Every recorded optimizer iteration of an NST job (a reused job shows the run it reused).

    A fast-engine job optimises nothing: 404, with that reason, rather than an empty history."""
    with svc.session() as session:
        job = _get(session, job_id)
    if job.kind != JobKind.NST:
        raise ApiError(404, f"job {job_id} is a {job.kind} job: only NST jobs have a loss history")
    if reason := no_history_reason(job):
        raise ApiError(404, reason)
    rows = loss_rows(svc.db_url, job)
    headers = {**DOWNLOAD_HEADERS, "Cache-Control": "no-cache"}
    if format is LossFormat.CSV:
        return Response(
            loss_csv(rows),
            media_type="text/csv",
            headers={**headers, "Content-Disposition": f'inline; filename="job-{job_id}.csv"'},
        )
    if format is LossFormat.PNG:
        return Response(
            loss_plot(job_id, rows, f"job {job_id} loss history"),
            media_type="image/png",
            headers=headers,
        )
    body = {
        "job_id": job_id,
        "source_job_id": job.reused_from_id or job.id,
        "rows": [dict(zip(LOSS_COLUMNS, row, strict=True)) for row in rows],
    }
    return JSONResponse(body, headers=headers)


@router.post("/{job_id}/cancel", response_model=JobOut, responses=responses(401, 404, 409, 422))
def cancel_job(job_id: JobId, svc: Annotated[Services, Depends(services)]) -> JobOut:
    """Cancel a queued or running job. A running NST loop stops at its next progress check."""
    with session_scope(svc.db_url) as session:
        _get(session, job_id)
    if not dispatch.cancel(svc, [job_id]):
        with session_scope(svc.db_url) as session:
            state = _get(session, job_id).state
        raise ApiError(409, f"job {job_id} is already {state}")
    with session_scope(svc.db_url) as session:
        job = _get(session, job_id)
        return job_detail(session, job)
