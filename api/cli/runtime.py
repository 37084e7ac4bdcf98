"""What CLI commands share: settings, a migrated database, the Celery app, and waiting on jobs.

In the embedded default (no broker configured) the command that submits jobs also runs them, on a
real Celery worker in this process, so a single command does the whole job with no server.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import typer
from celery import Celery
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from sqlalchemy.orm import Session

from atelier.celery_app import QUEUES, create_app
from atelier.consumers import ConsumerWatch, queue_of, unconsumed_warning
from atelier.db import migrate, use_pool
from atelier.models import Job
from atelier.settings import Settings, get_settings
from atelier.storage import Storage, open_storage
from atelier.submit import wait_for_jobs

console = Console(stderr=True)
# Progress bars of bytes sent or received: what, how far, how fast, how long still.
BYTES_COLUMNS = (
    TextColumn("{task.description}"),
    BarColumn(),
    DownloadColumn(),
    TransferSpeedColumn(),
    TimeRemainingColumn(),
)
Row = TypeVar("Row")
log = logging.getLogger("atelier")


@dataclass
class Runtime:
    settings: Settings
    app: Celery

    @property
    def db_url(self) -> str:
        return self.settings.resolved_database_url

    @property
    def storage(self) -> Storage:
        return open_storage(self.settings)

    @contextmanager
    def executing(self, queues: Sequence[str] = QUEUES) -> Iterator[None]:
        """Jobs sent inside this block get run: by the in-process worker when embedded,
        by the deployment's workers otherwise."""
        if not self.settings.embedded:
            with nullcontext():
                yield
            return
        from workers.embedded import embedded_worker

        # Unless -v, native libraries' start-up lines (TensorFlow, XLA) go to a file, not here.
        quiet = not logging.getLogger().isEnabledFor(logging.INFO)
        native = self.settings.resolved_data_dir / "logs" / "native.log" if quiet else None
        with embedded_worker(self.app, tuple(queues), native_log=native):
            yield

    def warn_if_unconsumed(self, task_name: str, where: Console = console) -> None:
        """In a deployment, say once when the queue of `task_name` has no worker to take its
        jobs (they would wait without a word), naming the command that starts one. Embedded,
        this command's own worker consumes it."""
        if self.settings.embedded:
            return
        queue = queue_of(task_name)
        if ConsumerWatch(self.app).unconsumed(queue):
            where.print(f"[yellow]warning: {unconsumed_warning(queue)}[/yellow]", soft_wrap=True)

    def stopped_message(self, batch_id: int, out: Path) -> str:
        """What Ctrl-C left behind and the exact commands that go on from there. Embedded, the
        running job went back to the queue as the command stopped and nothing runs until a
        worker does; in a deployment the deployment's workers go on by themselves."""
        follow = f"`atelier status --batch {batch_id}`"
        fetch = f"`atelier results {batch_id} --out {out}`"
        if self.settings.embedded:
            return (
                f"stopped. Batch {batch_id}'s unfinished jobs are back in the queue. Resume them"
                f" with `atelier worker` (stop it with Ctrl-C once {follow} shows them done),"
                f" then write the results with {fetch}."
            )
        return (
            f"stopped waiting. The deployment's workers go on with batch {batch_id}: follow it"
            f" with {follow}, then write the results with {fetch}."
        )

    def wait(
        self,
        job_ids: Sequence[int],
        on_update: Callable[[dict[int, Job]], None] | None = None,
        timeout: float | None = None,
    ) -> dict[int, Job]:
        return wait_for_jobs(self.db_url, job_ids, timeout=timeout, on_update=on_update)


def is_loopback(host: str) -> bool:
    """Whether a server listening on `host` can be reached from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def runtime() -> Runtime:
    """Settings read, schema migrated, app built: every command starts here."""
    settings = get_settings()
    use_pool(settings.resolved_database_url, settings.pool)
    try:
        migrate(settings.resolved_database_url)
    except Exception as error:
        console.print(
            f"[red]cannot open the database {settings.resolved_database_url}: {error}[/red]"
        )
        raise typer.Exit(2) from error
    return Runtime(settings, create_app(settings))


def get_or_exit(session: Session, model: type[Row], row_id: int, code: int = 1) -> Row:
    """The row, or "no <kind> <id>" and exit `code`: a mistyped id is a message, not a traceback."""
    row = session.get(model, row_id)
    if row is None:
        console.print(f"[red]no {model.__name__.lower()} {row_id}[/red]")
        raise typer.Exit(code)
    return row
