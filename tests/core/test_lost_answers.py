"""A transition retried after its commit landed but its answer was lost answers as the first try
would have: a real connection closed by a proxy right after PostgreSQL applied the commit, and
the transition's database retry (`atelier.dbretry`) running it again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from atelier import jobs
from atelier.celery_app import create_app
from atelier.db import migrate, session_scope
from atelier.dbclock import db_now
from atelier.models import Job, JobAttempt, JobState
from atelier.settings import Settings
from atelier.submit import create_ping_job
from scheduler.reaper import requeue_stale
from tests.support.clock import age_heartbeat
from tests.support.pgproxy import LosingProxy, losing_proxy


@pytest.fixture
def db(pg_url: str) -> str:
    migrate(pg_url)
    return pg_url


@contextmanager
def _losing(db: str, marker: bytes) -> Iterator[LosingProxy]:
    target = make_url(db)
    with losing_proxy((target.host, target.port), marker) as proxy:
        yield proxy
        assert proxy.lost == 1, "the proxy lost no commit answer"


def _job(db: str, job_id: int) -> Job:
    with session_scope(db) as session:
        return session.get(Job, job_id)


def test_a_cancel_whose_answer_is_lost_still_says_it_cancelled(db: str):
    queued, running = create_ping_job(db), create_ping_job(db)
    jobs.claim(db, running, "w", 60)
    for job_id in (queued, running):
        with _losing(db, b"UPDATE jobs SET state") as proxy:
            assert jobs.cancel(proxy.url(db), job_id)
        assert _job(db, job_id).state == JobState.CANCELLED
    with session_scope(db) as session:
        ended = session.scalars(select(JobAttempt.outcome).where(JobAttempt.job_id == running))
        assert list(ended) == ["cancelled"]
    assert not jobs.cancel(db, queued)  # a cancel of a cancelled job still changes nothing


def test_a_requeue_whose_answer_is_lost_is_recognised_and_the_job_sent(db: str, redis_url: str):
    """The reaper's requeue of a job whose worker died lands but its answer is lost: the retry
    recognises its own write, so the reaper sends the job at once instead of leaving it queued
    for another grace period."""
    job_id = create_ping_job(db)
    jobs.claim(db, job_id, "w@gone:1", 60)
    age_heartbeat(db, job_id, 61)
    with session_scope(db) as session:
        seen = jobs.Seen.of(session.get(Job, job_id))
    with _losing(db, b"UPDATE jobs SET state") as proxy:
        settings = Settings(database_url=proxy.url(db), broker_url=redis_url, lease_seconds=60)
        assert requeue_stale(settings, create_app(settings)) == [job_id]
    job = _job(db, job_id)
    assert (job.state, job.attempts) == (JobState.QUEUED, 1)
    # What it recognises is its own write (queued at its `now`), not any requeue of the attempt.
    with session_scope(db) as session:
        later = db_now(session)
    assert not jobs.requeue(db, seen, later, later)
