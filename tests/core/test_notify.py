"""Followers of jobs are woken by notices (PostgreSQL NOTIFY, or in-process on SQLite) rather than
by polling: with the polling fallback set to an hour, a follower still sees every change."""

from __future__ import annotations

import threading

import pytest

from atelier import jobs
from atelier.db import migrate
from atelier.models import JobState
from atelier.notify import job_feed
from atelier.submit import create_ping_job, wait_for_jobs

HOUR = 3600.0
DEADLINE = 60  # bounds a broken follower's wait; not a timing


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    migrate(url)
    return url


def test_a_follower_is_woken_by_each_change(db_url: str):
    job_id = create_ping_job(db_url)
    seen: list[tuple[str, float]] = []
    result: dict[int, object] = {}
    first_read = threading.Event()

    def update(rows: dict) -> None:
        seen.append((rows[job_id].state, rows[job_id].progress))
        first_read.set()

    def follow() -> None:
        result.update(
            wait_for_jobs(
                db_url,
                [job_id],
                on_update=update,
                interval=HOUR,
            )
        )

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    assert first_read.wait(DEADLINE)  # it has read the queued row and sleeps until told
    with job_feed(db_url) as feed:
        claim = jobs.claim(db_url, job_id, "test:1", lease_seconds=60)
        assert claim.lease is not None
        assert feed is not None and job_id in feed.wait(DEADLINE)
        jobs.heartbeat(claim.lease, progress=0.5)
        jobs.succeed(claim.lease, None, {}, 0.1)
    follower.join(DEADLINE)
    assert not follower.is_alive(), f"the follower missed the notices; it saw {seen}"
    assert result[job_id].state == JobState.SUCCEEDED
    assert seen[-1] == (JobState.SUCCEEDED, 1.0)


def test_no_change_no_notice(pg_url: str):
    migrate(pg_url)
    job_id = create_ping_job(pg_url)
    with job_feed(pg_url) as feed:
        assert feed is not None
        assert jobs.cancel(pg_url, job_id)
        assert feed.wait(DEADLINE) == {job_id}
        assert not jobs.cancel(pg_url, job_id)  # already cancelled: nothing changed
        assert feed.wait(0.5) == set()


def test_frame_rows_and_a_release_notify(pg_url: str):
    migrate(pg_url)
    job_id = create_ping_job(pg_url)
    lease = jobs.claim(pg_url, job_id, "test:1", lease_seconds=60).lease
    assert lease is not None
    with job_feed(pg_url) as feed:
        assert feed is not None
        jobs.record_frames(lease, 0, 2, [(0, [[1, 2, 3, 4]]), (1, [])], of=4)
        assert feed.wait(DEADLINE) == {job_id}
        jobs.release(lease, "ConnectionError: a transient error")
        assert feed.wait(DEADLINE) == {job_id}
