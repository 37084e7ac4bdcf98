"""`/healthz`: can this API reach its database and its broker right now?"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from sqlalchemy import text

from api.http.deps import Services, services
from api.http.schemas import Health
from atelier.db import get_engine

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
    """Open to everyone (no token): 200 when the database and the broker both answer."""
    database, broker = _database(svc), _broker(svc)
    healthy = database == "ok" and broker == "ok"
    if not healthy:
        response.status_code = 503
    return Health(status="ok" if healthy else "unavailable", database=database, broker=broker)
