"""Stranded fast-engine jobs go back to the CPU queue `fast`, not to the GPU queue `nst`."""

from __future__ import annotations

import json
from datetime import timedelta

import redis

from atelier.celery_app import FAST_STYLIZE, NST_STYLIZE
from atelier.models import JobKind, utcnow
from scheduler.broker import job_ids_in
from scheduler.reaper import requeue_stale
from tests.scheduler.jobrows import add_job


def _queued(redis_url: str, queue: str) -> list[tuple[str, list[int]]]:
    client = redis.Redis.from_url(redis_url)
    payloads = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
    return [(p["headers"]["task"], job_ids_in(p)) for p in payloads]


def test_stranded_fast_jobs_are_sent_to_the_fast_queue(redis_runtime, redis_url: str):
    settings, app = redis_runtime(max_batch=4)
    fast = [add_job(settings, JobKind.NST, params={"engine": "fast"}) for _ in range(2)]
    gatys = add_job(settings, JobKind.NST, params={"engine": "gatys"})
    older = add_job(settings, JobKind.NST)  # a row from before engines existed: Gatys
    later = utcnow() + timedelta(seconds=31)
    assert sorted(requeue_stale(settings, app, now=later)) == sorted([*fast, gatys, older])
    assert _queued(redis_url, "fast") == [(FAST_STYLIZE, fast)]
    assert sorted(_queued(redis_url, "nst")) == [(NST_STYLIZE, [gatys, older])]
    # The broker reader knows the fast task: its messages count as live, nothing is re-sent.
    assert requeue_stale(settings, app, now=later) == []
