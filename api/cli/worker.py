"""`atelier worker`: a Celery worker on the chosen queues (embedded: it first re-sends the jobs an
earlier command left)."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from api.cli.runtime import console, runtime
from atelier.celery_app import QUEUES
from scheduler.reaper import requeue_stale

POOLS = ("prefork", "solo", "threads")


def worker_cmd(
    queues: Annotated[
        str,
        typer.Option("--queues", "-Q", help="Comma-separated queues: default, nst, video, fast."),
    ] = ",".join(QUEUES),
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Tasks run at once. Use 1 per GPU.")
    ] = 1,
    pool: Annotated[
        str,
        typer.Option(
            help="prefork: tasks run in child processes, which the worker replaces at a hard "
            "time limit, when a cancelled job's work hangs, or past "
            "ATELIER_WORKER_MAX_MEMORY_MB. solo or threads: in the worker's own process, "
            "where none of that can act.",
        ),
    ] = "prefork",
    hostname: Annotated[str | None, typer.Option("--hostname", "-n", help="Node name.")] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO",
) -> None:
    """Run a Celery worker (TensorFlow and OpenCV load only inside the tasks that need them).

    On the embedded default it first re-sends the jobs an earlier command left unfinished.
    """
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - set(QUEUES))
    if unknown or not wanted:
        raise typer.BadParameter(
            f"unknown queue(s) {unknown}; choose from {', '.join(QUEUES)}", param_hint="'--queues'"
        )
    if pool not in POOLS:
        raise typer.BadParameter(f"choose from {', '.join(POOLS)}", param_hint="'--pool'")
    rt = runtime()
    node = hostname or f"{'-'.join(wanted)}@{socket.gethostname()}"
    if pool != "prefork":
        console.print(
            f"[yellow]the {pool} pool runs tasks in the worker's own process: time limits,"
            " ending the hung work of a cancelled job and ATELIER_WORKER_MAX_MEMORY_MB do not"
            " act there[/yellow]"
        )
    argv = [
        "worker",
        f"--queues={','.join(wanted)}",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        f"--hostname={node}",
        f"--loglevel={loglevel}",
        "--task-events",
    ]
    if rt.settings.embedded:
        argv += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
        # Embedded, no scheduler runs: pick up what an earlier command left (jobs given back
        # when it was stopped, or stranded when it was killed and their lease has run out).
        resent = requeue_stale(rt.settings, rt.app)
        if resent:
            console.print(f"re-sent {len(resent)} job(s) left by an earlier command: {resent}")
    rt.app.worker_main(argv)
