"""`/healthz`: can this API reach its database and its broker right now, and is there room to
store uploads?"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from sqlalchemy import text

from api.http.deps import Services, services
from api.http.payloads import Health
from atelier.db import get_engine
from atelier.diskspace import free_space

router = APIRouter(tags=["health"])


def _failed(error: Exception) -> str:
    first = (str(error).splitlines() or [""])[0][:200]
    return f"error: {type(error).__name__}: {first}"


def _database(svc: Services) -> str:
    try:
        with get_engine(svc.db_url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "not healthy"
        return _failed(error)
    return "ok"


def _broker(svc: Services) -> str:
    try:
        with svc.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as error:  # noqa: BLE001 - any failure means "not healthy"
        return _failed(error)
    return "ok"


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database or the broker is down."}},
)
def healthz(response: Response, svc: Annotated[Services, Depends(services)]) -> Health:
    """Open to everyone (no token): 200 when the database and the broker both answer. `disk`
    reports the free space where uploads are stored; under ATELIER_MIN_FREE_DISK_MB it says
    `low: …` and `status` is `low disk`, still 200 (everything but storing works)."""
    database, broker = _database(svc), _broker(svc)
    space = free_space(svc.settings)
    healthy = database == "ok" and broker == "ok"
    if not healthy:
        response.status_code = 503
    status = "unavailable" if not healthy else "low disk" if space.low else "ok"
    return Health(status=status, database=database, broker=broker, disk=space.describe())
