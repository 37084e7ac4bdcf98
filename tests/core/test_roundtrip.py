"""A ping job round-trips through real processes: Redis + PostgreSQL, and the embedded default."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from atelier.db import session_scope
from atelier.models import Job, JobState
from tests.support.procs import ATELIER, REPO, atelier_env, atelier_process


def _ping(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ATELIER, "ping", "--timeout", "60"],
        env=atelier_env(env),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
    )


@pytest.mark.slow
def test_worker_process_consumes_a_job_through_redis(tmp_path: Path, pg_url: str, redis_url: str):
    env = {
        "ATELIER_DATABASE_URL": pg_url,
        "ATELIER_BROKER_URL": redis_url,
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
    }
    worker = ["worker", "--queues", "default", "--hostname", "t1@%h"]
    with atelier_process(worker, env, tmp_path / "worker.log", ready=" ready."):
        done = _ping(env)
    assert done.returncode == 0, done.stderr
    assert "pong from t1@" in done.stderr
    with session_scope(pg_url) as s:
        job = s.execute(select(Job)).scalar_one()
    assert job.state == JobState.SUCCEEDED and job.attempts == 1
    assert job.worker.startswith("t1@") and job.celery_task_id


@pytest.mark.slow
def test_embedded_default_needs_no_server(tmp_path: Path):
    data = tmp_path / "data"
    env = {"ATELIER_DATA_DIR": str(data), "ATELIER_BROKER_URL": "", "ATELIER_DATABASE_URL": ""}
    done = _ping(env)
    assert done.returncode == 0, done.stderr
    assert "pong from " in done.stderr
    url = f"sqlite:///{data / 'atelier.sqlite3'}"
    with session_scope(url) as s:
        job = s.execute(select(Job)).scalar_one()
    assert job.state == JobState.SUCCEEDED
    assert list((data / "broker" / "queue").iterdir()) == []  # the message was consumed
