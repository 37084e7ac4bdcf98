"""A worker keeps the leases of its jobs while it works, even when the work reports nothing for
longer than a lease (loading TensorFlow, compiling a step), and stops when the work ends."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from atelier import jobs
from atelier.celery_app import PING, create_app
from atelier.db import migrate, session_scope
from atelier.models import Job, JobState
from atelier.settings import Settings
from atelier.storage import Storage
from atelier.submit import create_ping_job
from workers.tasks.leases import keep_leases
from workers.tasks.runner import JobContext, run_claimed

HEARTBEAT = 0.2


def _heartbeat_at(db_url: str, job_id: int) -> datetime:
    with session_scope(db_url) as session:
        return session.get(Job, job_id).heartbeat_at


def test_silent_work_keeps_its_lease_and_the_renewals_stop_with_it(pg_url: str, tmp_path: Path):
    migrate(pg_url)
    settings = Settings(_env_file=None, database_url=pg_url, heartbeat_seconds=HEARTBEAT)
    job_id = create_ping_job(pg_url)
    got = jobs.claim(pg_url, job_id, "keeper-test", lease_seconds=10 * HEARTBEAT)
    assert got.lease is not None and got.job is not None
    task = create_app(settings).tasks[PING]  # not run: the work below stands for its body
    context = JobContext(task, got.lease, got.job, settings, Storage(tmp_path))
    seen = []

    def silent_work(_: list[JobContext]) -> None:
        for _ in range(4):
            seen.append(_heartbeat_at(pg_url, job_id))
            time.sleep(5 * HEARTBEAT)  # no progress report at all

    assert run_claimed([context], silent_work) == {
        "claimed": [job_id],
        "attempts": {str(job_id): 1},
    }
    assert seen == sorted(seen) and len(set(seen)) == len(seen), seen  # renewed every time
    settled = _heartbeat_at(pg_url, job_id)
    time.sleep(3 * HEARTBEAT)
    assert _heartbeat_at(pg_url, job_id) == settled  # the keeper stopped with the work
    with session_scope(pg_url) as session:
        assert session.get(Job, job_id).state == JobState.RUNNING  # the work settles, not it


def test_work_outliving_all_its_jobs_is_reported_once_and_live_work_never(pg_url: str):
    """`on_abandoned` (the worker ends the process) fires once every lease has ended and the
    work still runs a round later; never while a job is still the work's own."""
    migrate(pg_url)
    leases = []
    for _ in range(2):
        job_id = create_ping_job(pg_url)
        got = jobs.claim(pg_url, job_id, "keeper-test", lease_seconds=60)
        assert got.lease is not None
        leases.append(got.lease)
    calls: list[float] = []
    with keep_leases(leases, HEARTBEAT, on_abandoned=lambda: calls.append(time.monotonic())):
        jobs.cancel(pg_url, leases[0].job_id)
        time.sleep(10 * HEARTBEAT)
        assert calls == []  # the other job is still held
        cancelled = time.monotonic()
        jobs.cancel(pg_url, leases[1].job_id)
        time.sleep(10 * HEARTBEAT)
    assert len(calls) == 1 and calls[0] - cancelled >= HEARTBEAT, calls
