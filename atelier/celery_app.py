"""The Celery application: serialization, delivery guarantees, routing and events.

Producers import this module to send tasks *by name*; only workers import the task code
(`workers.tasks`), so the API and the CLI never load TensorFlow or OpenCV.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from atelier.fs_broker import TRANSPORT
from atelier.settings import Settings, get_settings

PING = "atelier.ping"
NST_STYLIZE = "atelier.nst.stylize"
FAST_STYLIZE = "atelier.fast.stylize"
VIDEO_FILTER = "atelier.video.filter"
VIDEO_SEGMENT = "atelier.video.segment"
VIDEO_JOIN = "atelier.video.join"

QUEUES = ("default", "nst", "video", "fast")
ROUTES = {
    "atelier.nst.*": {"queue": "nst"},
    "atelier.video.*": {"queue": "video"},
    "atelier.fast.*": {"queue": "fast"},
}


def nst_task_for(engine: str) -> str:
    """The task of an NST job, and so its queue: Gatys jobs go to `nst` (GPU workers), fast-engine
    jobs to `fast` (CPU workers: a forward pass needs no GPU and must not wait behind Gatys)."""
    return FAST_STYLIZE if engine == "fast" else NST_STYLIZE


def _filesystem_broker_options(settings: Settings) -> dict[str, object]:
    """Kombu's filesystem transport: the server-less default. One folder is both ends."""
    queue = settings.broker_folder / "queue"
    processed = settings.broker_folder / "processed"
    control = settings.broker_folder / "control"
    for folder in (queue, processed, control):
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "processed_folder": str(processed),
        "control_folder": str(control),
        "store_processed": False,
        "polling_interval": 0.05,
    }


def create_app(settings: Settings | None = None) -> Celery:
    """Build the Celery app for `settings` (tests build one per broker they exercise)."""
    settings = settings or get_settings()
    # The scheduler's periodic tasks run on the workers too (queue `default`).
    app = Celery("atelier", include=["workers.tasks", "scheduler.tasks"])
    timeout = settings.visibility_timeout
    if settings.embedded:
        transport_options: dict[str, object] = _filesystem_broker_options(settings)
        (settings.resolved_data_dir / "results").mkdir(parents=True, exist_ok=True)
    else:
        transport_options = {"visibility_timeout": timeout}
    if settings.embedded:
        app.conf.broker_transport = TRANSPORT  # filesystem, with atomic message files
    app.conf.update(
        broker_url=settings.resolved_broker_url,
        result_backend=settings.resolved_result_backend,
        broker_transport_options=transport_options,
        result_backend_transport_options={"visibility_timeout": timeout},
        visibility_timeout=timeout,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_default_queue="default",
        task_queues=[Queue(name) for name in QUEUES],
        task_routes=ROUTES,
        result_expires=7 * 24 * 3600,
        result_extended=True,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # The embedded broker keeps broadcast replies for dead workers on disk; one process
        # needs no remote control there, and Flower is for deployments with Redis.
        worker_enable_remote_control=not settings.embedded,
        # Not a Celery setting: how `send_jobs` scales the time limits of job messages.
        atelier_time_limit_scale=settings.time_limit_scale,
        # A prefork child whose resident memory passed this (KiB) is replaced once its task is
        # done: long-lived workers give back what TensorFlow and big inputs took. Other pools
        # (solo, threads) ignore it.
        worker_max_memory_per_child=settings.worker_max_memory_mb * 1024 or None,
    )
    return app
