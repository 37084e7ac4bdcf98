"""Operating commands: migrate the database, ping the pipeline."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from api.cli.runtime import console, runtime
from atelier.celery_app import PING
from atelier.db import current_revision
from atelier.models import JobState
from atelier.submit import create_ping_job, new_task_id, send_jobs


def migrate_cmd() -> None:
    """Create or upgrade the database schema (every component also does this on start)."""
    rt = runtime()
    console.print(f"database {rt.db_url} at revision {current_revision(rt.db_url)}")


def ping_cmd(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the worker.")] = 60.0,
    worker: Annotated[
        str | None,
        typer.Option(
            help="Instead: ask this one worker (its node name, e.g. video@pod-1) to answer a"
            " remote-control ping, touching no database; exits 1 when it does not (a liveness"
            " probe)."
        ),
    ] = None,
) -> None:
    """Send a ping job through the broker to a worker and back through the database."""
    if worker is not None:
        _ping_worker(worker, timeout)
        return
    rt = runtime()
    task_id = new_task_id()
    job_id = create_ping_job(rt.db_url, task_id=task_id)
    with rt.executing(["default"]):
        started = time.monotonic()
        send_jobs(rt.app, rt.db_url, PING, [job_id], task_id=task_id)
        job = rt.wait([job_id], timeout=timeout)[job_id]
        elapsed = (time.monotonic() - started) * 1000
    if job.state != JobState.SUCCEEDED:
        console.print(f"[red]ping job {job_id} is {job.state} after {timeout:.0f} s[/red]")
        raise typer.Exit(1)
    console.print(f"pong from {job.meta.get('worker')} in {elapsed:.0f} ms (job {job_id})")


def _ping_worker(name: str, timeout: float) -> None:
    """Celery's remote-control ping to one worker: its main process answers even while a task
    runs in its pool, so a long job does not look like a dead worker."""
    from atelier.celery_app import create_app
    from atelier.settings import get_settings

    app = create_app(get_settings())
    started = time.monotonic()
    try:
        replies = app.control.ping(destination=[name], timeout=timeout)
    except Exception as error:
        console.print(f"[red]cannot ask {name}: {error}[/red]")
        raise typer.Exit(1) from error
    if not any(name in reply for reply in replies or []):
        console.print(f"[red]worker {name} did not answer within {timeout:.0f} s[/red]")
        raise typer.Exit(1)
    console.print(f"pong from {name} in {(time.monotonic() - started) * 1000:.0f} ms")
