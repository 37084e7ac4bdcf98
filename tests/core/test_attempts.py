"""Each attempt at a job is kept as a record: who ran it, under which message, how it ended.

And a claim is safe to retry: one whose commit landed but whose answer was lost (a real
connection closed by a proxy after PostgreSQL applied the commit) goes on with its own attempt
instead of finding the job busy and spending another.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from api.cli.main import app as cli
from atelier import jobs
from atelier.db import migrate, session_scope
from atelier.dbclock import db_now
from atelier.models import Job, JobAttempt, JobState
from atelier.read import job_detail
from atelier.settings import get_settings
from atelier.submit import create_ping_job
from tests.support.clock import age_heartbeat
from tests.support.pgproxy import losing_proxy


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    migrate(url)
    return url


def _history(db: str, job_id: int) -> list[tuple]:
    with session_scope(db) as session:
        detail = job_detail(session, session.get(Job, job_id))
    assert detail.history is not None
    return [(a.attempt, a.worker, a.task_id, a.outcome, a.error) for a in detail.history]


def test_a_job_that_failed_twice_then_succeeded_shows_both_errors(db: str):
    job_id = create_ping_job(db)
    for n, error in ((1, "ConnectionError: broker away"), (2, "OSError: disk busy")):
        lease = jobs.claim(db, job_id, f"w{n}", 60, task_id=f"task-{n}").lease
        assert lease is not None and lease.attempt == n
        jobs.release(lease, error)
    last = jobs.claim(db, job_id, "w3", 60, task_id="task-3").lease
    jobs.succeed(last, None, {}, 1.0)
    assert _history(db, job_id) == [
        (1, "w1", "task-1", "released", "ConnectionError: broker away"),
        (2, "w2", "task-2", "released", "OSError: disk busy"),
        (3, "w3", "task-3", "succeeded", None),
    ]
    with session_scope(db) as session:
        job = session.get(Job, job_id)
        assert (job.state, job.error, job.worker) == (JobState.SUCCEEDED, None, "w3")
        ended = session.scalars(select(JobAttempt.ended_at).where(JobAttempt.job_id == job_id))
        assert all(ended)


def test_an_attempt_taken_over_failed_or_cancelled_says_so(db: str):
    taken, failed, cancelled = (create_ping_job(db) for _ in range(3))
    jobs.claim(db, taken, "dead", 60)
    age_heartbeat(db, taken, 61)
    jobs.claim(db, taken, "alive", 60)
    jobs.fail(jobs.claim(db, failed, "w", 60).lease, "InputError: not an image")
    jobs.claim(db, cancelled, "w", 60)
    assert jobs.cancel(db, cancelled)
    assert [(a, w, o) for a, w, _, o, _ in _history(db, taken)] == [
        (1, "dead", "abandoned"),
        (2, "alive", "running"),
    ]
    lease = jobs.claim(db, failed, "never", 60)  # finished: nothing to do
    assert lease.outcome is jobs.ClaimOutcome.FINISHED
    with session_scope(db) as session:
        row = session.get(Job, taken)
        jobs.heartbeat(jobs.Lease(db, taken, 2, "alive"), 0.5)
        session.refresh(row)
        running = job_detail(session, row).history[-1]
    assert running.heartbeat_at == row.heartbeat_at  # its lease as the job's row has it
    assert _history(db, failed) == [(1, "w", None, "failed", "InputError: not an image")]
    assert [o for *_, o, _ in _history(db, cancelled)] == ["cancelled"]


def test_the_reaper_ending_an_attempt_records_why(db: str):
    job_id = create_ping_job(db)
    lease = jobs.claim(db, job_id, "w@gone:42", 60).lease
    with session_scope(db) as session:
        seen = jobs.Seen.of(session.get(Job, job_id))
        cut = db_now(session) + timedelta(seconds=1)
    assert jobs.requeue(db, seen, cut, cut)
    ((_, _, _, outcome, error),) = _history(db, job_id)
    assert outcome == "abandoned" and "w@gone:42 stopped renewing its lease" in error
    assert lease is not None


def test_status_shows_the_attempts_with_workers_and_errors(atelier_env: dict[str, str]):
    db_url = get_settings().resolved_database_url
    migrate(db_url)
    job_id = create_ping_job(db_url)
    jobs.release(jobs.claim(db_url, job_id, "first@box:1", 60).lease, "OSError: disk busy")
    jobs.claim(db_url, job_id, "second@box:2", 60)
    shown = CliRunner().invoke(cli, ["status", "--job", str(job_id)], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    first = next(line for line in shown.output.splitlines() if "attempt 1" in line)
    assert "released on first@box:1" in first and "OSError: disk busy" in first
    second = next(line for line in shown.output.splitlines() if "attempt 2" in line)
    assert "running on second@box:2" in second


def test_a_claim_whose_commit_answer_is_lost_goes_on_with_its_attempt(pg_url: str):
    migrate(pg_url)
    job_id = create_ping_job(pg_url)
    target = make_url(pg_url)
    with losing_proxy((target.host, target.port), b"INSERT INTO job_attempts") as proxy:
        got = jobs.claim(proxy.url(pg_url), job_id, "w", 60, task_id="t")
        assert proxy.lost == 1, "the proxy lost no commit answer"
    assert got.outcome is jobs.ClaimOutcome.CLAIMED and got.lease is not None
    assert got.lease.attempt == 1
    with session_scope(pg_url) as session:
        assert session.get(Job, job_id).attempts == 1
        assert session.scalar(select(func.count()).where(JobAttempt.job_id == job_id)) == 1
    jobs.succeed(jobs.Lease(pg_url, job_id, 1, "w"), None, {}, 0.1)  # the attempt is its own
