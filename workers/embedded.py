"""A real Celery worker inside the calling process: the server-less default.

With no broker configured, the CLI runs its jobs here, on kombu's filesystem transport and the
SQLite database, so `atelier stylize` works on a laptop with nothing else installed. It is the same
worker code a deployment runs (solo pool, the same tasks), only started in a thread. When the
command ends early (Ctrl-C), the job running stops at its next iteration or frame and goes back to
the queue, so `atelier worker` resumes it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from celery import Celery
from celery.worker import WorkController
from celery.worker import state as worker_state

from workers.native_stderr import native_stderr_to
from workers.tasks.runner import STOP

log = logging.getLogger(__name__)


@contextmanager
def embedded_worker(
    app: Celery,
    queues: tuple[str, ...],
    loglevel: str = "WARNING",
    native_log: Path | None = None,
) -> Iterator[WorkController]:
    """Run a solo-pool worker consuming `queues` until the block exits.

    With `native_log`, what native libraries (TensorFlow, XLA) write to fd 2 goes to that file
    instead of the terminal (see workers.native_stderr); TensorFlow's own log level is set before
    the task code can import it.
    """
    with ExitStack() as stack:
        worker = stack.enter_context(_worker(app, queues, loglevel))
        if native_log is not None:
            # After the worker's start, so its log handlers are in place to be kept on the
            # terminal; before any job is sent, so before TensorFlow can be imported.
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            stack.enter_context(native_stderr_to(native_log))
        yield worker


@contextmanager
def _worker(app: Celery, queues: tuple[str, ...], loglevel: str) -> Iterator[WorkController]:
    app.finalize()
    app.set_current()
    app.set_default()  # the worker thread resolves `current_app` to this app, not a blank one
    app.log.setup(loglevel=loglevel)
    ready = threading.Event()
    worker = WorkController(
        app=app,
        hostname="embedded@localhost",
        pool_cls="solo",
        concurrency=1,
        loglevel=loglevel,
        queues=list(queues),
        ready_callback=lambda _consumer: ready.set(),
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    )
    thread = threading.Thread(target=worker.start, name="atelier-worker", daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError("the embedded worker did not start within 60 s")
    try:
        yield worker
    finally:
        # The job running now stops at its next progress report and goes back to the queue
        # (workers.tasks.runner.STOP); then the worker exits.
        STOP.set()
        worker_state.should_terminate = 0
        thread.join(30)
        worker_state.should_terminate = None
        STOP.clear()
        if thread.is_alive():
            log.warning("the embedded worker is still finishing a task; leaving it to exit")
