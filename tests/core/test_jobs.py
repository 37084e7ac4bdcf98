"""The job state machine on both databases: one winner per claim, fencing, cancellation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import IntegrityError

from atelier import dbclock, jobs
from atelier.celery_app import create_app
from atelier.db import get_engine, migrate, session_scope
from atelier.errors import JobCancelled, LeaseLost
from atelier.models import Asset, Job, JobState, LossRecord
from atelier.settings import Settings
from scheduler.reaper import requeue_stale
from tests.support.clock import age_heartbeat


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    migrate(url)
    return url


def _new_job(db: str, max_attempts: int = 3) -> int:
    with session_scope(db) as s:
        job = Job(kind="ping", inputs={}, params={}, meta={}, max_attempts=max_attempts)
        s.add(job)
        s.flush()
        return job.id


def _state(db: str, job_id: int) -> Job:
    with session_scope(db) as s:
        return s.get(Job, job_id)


def test_only_one_of_many_racing_claims_wins(db: str):
    job_id = _new_job(db)
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda i: jobs.claim(db, job_id, f"w{i}", 60).outcome, range(8)))
    assert outcomes.count(jobs.ClaimOutcome.CLAIMED) == 1
    assert outcomes.count(jobs.ClaimOutcome.BUSY) == 7
    assert _state(db, job_id).attempts == 1


def test_stale_lease_is_taken_over_and_the_old_attempt_is_fenced_off(db: str):
    job_id = _new_job(db)
    old = jobs.claim(db, job_id, "dead-worker", 60).lease
    jobs.heartbeat(old, 0.5, {}, losses=[(0, 9.0, 1.0, 8.0, 0.0), (1, 8.0, 1.0, 7.0, 0.0)])
    age_heartbeat(db, job_id, 61)
    new = jobs.claim(db, job_id, "new-worker", 60).lease
    assert new is not None and new.attempt == 2
    with session_scope(db) as s:  # the dead attempt's history is gone: no duplicates later
        assert s.scalar(select(func.count()).where(LossRecord.job_id == job_id)) == 0
    with pytest.raises(LeaseLost):
        jobs.heartbeat(old, 0.9, {}, losses=[(2, 1.0, 1.0, 1.0, 0.0)])
    with pytest.raises(LeaseLost):
        jobs.succeed(old, None, {"by": "old"}, 1.0)
    jobs.succeed(new, None, {"by": "new"}, 1.0)
    job = _state(db, job_id)
    assert (job.state, job.meta, job.worker) == (JobState.SUCCEEDED, {"by": "new"}, "new-worker")
    assert jobs.claim(db, job_id, "late", 60).outcome is jobs.ClaimOutcome.FINISHED


def test_loss_rows_are_unique_per_iteration(db: str):
    job_id = _new_job(db)
    lease = jobs.claim(db, job_id, "w", 60).lease
    with session_scope(db) as s:  # the table refuses a second row for one iteration
        s.add(LossRecord(job_id=job_id, iteration=0, total=1, content=1, style=0, tv=0))
        s.flush()
        with pytest.raises(IntegrityError), s.begin_nested():
            s.add(LossRecord(job_id=job_id, iteration=0, total=2, content=1, style=0, tv=0))
            s.flush()
    # A heartbeat written again (its commit landed but the answer was lost, so it was retried)
    # replaces the rows of its iterations instead of failing.
    jobs.heartbeat(lease, losses=[(0, 1.0, 1.0, 0.0, 0.0), (1, 0.5, 0.5, 0.0, 0.0)])
    jobs.heartbeat(lease, losses=[(1, 0.5, 0.5, 0.0, 0.0)])
    with session_scope(db) as s:
        rows = s.execute(select(LossRecord.iteration).where(LossRecord.job_id == job_id)).all()
    assert sorted(r.iteration for r in rows) == [0, 1]


def test_cancel_stops_a_running_attempt_and_keeps_what_it_computed(db: str):
    job_id = _new_job(db)
    lease = jobs.claim(db, job_id, "w", 60).lease
    jobs.heartbeat(lease, 0.1, losses=[(1, 3.0, 1.0, 2.0, 0.0)])
    assert jobs.cancel(db, job_id)
    # The worker learns of the cancel at its next heartbeat, which carries the rows computed
    # since the last one: they and the progress they reach are kept.
    with pytest.raises(JobCancelled):
        jobs.heartbeat(lease, 0.3, losses=[(2, 2.0, 1.0, 1.0, 0.0), (3, 1.5, 1.0, 0.5, 0.0)])
    job = _state(db, job_id)
    assert (job.state, job.progress) == (JobState.CANCELLED, 0.3)
    with session_scope(db) as s:
        kept = s.scalars(select(LossRecord.iteration).where(LossRecord.job_id == job_id)).all()
    assert sorted(kept) == [1, 2, 3]
    assert not jobs.cancel(db, job_id)
    with pytest.raises(JobCancelled):  # a cancelled job is no one's to succeed
        jobs.succeed(lease, None, {}, 1.0)


def test_leases_are_judged_by_the_database_clock(
    pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
):
    """A worker whose clock is ten minutes slow holds a live lease: another machine with a
    correct clock must neither claim the job nor have the reaper re-queue it."""
    migrate(pg_url)
    job_id = _new_job(pg_url)
    right = dbclock.utcnow
    monkeypatch.setattr(dbclock, "utcnow", lambda: right() - timedelta(minutes=10))
    slow = jobs.claim(pg_url, job_id, "slow-clock", 60).lease
    jobs.heartbeat(slow, 0.5)
    monkeypatch.setattr(dbclock, "utcnow", right)
    assert jobs.claim(pg_url, job_id, "right-clock", 60).outcome is jobs.ClaimOutcome.BUSY
    settings = Settings(database_url=pg_url, broker_url=redis_url, lease_seconds=60)
    assert requeue_stale(settings, create_app(settings)) == []
    assert _state(pg_url, job_id).state == JobState.RUNNING
    jobs.heartbeat(slow, 0.6)  # still this attempt's


def test_too_many_attempts_fail_the_job_with_the_reason(db: str):
    job_id = _new_job(db, max_attempts=1)
    jobs.claim(db, job_id, "worker-that-dies", 60)
    age_heartbeat(db, job_id, 61)
    assert jobs.claim(db, job_id, "w2", 60).outcome is jobs.ClaimOutcome.EXHAUSTED
    job = _state(db, job_id)
    assert job.state == JobState.FAILED
    assert "gave up after 1 attempts" in job.error and "worker-that-dies" in job.error


def test_a_claim_giving_up_spares_a_slow_holder_that_renews_meanwhile(pg_url: str):
    """The claim reads an exhausted job whose lease looks lapsed; before it fails the job, the
    holder (slow, not dead) renews its lease. Giving up is fenced on that lease: the job stays
    its holder's, and the claim is told BUSY."""
    migrate(pg_url)
    job_id = _new_job(pg_url, max_attempts=1)
    holder = jobs.claim(pg_url, job_id, "slow-holder", 60).lease
    with session_scope(pg_url) as s:  # its last heartbeat was half a minute ago
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(heartbeat_at=func.now() - timedelta(seconds=30))
        )
    renewed = []

    def renew_first(_conn, _cursor, statement: str, parameters, _context, _many) -> None:
        failing = statement.startswith("UPDATE jobs SET state") and "failed" in str(parameters)
        if failing and not renewed:  # the holder's heartbeat lands between read and write
            renewed.append(True)
            with ThreadPoolExecutor(1) as other:
                other.submit(jobs.heartbeat, holder, 0.5).result()

    engine = get_engine(pg_url)
    event.listen(engine, "before_cursor_execute", renew_first)
    try:
        outcome = jobs.claim(pg_url, job_id, "other", 10).outcome
    finally:
        event.remove(engine, "before_cursor_execute", renew_first)
    assert renewed, "the claim never tried to give up"
    assert outcome is jobs.ClaimOutcome.BUSY
    job = _state(pg_url, job_id)
    assert (job.state, job.worker, job.error) == (JobState.RUNNING, "slow-holder", None)
    jobs.succeed(holder, None, {}, 1.0)  # still the holder's to finish


def test_release_puts_the_job_back_for_a_retry(db: str):
    job_id = _new_job(db)
    lease = jobs.claim(db, job_id, "w", 60).lease
    jobs.release(lease, "ConnectionError: broker went away")
    assert _state(db, job_id).state == JobState.QUEUED
    again = jobs.claim(db, job_id, "w", 60)
    assert again.outcome is jobs.ClaimOutcome.CLAIMED and again.lease.attempt == 2


def test_identical_jobs_racing_to_run_run_once_and_the_twins_share_the_result(db: str):
    ids = []
    with session_scope(db) as s:
        result = Asset(sha256="r" * 64, kind="result", media_type="image/png", size_bytes=1)
        s.add(result)
        s.flush()
        result_id = result.id
        for _ in range(4):
            job = Job(kind="nst", inputs={}, params={}, meta={}, fingerprint="f" * 64)
            s.add(job)
            s.flush()
            ids.append(job.id)
    with ThreadPoolExecutor(4) as pool:
        claims = list(pool.map(lambda i: jobs.claim(db, i, f"w{i}", 60), ids))
    [winner] = [c for c in claims if c.outcome is jobs.ClaimOutcome.CLAIMED]
    assert sorted(c.outcome for c in claims if c is not winner) == [jobs.ClaimOutcome.TWIN] * 3
    jobs.succeed(winner.lease, None, {"done": True}, 1.0)  # no result: the twins keep waiting
    assert [_state(db, i).state for i in ids].count(JobState.QUEUED) == 3
    with session_scope(db) as s:
        s.execute(update(Job).where(Job.id == winner.lease.job_id).values(state="queued"))
    again = jobs.claim(db, winner.lease.job_id, "w", 60)
    jobs.succeed(again.lease, result_id, {"done": True}, 1.0)
    twins = [_state(db, i) for i in ids if i != winner.lease.job_id]
    assert {(t.state, t.reused_from_id, t.result_asset_id, t.attempts) for t in twins} == {
        (JobState.SUCCEEDED, winner.lease.job_id, result_id, 0)
    }
    assert jobs.claim(db, twins[0].id, "late", 60).outcome is jobs.ClaimOutcome.FINISHED


def test_a_killed_process_fails_only_the_attempt_it_held(db: str):
    """The worker's main process fails the jobs of a process it killed at their hard limit: a
    job taken over since by another attempt is left alone, even under the same `node:pid` (a
    worker restarted on the same host whose new process got the same pid)."""
    job_id = _new_job(db)
    jobs.claim(db, job_id, "node:7", 60, task_id="killed")
    age_heartbeat(db, job_id, 61)
    assert jobs.claim(db, job_id, "node:7", 60, task_id="next").lease.attempt == 2
    assert jobs.fail_held(db, [job_id], "node:7", "killed", "killed at its hard limit") == []
    assert _state(db, job_id).state == JobState.RUNNING
    assert jobs.fail_held(db, [job_id], "node:7", "next", "killed at its hard limit") == [job_id]
    job = _state(db, job_id)
    assert (job.state, job.error) == (JobState.FAILED, "killed at its hard limit")
