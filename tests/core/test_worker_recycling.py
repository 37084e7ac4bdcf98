"""A worker process whose memory passed ATELIER_WORKER_MAX_MEMORY_MB is replaced (prefork)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atelier.celery_app import PING, create_app
from atelier.db import migrate
from atelier.models import JobState
from atelier.settings import Settings
from atelier.submit import create_ping_job, send_jobs, wait_for_jobs
from tests.support import services
from tests.support.procs import atelier_process

pytestmark = pytest.mark.slow


def test_a_child_over_the_memory_limit_is_replaced_after_its_task(tmp_path: Path):
    # Every Python process is over 1 MB: each child is replaced once its task is done.
    with services.deployment_env(tmp_path, ATELIER_WORKER_MAX_MEMORY_MB="1") as env:
        settings = Settings(
            database_url=env["ATELIER_DATABASE_URL"], broker_url=env["ATELIER_BROKER_URL"]
        )
        migrate(settings.resolved_database_url)
        app = create_app(settings)
        args = ["worker", "--queues", "default", "--concurrency", "1"]
        with atelier_process(args, env, tmp_path / "worker.log", ready=" ready."):
            pids = []
            for _ in range(2):
                job_id = create_ping_job(settings.resolved_database_url)
                send_jobs(app, settings.resolved_database_url, PING, [job_id])
                job = wait_for_jobs(settings.resolved_database_url, [job_id], timeout=60)[job_id]
                assert job.state == JobState.SUCCEEDED, (tmp_path / "worker.log").read_text()
                pids.append(job.meta["pid"])
    assert pids[0] != pids[1], (tmp_path / "worker.log").read_text()[-3000:]
