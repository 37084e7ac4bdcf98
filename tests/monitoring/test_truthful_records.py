"""What the logs and the job rows say is what happened: a worker that lost its lease does not
log a cancel, and a job sent back to the queue does not show the progress of the attempt that
ended."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from atelier import jobs
from atelier.celery_app import PING, create_app
from atelier.db import migrate, session_scope
from atelier.errors import JobCancelled
from atelier.models import Job, JobState, utcnow
from atelier.settings import Settings
from atelier.storage import Storage
from atelier.submit import create_ping_job, job_states
from scheduler.reaper import requeue_stale
from workers.tasks.runner import JobContext, run_claimed


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    migrate(pg_url)
    return Settings(
        _env_file=None,
        database_url=pg_url,
        data_dir=tmp_path / "data",
        heartbeat_seconds=0.2,
        requeue_grace_seconds=0,
    )


def _lease_runs_out(db_url: str, job_id: int) -> None:
    """The attempt stops renewing its lease (a paused or partitioned worker)."""
    with session_scope(db_url) as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1))
        )


def test_a_worker_that_lost_its_lease_does_not_log_a_cancel(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    db = settings.resolved_database_url
    taken, cancelled = create_ping_job(db), create_ping_job(db)
    claims = {
        job_id: jobs.claim(db, job_id, "old:1", lease_seconds=60) for job_id in (taken, cancelled)
    }
    _lease_runs_out(db, taken)
    assert jobs.claim(db, taken, "new:2", lease_seconds=60).lease.attempt == 2  # taken over
    assert jobs.cancel(db, cancelled)
    task = create_app(settings).tasks[PING]  # not run: `work` below stands for its body
    contexts = [
        JobContext(task, claim.lease, claim.job, settings, Storage(tmp_path))
        for claim in claims.values()
    ]

    def work(_: list[JobContext]) -> None:
        # An engine stops a group the same way whatever the reason (workers/nst/engine.py).
        raise JobCancelled("cancelled at iteration 3 of 300")

    with caplog.at_level(logging.INFO, logger="workers.tasks.runner"):
        run_claimed(contexts, work)
    said = caplog.text
    assert f"job {taken}: attempt 1 lost its lease to attempt 2 (the job is running)" in said
    assert f"job {cancelled}: cancelled; attempt 1 stopped" in said
    assert "cancelled at iteration" not in said  # the engine's guess is not repeated


def test_a_job_sent_back_to_the_queue_shows_no_progress(settings: Settings):
    db = settings.resolved_database_url
    job_id = create_ping_job(db)
    lease = jobs.claim(db, job_id, "w:1", lease_seconds=60).lease
    jobs.heartbeat(lease, progress=0.6)
    jobs.release(lease, "ConnectionError: a transient error")  # the runner's retry path
    row = job_states(db, [job_id])[job_id]
    assert (row.state, row.progress) == (JobState.QUEUED, 0.0)

    lease = jobs.claim(db, job_id, "w:2", lease_seconds=60).lease
    jobs.heartbeat(lease, progress=0.7)
    _lease_runs_out(db, job_id)  # the worker died
    assert requeue_stale(settings, create_app(settings)) == [job_id]  # the reaper's path
    row = job_states(db, [job_id])[job_id]
    assert (row.state, row.progress, row.attempts) == (JobState.QUEUED, 0.0, 2)
