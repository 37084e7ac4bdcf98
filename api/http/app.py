"""The FastAPI application: `uvicorn --factory api.http.app:create_app`, or `atelier api`.

A thin producer: it validates, stores uploads, writes job rows and sends job ids by task name.
It never imports the task code, TensorFlow or OpenCV. The schema is not migrated here: `atelier
api` migrates before it serves, like every other component.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from celery import Celery
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from api.http import errors
from api.http.auth import TokenGate, bearer
from api.http.bodies import BodyLimit
from api.http.deps import Services
from api.http.routes import assets, batches, gallery, health, jobs
from atelier.celery_app import create_app as create_celery
from atelier.db import use_pool
from atelier.scratch import sweep_scratch
from atelier.settings import Settings, get_settings

STATIC = Path(__file__).resolve().parents[1] / "static"

DESCRIPTION = """
Batch neural style transfer and video face filters, run as jobs.

1. Upload images and videos: `POST /v1/assets` (the sha256 of each is its id).
2. Submit a content x style grid (`POST /v1/batches`) or a video (`POST /v1/videos`).
3. Follow `GET /v1/batches/{id}`; fetch results, loss histories and the contact sheet.

When `ATELIER_API_TOKEN` is set every route but `/healthz` needs `Authorization: Bearer <token>`.
"""


FAIL_FAST = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def _fail_fast(celery: Celery) -> Celery:
    """A request must not hang through Celery's ~20 s of reconnect attempts when Redis is down:
    give up within a second and answer 503 (the rows stay queued and are sent again later)."""
    celery.conf.task_publish_retry_policy = FAIL_FAST
    celery.conf.result_backend_transport_options = {
        **celery.conf.result_backend_transport_options,
        "retry_policy": FAIL_FAST,
    }
    return celery


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for `settings` (default: the process's ATELIER_* settings)."""
    settings = settings or get_settings()
    use_pool(settings.resolved_database_url, settings.pool)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What a killed API left in scratch (half-received uploads) goes as the API starts.
        await run_in_threadpool(sweep_scratch, settings, "API start")
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="Atelier",
        version="1",
        description=DESCRIPTION,
        openapi_tags=[
            {"name": "assets", "description": "Uploaded inputs and stored results."},
            {"name": "batches", "description": "Grids of NST jobs, and video jobs."},
            {"name": "jobs", "description": "Single jobs: state, result, losses, cancel."},
            {"name": "health", "description": "Liveness of the database and the broker."},
        ],
    )
    svc = app.state.services = Services(settings, _fail_fast(create_celery(settings)))
    errors.install(app)
    secured = [Depends(bearer)]  # declares the scheme in OpenAPI; TokenGate enforces it
    for router in (assets.router, batches.router, jobs.router):
        app.include_router(router, dependencies=secured)
    app.include_router(health.router)
    app.include_router(gallery.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(TokenGate, token=settings.api_token, brake=svc.brake)
    # Outermost: a body's size is bounded whether or not the request carries a token.
    app.add_middleware(
        BodyLimit,
        max_request_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    return app
