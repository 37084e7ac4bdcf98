"""The answer to a worker's claim is lost after its commit landed: a proxy between the worker and
PostgreSQL (`tests.support.pgproxy`) passes the claim's transaction through, PostgreSQL commits
it, and the proxy closes the connection instead of passing the `COMMIT` answer back. The claim is
retried on a new connection, finds the job running under its own token, and goes on: every job
finishes once, on its first attempt, with no lease waited out. Ping jobs: the claim is the same
for every task, and a ping needs no engine to start."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from atelier.celery_app import PING, create_app
from atelier.db import session_scope
from atelier.models import Job, JobAttempt, JobState
from atelier.submit import create_ping_job, new_task_id, send_jobs
from tests.faults.harness import (
    Outcome,
    RedisServer,
    cluster,
    fault_runs,
    jobs,
    record,
    wait_finished,
)
from tests.support.pgproxy import losing_proxy

pytestmark = pytest.mark.slow
JOBS = 2  # one message of two jobs: both claims lose their answer


def _outcome(rows: list[Job], recorded: int) -> Outcome:
    """What the rows say; a ping stores no result and no history rows, so a job done twice
    shows as a second attempt (`attempts`, and attempt records beyond one per job)."""
    succeeded = sum(1 for row in rows if row.state == JobState.SUCCEEDED)
    return Outcome(
        jobs=len(rows),
        succeeded=succeeded,
        failed=sum(1 for row in rows if row.state == JobState.FAILED),
        lost=len(rows) - succeeded,
        attempts=[row.attempts for row in rows],
        results=[0] * len(rows),
        duplicate_rows=recorded - len(rows),
        incomplete=[],
    )


def test_a_claim_whose_commit_answer_is_lost_goes_on_without_spending_an_attempt(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer
):
    target = make_url(pg_url)
    with (
        losing_proxy((target.host, target.port), b"INSERT INTO job_attempts", times=0) as proxy,
        cluster(tmp_path, pg_url, fault_redis.url, ATELIER_DATABASE_URL=proxy.url(pg_url)) as c,
    ):
        c.start_many([c.worker_spec("ping-0", "default")])
        app = create_app(c.settings)
        for run in range(1, fault_runs() + 1):
            proxy.times += JOBS
            started = time.monotonic()
            task_id = new_task_id()
            ids = [create_ping_job(c.db_url, task_id=task_id) for _ in range(JOBS)]
            send_jobs(app, c.db_url, PING, ids, task_id=task_id)
            wait_finished(c.db_url, ids, 60)
            with session_scope(c.db_url) as session:
                recorded = session.scalar(select(func.count()).where(JobAttempt.job_id.in_(ids)))
            got = _outcome(jobs(c.db_url, ids), recorded)
            seconds = time.monotonic() - started
            record("Lose the answer to a claim's commit", run, "lost answer", JOBS, got, seconds)
            assert proxy.lost == run * JOBS, f"the proxy lost {proxy.lost} answers\n{c.logs()}"
            assert got.succeeded == JOBS and got.attempts == [1] * JOBS, f"{got}\n{c.logs()}"
            assert got.duplicate_rows == 0, f"{got}\n{c.logs()}"  # one attempt each
