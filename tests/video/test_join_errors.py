"""A segmented video's join follows the one error policy: an error that is neither bad input nor
an outage (here a segment file that is not there) gives the job back, spending its attempt, and
sends it again; the job is not left `running` until its lease runs out."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from atelier import jobs
from atelier import settings as settings_module
from atelier.celery_app import VIDEO_JOIN, create_app
from atelier.db import migrate, session_scope
from atelier.models import Job, JobKind, JobState
from atelier.schemas import VideoParams
from tests.scheduler.jobrows import add_job
from workers.tasks import video as video_tasks


def test_a_join_that_fails_gives_the_job_back_spending_its_attempt(
    pg_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    env = {
        "ATELIER_DATABASE_URL": pg_url,
        "ATELIER_BROKER_URL": redis_url,
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings_module.get_settings.cache_clear()
    settings = settings_module.get_settings()
    migrate(pg_url)
    app = create_app(settings)
    assert video_tasks.join.name == VIDEO_JOIN  # registers the worker's tasks with the app
    params = VideoParams(filter="blur", segment_seconds=1.0).model_dump(mode="json")
    job_id = add_job(settings, JobKind.VIDEO, inputs={"video": "0" * 64}, params=params)
    got = jobs.claim(pg_url, job_id, "join-test", lease_seconds=60)
    assert got.lease is not None
    missing = {"work": f"segments-{job_id}-1/segment-0000.mp4", "duration": 1.0, "start": 0.0}
    app.tasks[VIDEO_JOIN].apply(args=([missing], job_id, got.lease.attempt))  # in this process
    with session_scope(pg_url) as session:
        row = session.get(Job, job_id)
        assert (row.state, row.attempts, row.max_attempts) == (JobState.QUEUED, 1, 3)
        assert "FileNotFoundError" in (row.error or ""), row.error
    assert redis.Redis.from_url(redis_url).llen("video") == 1  # sent again, as a filter task
    settings_module.get_settings.cache_clear()
