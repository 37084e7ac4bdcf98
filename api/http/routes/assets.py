"""Uploads and stored files: `POST /v1/assets`, the file, its metadata and a thumbnail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import AfterValidator
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.http.deps import Services, services
from api.http.errors import ApiError, responses
from api.http.objects import object_response
from api.http.payloads import no_nul
from api.http.renders import thumbnail_jpeg
from api.http.uploads import UPLOAD_OPENAPI, receive_upload
from atelier.assets import record_asset
from atelier.db import session_scope
from atelier.export import safe_stem
from atelier.models import Asset
from atelier.objectstore import ObjectStorage
from atelier.read import AssetOut, asset_out
from atelier.sniff import SUFFIXES

router = APIRouter(prefix="/v1/assets", tags=["assets"])
ShaPath = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="The asset's sha256.")]
NOSNIFF = {"X-Content-Type-Options": "nosniff"}
DOWNLOAD_HEADERS = {**NOSNIFF, "Content-Security-Policy": "default-src 'none'; sandbox"}
"""Every stored or drawn file: read as its recorded type only, and, should a browser ever render
one as a page, with nothing it may load or run (defence in depth: files are sniffed images and
videos, never markup)."""


@router.post(
    "",
    status_code=201,
    response_model=AssetOut,
    openapi_extra=UPLOAD_OPENAPI,
    responses={
        200: {"model": AssetOut, "description": "Already stored: the existing asset."},
        **responses(400, 401, 413, 415, 422, 507),
    },
)
async def upload_asset(
    request: Request,
    response: Response,
    svc: Annotated[Services, Depends(services)],
    label: Annotated[
        str | None,
        Query(max_length=255, description="Display name (default: file name)."),
        AfterValidator(no_nul),
    ] = None,
) -> AssetOut:
    """Store an image or a video, streamed; the type is read from the content, not the name.

    Refused with 413 over `ATELIER_MAX_UPLOAD_BYTES`, 415 when it is neither a supported image
    nor a video, 422 for an image over `ATELIER_MAX_PIXELS` or one that cannot be decoded, or a
    video whose frames are over `ATELIER_MAX_VIDEO_PIXELS`, 507 with `Retry-After` when the disk
    is full. Sending the same bytes again answers 200 with the asset already stored.
    """
    settings = svc.settings
    received = await receive_upload(
        request,
        svc.storage,
        settings.max_upload_bytes,
        settings.max_pixels,
        settings.max_video_pixels,
    )
    with session_scope(svc.db_url) as session:
        existed = session.scalar(select(Asset.id).where(Asset.sha256 == received.stored.sha256))
        asset = record_asset(
            session,
            received.stored,
            kind=received.sniffed.kind,
            media_type=received.sniffed.media_type,
            width=received.width,
            height=received.height,
            duration=received.duration,
            label=label or received.filename,
        )
        body = asset_out(asset)
    if existed is not None:
        response.status_code = 200
    return body


def _asset(session: Session, sha256: str) -> Asset:
    asset = session.scalar(select(Asset).where(Asset.sha256 == sha256))
    if asset is None:
        raise ApiError(404, f"no asset {sha256[:12]}…")
    if asset.deleted_at is not None:
        raise ApiError(410, f"asset {sha256[:12]}… was removed by retention")
    return asset


@router.get("/{sha256}", response_model=AssetOut, responses=responses(401, 404, 410, 422))
def get_asset(sha256: ShaPath, svc: Annotated[Services, Depends(services)]) -> AssetOut:
    """An asset's metadata."""
    with svc.session() as session:
        return asset_out(_asset(session, sha256))


def download_name(asset: Asset) -> str:
    """The file name a download is saved under: the asset's label (made safe, so plain ASCII)
    or its hash, with the suffix of its recorded type."""
    return safe_stem(asset.label, asset.sha256[:12]) + SUFFIXES.get(asset.media_type, "")


def file_response(svc: Services, asset: Asset, request: Request) -> Response:
    """A stored file with the media type recorded when it was stored, never guessed again,
    shown inline under its download name; from an object store, streamed or redirected
    (`api.http.objects`)."""
    headers = {
        **DOWNLOAD_HEADERS,
        "Content-Disposition": f'inline; filename="{download_name(asset)}"',
        "Cache-Control": "private, max-age=31536000, immutable",
    }
    storage = svc.storage
    if isinstance(storage, ObjectStorage):
        redirect = svc.settings.storage_redirect_seconds
        return object_response(storage, asset, request.headers.get("range"), redirect, headers)
    path = storage.path(asset.sha256)
    if not path.is_file():
        raise ApiError(410, f"the file of asset {asset.sha256[:12]}… is gone from storage")
    return FileResponse(path, media_type=asset.media_type, headers=headers)


@router.get(
    "/{sha256}/content",
    response_class=FileResponse,
    responses={200: {"content": {"*/*": {}}}, **responses(401, 404, 410, 422)},
)
def get_content(
    sha256: ShaPath, request: Request, svc: Annotated[Services, Depends(services)]
) -> Response:
    """The stored file itself (supports Range requests, so videos can be scrubbed); it streams
    after the database connection is back in the pool."""
    with svc.session() as session:
        asset = _asset(session, sha256)
    return file_response(svc, asset, request)


@router.get(
    "/{sha256}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **responses(401, 404, 410, 422)},
)
def get_thumbnail(
    sha256: ShaPath,
    svc: Annotated[Services, Depends(services)],
    size: Annotated[int, Query(ge=16, le=1024, description="Longest side, pixels.")] = 256,
) -> Response:
    """A JPEG thumbnail of an image, or of a video's first frame (422 for a video whose frames
    are over `ATELIER_MAX_VIDEO_PIXELS`), drawn without holding a database connection."""
    with svc.session() as session:
        asset = _asset(session, sha256)
    try:
        path = svc.storage.local_path(asset.sha256)  # from an object store: a cached copy
    except FileNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ApiError(410, f"the file of asset {sha256[:12]}… is gone from storage")
    data = thumbnail_jpeg(path, asset.sha256, asset.media_type, size, svc.settings.max_video_pixels)
    headers = {**DOWNLOAD_HEADERS, "Cache-Control": "private, max-age=86400"}
    return Response(data, media_type="image/jpeg", headers=headers)
