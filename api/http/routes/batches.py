"""NST grids and videos: create them, follow them, see their contact sheet, cancel them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.http import dispatch
from api.http.deps import Services, services
from api.http.errors import ApiError, responses
from api.http.events import batch_events
from api.http.payloads import BatchCreate, VideoCreate
from api.http.renders import batch_sheet
from api.http.routes.assets import DOWNLOAD_HEADERS
from atelier.batches import create_nst_batch, create_video_job, style_groups
from atelier.db import session_scope
from atelier.grid import check_size, count, first
from atelier.models import Asset, Batch, JobKind, JobState
from atelier.read import BatchOut, BatchPage, JobOut, batch_jobs, batch_out, jobs_out, list_batches

router = APIRouter(tags=["batches"])
BatchId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The batch id.")]


def _require_assets(svc: Services, shas: list[str], prefix: str, role: str) -> None:
    """Every sha must name a live asset of the right kind (422 otherwise: the body is wrong)."""
    with session_scope(svc.db_url) as session:
        rows = session.execute(
            select(Asset.sha256, Asset.media_type, Asset.deleted_at).where(Asset.sha256.in_(shas))
        ).all()
    found = {sha: (media, deleted) for sha, media, deleted in rows}
    missing = [sha for sha in shas if sha not in found or found[sha][1] is not None]
    if missing:
        names = ", ".join(sha[:12] for sha in missing[:5])
        raise ApiError(422, f"unknown {role} asset(s): {names}; upload them to /v1/assets first")
    wrong = [sha for sha in shas if not found[sha][0].startswith(prefix)]
    if wrong:
        names = ", ".join(sha[:12] for sha in wrong[:5])
        raise ApiError(422, f"{role} asset(s) {names} are not {prefix.rstrip('/')}s")


@router.post(
    "/v1/batches",
    status_code=201,
    response_model=BatchOut,
    responses=responses(401, 422, 503),
)
def create_batch(body: BatchCreate, svc: Annotated[Services, Depends(services)]) -> BatchOut:
    """Stylize every content image with every style image (or with their blend), with every
    combination of the parameters given as lists.

    A cell whose identical job (same inputs and parameters) already succeeded reuses that result
    unless `force` is true.
    """
    content = list(dict.fromkeys(body.content))
    styles = list(dict.fromkeys(body.styles))
    _require_assets(svc, content, "image/", "content")
    _require_assets(svc, styles, "image/", "style")
    limit = svc.settings.max_grid
    values = body.params.model_dump()
    check_size(len(content), len(style_groups(styles, first(values))), count(values), limit)
    params = body.combinations(limit)
    plan = create_nst_batch(
        svc.settings, content, styles, params, source="api", label=body.label, force=body.force
    )
    warnings = dispatch.send(svc, plan)
    return _batch(svc, plan.batch_id).model_copy(update={"warnings": warnings})


@router.post(
    "/v1/videos", status_code=201, response_model=BatchOut, responses=responses(401, 422, 503)
)
def create_video(body: VideoCreate, svc: Annotated[Services, Depends(services)]) -> BatchOut:
    """Put filters on the faces of a video: a batch with one video job."""
    _require_assets(svc, [body.video], "video/", "video")
    plan = create_video_job(svc.settings, body.video, body.params, source="api", label=body.label)
    warnings = dispatch.send(svc, plan)
    return _batch(svc, plan.batch_id).model_copy(update={"warnings": warnings})


def _batch(svc: Services, batch_id: int) -> BatchOut:
    with session_scope(svc.db_url) as session:
        return batch_out(session, _get(session, batch_id))


def _get(session: Session, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise ApiError(404, f"no batch {batch_id}")
    return batch


@router.get("/v1/batches", response_model=BatchPage, responses=responses(401, 422))
def get_batches(
    svc: Annotated[Services, Depends(services)],
    kind: Annotated[JobKind | None, Query(description="Only batches of this kind.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> BatchPage:
    """Batches, newest first, with their job counts and progress."""
    with svc.session() as session:
        return list_batches(session, limit, offset, kind.value if kind else None)


@router.get("/v1/batches/{batch_id}", response_model=BatchOut, responses=responses(401, 404, 422))
def get_batch(batch_id: BatchId, svc: Annotated[Services, Depends(services)]) -> BatchOut:
    """A batch: counts by state, overall progress, and each job."""
    return _batch(svc, batch_id)


@router.get(
    "/v1/batches/{batch_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."},
        **responses(401, 404, 422, 429),
    },
)
async def get_batch_events(
    batch_id: BatchId, request: Request, svc: Annotated[Services, Depends(services)]
) -> StreamingResponse:
    """The batch as `event: batch` server-sent events: its JSON (as `GET /v1/batches/{id}`) at
    once and whenever one of its jobs changes, until it is finished. The gallery follows running
    batches with it; polling `GET /v1/batches/{id}` gives the same data. One client address may
    hold `ATELIER_MAX_STREAMS_PER_CLIENT` streams (429 beyond)."""
    follower = svc.feed.follow(batch_id, request.client.host if request.client else "unknown")
    try:
        first = await run_in_threadpool(svc.feed.first, batch_id)  # 404 before the stream
    except BaseException:
        svc.feed.leave(follower)
        raise
    return StreamingResponse(
        batch_events(svc.feed, follower, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/v1/batches/{batch_id}/sheet.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **responses(401, 404, 422)},
)
def get_sheet(batch_id: BatchId, svc: Annotated[Services, Depends(services)]) -> Response:
    """The contact sheet so far: contents as rows, styles as columns, unfinished cells blank."""
    with svc.session() as session:
        batch = _get(session, batch_id)
        if batch.kind != JobKind.NST:
            raise ApiError(
                404, f"batch {batch_id} is a {batch.kind} batch: it has no contact sheet"
            )
        state = tuple((j.id, j.state, j.result_asset_id) for j in batch_jobs(session, batch_id))
    data = batch_sheet(svc.settings, batch_id, state)
    return Response(
        data,
        media_type="image/png",
        headers={**DOWNLOAD_HEADERS, "Cache-Control": "no-cache"},
    )


@router.post(
    "/v1/batches/{batch_id}/cancel",
    response_model=list[JobOut],
    responses=responses(401, 404, 422),
)
def cancel_batch(batch_id: BatchId, svc: Annotated[Services, Depends(services)]) -> list[JobOut]:
    """Cancel every job of the batch that is still queued or running; returns those jobs."""
    with session_scope(svc.db_url) as session:
        _get(session, batch_id)
        live = [
            j.id
            for j in batch_jobs(session, batch_id)
            if j.state in (JobState.QUEUED, JobState.RUNNING)
        ]
    cancelled = set(dispatch.cancel(svc, live))
    with session_scope(svc.db_url) as session:
        return jobs_out(session, [j for j in batch_jobs(session, batch_id) if j.id in cancelled])
