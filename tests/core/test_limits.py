"""Time limits follow the size of the work, and messages carry them to Celery."""

from __future__ import annotations

import json

import redis

from atelier.celery_app import NST_STYLIZE, create_app
from atelier.db import migrate, session_scope
from atelier.limits import limits, message_seconds, nst_seconds
from atelier.models import Job
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.submit import send_jobs


def test_bounds_grow_with_the_work_and_scale_to_nothing():
    small = nst_seconds(NSTParams(size=64, iterations=100), 1)
    assert nst_seconds(NSTParams(size=512, iterations=100), 1) > small
    assert nst_seconds(NSTParams(size=64, iterations=1000), 1) > small
    assert nst_seconds(NSTParams(size=64, iterations=100), 4) > small
    got = limits(small, 2.0)
    assert got["soft_time_limit"] == 2 * small and got["time_limit"] > got["soft_time_limit"]
    assert limits(small, 0) == {}


def test_an_nst_message_carries_limits_from_its_jobs(pg_url: str, redis_url: str):
    settings = Settings(database_url=pg_url, broker_url=redis_url, time_limit_scale=0.5)
    migrate(pg_url)
    params = NSTParams(size=128, iterations=50)
    with session_scope(pg_url) as session:
        rows = [Job(kind="nst", inputs={}, params=params.model_dump(mode="json")) for _ in "ab"]
        session.add_all(rows)
        session.flush()
        ids = [row.id for row in rows]
    send_jobs(create_app(settings), pg_url, NST_STYLIZE, ids)
    (raw,) = redis.Redis.from_url(redis_url).lrange("nst", 0, -1)
    hard, soft = json.loads(raw)["headers"]["timelimit"]
    assert soft == 0.5 * nst_seconds(params, 2) and hard > soft
    with session_scope(pg_url) as session:
        assert message_seconds(list(session.query(Job).filter(Job.id.in_(ids)))) == soft / 0.5
