"""Downloads of files kept in an object store: streamed through the API, or redirected.

With `ATELIER_STORAGE_URL` the API holds no copy of results: it streams the object from the store
chunk by chunk (one `Range` passed through, so videos can still be scrubbed), never holding a
whole file, or, with `ATELIER_STORAGE_REDIRECT_SECONDS` set, answers 307 with a presigned URL so
clients download from the store directly and the API carries no file bytes at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi.responses import RedirectResponse, Response, StreamingResponse

from api.http.errors import ApiError
from atelier.models import Asset
from atelier.objectstore import ObjectStorage

CHUNK = 256 * 1024
ONE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _chunks(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


def object_response(
    storage: ObjectStorage,
    asset: Asset,
    byte_range: str | None,
    redirect_seconds: int,
    headers: dict[str, str],
) -> Response:
    """The object of `asset` as a response: a redirect to a presigned URL when
    `redirect_seconds` > 0, else the bytes streamed from the store (206 for a single range;
    other range forms get the whole file, as HTTP allows)."""
    if redirect_seconds > 0:
        url = storage.presigned_url(asset.sha256, asset.media_type, redirect_seconds)
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    wanted = byte_range.strip() if byte_range else None
    if wanted is not None and (not ONE_RANGE.match(wanted) or wanted == "bytes=-"):
        wanted = None
    try:
        got = storage.open_object(asset.sha256, wanted)
    except FileNotFoundError:
        raise ApiError(
            410, f"the file of asset {asset.sha256[:12]}… is gone from storage"
        ) from None
    except Exception as error:
        if getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") == 416:
            size = asset.size_bytes
            unsatisfiable = {"Content-Range": f"bytes */{size}"}
            raise ApiError(416, "range not satisfiable", unsatisfiable) from None
        raise
    sent = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(got["ContentLength"])}
    status = 200
    if wanted is not None and got.get("ContentRange"):
        sent["Content-Range"] = got["ContentRange"]
        status = 206
    return StreamingResponse(
        _chunks(got["Body"]), status_code=status, media_type=asset.media_type, headers=sent
    )
