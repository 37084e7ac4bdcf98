"""What the queue path costs per job, side by side in one run.

For each setup (Redis + PostgreSQL with an `atelier worker` process; the embedded default, SQLite
and the filesystem broker with the worker in this process):

- raw Celery: a trivial task (`celery.accumulate`) sent and its result fetched, on the same broker
  and worker: the baseline;
- Atelier submit -> worker start: a ping job's `started_at - queued_at`, as the database records;
- Atelier submit -> result visible: from writing the job to `wait_for_jobs` (what the CLI runs)
  returning it finished.

And, on Redis + PostgreSQL, a 1,000-job grid (50 contents x 20 styles) submitted through
`POST /v1/batches` of a running `atelier api` (rows written and 250 messages sent).

`python -m bench.queue` writes the `queue` section of BENCHMARKS.md (needs PostgreSQL and Redis,
ATELIER_TEST_PG / ATELIER_TEST_REDIS as the tests); `--quick` runs fewer jobs and only prints.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from celery import Celery

from atelier.assets import record_asset
from atelier.celery_app import PING, create_app
from atelier.db import migrate, session_scope
from atelier.settings import Settings, get_settings
from atelier.storage import Storage
from atelier.submit import create_ping_job, new_task_id, send_jobs, wait_for_jobs
from bench.report import machine_line, write_section
from tests.support.load import serve
from tests.support.procs import atelier_process
from tests.support.services import fresh_postgres_database, fresh_redis_db
from workers.embedded import embedded_worker

GRID = (50, 20)


@dataclass(frozen=True)
class QueuePath:
    """Medians, in milliseconds, of one setup."""

    name: str
    raw: float
    start: float
    visible: float

    @property
    def ratio(self) -> float:
        return self.start / self.raw


def _raw_round_trip(app: Celery, interval: float) -> float:
    began = time.perf_counter()
    # The embedded worker runs in this process, which Celery would take for a task calling get().
    result = app.send_task("celery.accumulate", args=[1])
    result.get(timeout=30, interval=interval, disable_sync_subtasks=False)
    return time.perf_counter() - began


def _ping(app: Celery, db_url: str) -> tuple[float, float]:
    """(started_at - queued_at, submit -> visible), seconds."""
    began = time.perf_counter()
    task_id = new_task_id()
    job_id = create_ping_job(db_url, task_id=task_id)
    send_jobs(app, db_url, PING, [job_id], task_id=task_id)
    job = wait_for_jobs(db_url, [job_id], timeout=30)[job_id]
    visible = time.perf_counter() - began
    assert job.started_at and job.queued_at, f"ping job {job_id} did not run: {job.state}"
    return (job.started_at - job.queued_at).total_seconds(), visible


def measure_path(name: str, app: Celery, db_url: str, jobs: int, interval: float) -> QueuePath:
    for _ in range(3):  # warm: connections, imports
        _raw_round_trip(app, interval)
        _ping(app, db_url)
    raw, start, visible = [], [], []
    for _ in range(jobs):  # interleaved, so drift affects both alike
        raw.append(_raw_round_trip(app, interval))
        lag, seen = _ping(app, db_url)
        start.append(lag)
        visible.append(seen)
    ms = [statistics.median(values) * 1000 for values in (raw, start, visible)]
    return QueuePath(name, *ms)


@contextmanager
def deployment(tmp: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    with fresh_postgres_database() as db, fresh_redis_db() as broker:
        migrate(db)
        env = {
            "ATELIER_DATABASE_URL": db,
            "ATELIER_BROKER_URL": broker,
            "ATELIER_DATA_DIR": str(tmp / "data"),
        }
        yield Settings(database_url=db, broker_url=broker, data_dir=tmp / "data"), env


def redis_postgres(tmp: Path, jobs: int) -> tuple[QueuePath, float]:
    """The Redis + PostgreSQL path, and seconds to submit the grid through the API."""
    with deployment(tmp) as (settings, env):
        worker = ["worker", "--queues", "default"]
        with atelier_process(worker, env, tmp / "worker.log", ready=" ready."):
            app = create_app(settings)
            time.sleep(2)  # the worker's start-up chatter (mingle, events) settles
            path = measure_path(
                "Redis + PostgreSQL", app, settings.resolved_database_url, jobs, 0.001
            )
        grid = submit_grid(settings, env, tmp)
    return path, grid


def submit_grid(settings: Settings, env: dict[str, str], tmp: Path) -> float:
    storage = Storage(settings.resolved_storage_dir)
    with session_scope(settings.resolved_database_url) as session:
        shas = [
            record_asset(
                session,
                storage.put_bytes(b"grid image %d" % i),
                kind="image",
                media_type="image/png",
            ).sha256
            for i in range(sum(GRID))
        ]
    body = {"content": shas[: GRID[0]], "styles": shas[GRID[0] :], "force": True}
    with serve(env, tmp / "api.log") as base, httpx.Client(base_url=base, timeout=120) as http:
        http.post("/v1/batches", json={**body, "content": shas[:1], "styles": shas[-1:]})  # warm
        began = time.perf_counter()
        response = http.post("/v1/batches", json=body)
        seconds = time.perf_counter() - began
    assert response.status_code == 201, response.text
    assert response.json()["total"] == GRID[0] * GRID[1]
    return seconds


def embedded(tmp: Path, jobs: int) -> QueuePath:
    # The worker's tasks read the process's settings: point them at a fresh embedded setup.
    for key in ("ATELIER_BROKER_URL", "ATELIER_DATABASE_URL", "ATELIER_RESULT_BACKEND"):
        os.environ.pop(key, None)
    os.environ["ATELIER_DATA_DIR"] = str(tmp / "embedded")
    get_settings.cache_clear()
    settings = get_settings()
    db_url = settings.resolved_database_url
    migrate(db_url)
    app = create_app(settings)
    with embedded_worker(app, ("default",)):
        return measure_path("embedded (SQLite, filesystem broker)", app, db_url, jobs, 0.01)


def table(paths: list[QueuePath]) -> str:
    lines = [
        "| setup | raw Celery round trip | Atelier submit → worker start | ratio | "
        "submit → result visible |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in paths:
        lines.append(
            f"| {p.name} | {p.raw:.1f} ms | {p.start:.1f} ms | {p.ratio:.2f}x | "
            f"{p.visible:.1f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 jobs per setup; print only")
    args = parser.parse_args()
    jobs = 10 if args.quick else 40
    with tempfile.TemporaryDirectory() as tmp:
        served, grid = redis_postgres(Path(tmp), jobs)
        paths = [served, embedded(Path(tmp), jobs)]
    text = table(paths)
    grid_line = f"1,000-job grid through `POST /v1/batches`: {grid:.2f} s (goal < 2 s)."
    print(text)
    print(grid_line)
    if args.quick:
        return
    body = (
        "## Queue path per job\n\n"
        f"{machine_line()}\n\n"
        f"`python -m bench.queue`: medians of {jobs} ping jobs per setup, each interleaved with "
        "a raw Celery round trip (`celery.accumulate`, result fetched) on the same broker and "
        "worker. *Submit → worker start* is the job row's `started_at - queued_at`; *result "
        "visible* runs from writing the row to `wait_for_jobs` (what the CLI runs) returning it "
        "finished. Goal: worker start within 3x the raw round trip.\n\n"
        f"{text}\n\n{grid_line}\n"
    )
    write_section("queue", body)


if __name__ == "__main__":
    main()
