"""Workers accept JSON only: a pickled message (which could run code on load) is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from atelier.celery_app import PING, create_app
from atelier.models import JobState
from atelier.settings import Settings
from atelier.submit import create_ping_job, job_states, send_jobs, wait_for_jobs
from tests.support.procs import atelier_process


@pytest.mark.slow
def test_a_pickled_message_is_refused_and_the_worker_goes_on(
    tmp_path: Path, pg_url: str, redis_url: str
):
    env = {
        "ATELIER_DATABASE_URL": pg_url,
        "ATELIER_BROKER_URL": redis_url,
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
    }
    settings = Settings(_env_file=None, database_url=pg_url, broker_url=redis_url)
    app = create_app(settings)
    log = tmp_path / "worker.log"
    with atelier_process(["worker", "--queues", "default"], env, log, ready=" ready.") as worker:
        pickled, plain = create_ping_job(pg_url), create_ping_job(pg_url)
        app.send_task(PING, args=[[pickled]], serializer="pickle")
        send_jobs(app, pg_url, PING, [plain])  # sent after the pickled one, on the same queue
        done = wait_for_jobs(pg_url, [plain], timeout=60)
        assert worker.poll() is None
    assert done[plain].state == JobState.SUCCEEDED
    assert job_states(pg_url, [pickled])[pickled].state == JobState.QUEUED  # never run
    assert "Refusing to deserialize untrusted content of type pickle" in log.read_text()
