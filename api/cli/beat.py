"""`atelier beat`: the scheduler (Celery beat) sending the reaper, inbox and retention passes."""

from __future__ import annotations

import os
import signal
from typing import Annotated

import typer

from api.cli.runtime import console, runtime
from scheduler.held import held_scheduler
from scheduler.inboxes import InboxConfigError, load_inboxes
from scheduler.locks import BeatLock, BeatLockHeld
from scheduler.schedule import beat_schedule


def beat_cmd(
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO",
) -> None:
    """Run the scheduler: the reaper re-sends stranded jobs, inboxes become batches, retention
    removes old files, the scratch sweep removes what killed processes left. Only one may run:
    a second one waits a little over one heartbeat for the lock (a killed beat's lock expires
    within one), then says so and exits with status 1.

    Its tasks run on the workers of queue `default`; embedded (no broker configured), this
    process runs them itself.
    """
    rt = runtime()
    settings = rt.settings
    try:
        inboxes = load_inboxes(settings)
    except InboxConfigError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)  # the schedule file lives there
    schedule = beat_schedule(settings, inboxes)
    rt.app.conf.beat_schedule = schedule
    # A beat killed without cleaning up frees its lock within one heartbeat: wait that long
    # (and one renewal more), so its replacement takes over instead of exiting.
    lock = BeatLock(settings, wait=settings.heartbeat_seconds * 4 / 3)
    try:
        lock.__enter__()
    except BeatLockHeld as held:
        console.print(f"[red]{held}; only one may run[/red]")
        raise typer.Exit(1) from held
    # Losing the lock (another beat took it) stops this one the way Ctrl-C does.
    lock.on_lost = lambda: os.kill(os.getpid(), signal.SIGTERM)
    try:
        console.print(
            f"beat: {', '.join(schedule)}"
            + (f"; inboxes: {', '.join(i.name for i in inboxes)}" if inboxes else "")
        )
        with rt.executing(["default"]):
            rt.app.Beat(
                loglevel=loglevel,
                schedule=str(settings.resolved_data_dir / "celerybeat-schedule"),
                scheduler=held_scheduler(lock.holds),
                quiet=True,
            ).run()
    finally:
        lock.__exit__(None, None, None)
    if lock.lost.is_set():
        console.print("[red]another beat took the lock; this one stopped[/red]")
        raise typer.Exit(1)
