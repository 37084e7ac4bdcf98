"""The reaper re-sends stranded jobs once, leaves live ones alone and fails exhausted ones."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis
from kombu import Connection

from atelier.celery_app import NST_STYLIZE, PING, VIDEO_FILTER, VIDEO_SEGMENT
from atelier.db import session_scope
from atelier.limits import nst_seconds
from atelier.models import Batch, Job, JobKind, JobState, utcnow
from atelier.notify import job_feed
from atelier.schemas import NSTParams
from atelier.submit import send_jobs
from scheduler.broker import job_ids_in, live_messages
from scheduler.reaper import requeue_stale
from tests.scheduler.jobrows import add_job, get_job


def _queued(redis_url: str, queue: str = "default") -> list[tuple[str, list[int]]]:
    """(task name, job ids) of each message waiting in `queue`."""
    client = redis.Redis.from_url(redis_url)
    out = []
    for raw in client.lrange(queue, 0, -1):
        payload = json.loads(raw)
        out.append((payload["headers"]["task"], job_ids_in(payload)))
    return out


def _later(seconds: float):
    return utcnow() + timedelta(seconds=seconds)


def test_a_queued_job_whose_message_was_lost_is_sent_again_once(redis_runtime, redis_url: str):
    settings, app = redis_runtime()
    lost = add_job(settings)  # committed, never sent: the producer died before sending
    fresh = add_job(settings)
    send_jobs(app, settings.resolved_database_url, PING, [fresh])

    assert requeue_stale(settings, app) == []  # within the grace period nothing is touched
    assert requeue_stale(settings, app, now=_later(31)) == [lost]
    assert sorted(ids for _, ids in _queued(redis_url)) == sorted([[fresh], [lost]])
    # Its message now waits in the queue: the next passes leave it alone.
    assert requeue_stale(settings, app, now=_later(31)) == []
    assert requeue_stale(settings, app, now=_later(120)) == []
    assert get_job(settings, lost).celery_task_id is not None


def test_every_queued_job_is_sent_again_after_redis_lost_all_messages(
    redis_runtime, redis_url: str
):
    settings, app = redis_runtime()
    ids = [add_job(settings) for _ in range(5)]
    send_jobs(app, settings.resolved_database_url, PING, ids[:3])
    send_jobs(app, settings.resolved_database_url, PING, ids[3:])
    redis.Redis.from_url(redis_url).flushdb()  # what a restart of a Redis without disk does

    assert sorted(requeue_stale(settings, app, now=_later(31))) == ids
    assert sorted(i for _, group in _queued(redis_url) for i in group) == ids


def test_jobs_go_back_under_their_own_task_in_groups(redis_runtime, redis_url: str):
    settings, app = redis_runtime(max_batch=2)
    nst = [add_job(settings, JobKind.NST) for _ in range(3)]
    video = [add_job(settings, JobKind.VIDEO) for _ in range(2)]
    assert sorted(requeue_stale(settings, app, now=_later(31))) == sorted(nst + video)
    assert sorted(_queued(redis_url, "nst")) == [(NST_STYLIZE, nst[:2]), (NST_STYLIZE, nst[2:])]
    assert sorted(_queued(redis_url, "video")) == [(VIDEO_FILTER, [v]) for v in video]


def test_a_stranded_mixed_size_grid_goes_back_one_parameter_set_per_message(
    redis_runtime, redis_url: str
):
    """A grid of two sizes (`--size 32,64`), its messages lost: each message the reaper sends
    carries one size, under the time limit of its own work, as the producer's did."""
    settings, app = redis_runtime(max_batch=8, time_limit_scale=1.0)
    with session_scope(settings.resolved_database_url) as session:
        batch = Batch(kind=JobKind.NST, params={})
        session.add(batch)
        session.flush()
        batch_id = batch.id
    sizes = {}
    for size in (32, 64, 32, 64, 32):  # interleaved, as a grid's rows are
        params = NSTParams(size=size, iterations=5).model_dump(mode="json")
        sizes[add_job(settings, JobKind.NST, batch_id=batch_id, params=params)] = size
    assert sorted(requeue_stale(settings, app, now=_later(31))) == sorted(sizes)
    client = redis.Redis.from_url(redis_url)
    messages = [json.loads(raw) for raw in client.lrange("nst", 0, -1)]
    by_size = {}
    for message in messages:
        ids = job_ids_in(message)
        (size,) = {sizes[i] for i in ids}  # one parameter set per message
        by_size[size] = sorted(ids)
        _hard, soft = message["headers"]["timelimit"]
        assert soft == nst_seconds(NSTParams(size=size, iterations=5), len(ids))
    assert by_size == {size: sorted(i for i, s in sizes.items() if s == size) for size in (32, 64)}


def test_a_running_job_whose_worker_died_is_requeued_and_sent(redis_runtime, redis_url: str):
    settings, app = redis_runtime(lease_seconds=60)
    now = utcnow()
    dead = add_job(
        settings, state=JobState.RUNNING, attempts=1, worker="w1@gone:42", heartbeat_at=now
    )
    alive = add_job(settings, state=JobState.RUNNING, attempts=1, worker="w2", heartbeat_at=now)

    assert requeue_stale(settings, app, now=now + timedelta(seconds=59)) == []
    # A minute later the first worker's heartbeat is stale; the second one renewed its lease.
    add_later = now + timedelta(seconds=61)
    with session_scope(settings.resolved_database_url) as session:
        session.get(Job, alive).heartbeat_at = add_later
    assert requeue_stale(settings, app, now=add_later) == [dead]
    job = get_job(settings, dead)
    assert job.state == JobState.QUEUED and "w1@gone:42" in job.error
    assert get_job(settings, alive).state == JobState.RUNNING
    assert _queued(redis_url) == [(PING, [dead])]


def test_a_segmented_video_whose_segments_wait_keeps_its_lease(redis_runtime, redis_url: str):
    settings, app = redis_runtime(lease_seconds=60)
    now = utcnow()
    running = {"kind": JobKind.VIDEO, "state": JobState.RUNNING, "attempts": 2, "heartbeat_at": now}
    waiting = add_job(settings, **running)
    old = add_job(settings, **running)
    app.send_task(VIDEO_SEGMENT, args=[waiting, 2, 0, 0, 12])  # this attempt's segment waits
    app.send_task(VIDEO_SEGMENT, args=[old, 1, 0, 0, 12])  # a segment of a replaced attempt
    later = now + timedelta(seconds=61)
    assert requeue_stale(settings, app, now=later) == [old]
    kept = get_job(settings, waiting)
    assert kept.state == JobState.RUNNING and kept.heartbeat_at == later
    assert get_job(settings, old).state == JobState.QUEUED


def test_a_job_out_of_attempts_fails_with_the_reason(redis_runtime, redis_url: str):
    settings, app = redis_runtime()
    now = utcnow()
    job_id = add_job(
        settings,
        state=JobState.RUNNING,
        attempts=3,
        max_attempts=3,
        worker="nst@box:7",
        heartbeat_at=now,
    )
    assert requeue_stale(settings, app, now=now + timedelta(seconds=61)) == []
    job = get_job(settings, job_id)
    assert job.state == JobState.FAILED
    assert job.error == (
        "gave up after 3 attempts: the worker running it (nst@box:7) stopped without finishing"
    )
    assert _queued(redis_url) == []


def test_every_change_the_reaper_makes_notifies(redis_runtime, redis_url: str):
    settings, app = redis_runtime(lease_seconds=60)
    now = utcnow()
    running = {"state": JobState.RUNNING, "attempts": 1, "heartbeat_at": now}
    segmented = add_job(settings, kind=JobKind.VIDEO, **running)
    app.send_task(VIDEO_SEGMENT, args=[segmented, 1, 0, 0, 12])  # its segment waits: renewed
    dead = add_job(settings, **running)  # re-queued
    exhausted = add_job(settings, **{**running, "max_attempts": 1})  # failed
    with job_feed(settings.resolved_database_url) as feed:
        assert feed is not None
        assert requeue_stale(settings, app, now=now + timedelta(seconds=61)) == [dead]
        noticed: set[int] = set()
        while noticed != {segmented, dead, exhausted} and (fresh := feed.wait(10)):
            noticed |= fresh
    assert noticed == {segmented, dead, exhausted}
    assert get_job(settings, exhausted).state == JobState.FAILED


def test_unacknowledged_messages_count_for_queued_jobs_not_for_dead_workers(
    redis_runtime, redis_url: str
):
    """A worker holding a message (a countdown retry) keeps a queued job alive; a running job
    whose lease ran out is sent again even though the dead worker's message is unacknowledged."""
    settings, app = redis_runtime()
    now = utcnow()
    waiting = add_job(settings)
    dead = add_job(settings, state=JobState.RUNNING, attempts=1, worker="w", heartbeat_at=now)
    send_jobs(app, settings.resolved_database_url, PING, [waiting])
    send_jobs(app, settings.resolved_database_url, PING, [dead])
    with Connection(redis_url) as conn:
        channel = conn.channel()
        held = [channel.basic_get("default", no_ack=False) for _ in range(2)]
        assert all(m is not None for m in held)
        live = live_messages(app, settings, delivered_within=60)
        assert live.waiting == set() and live.held == {waiting, dead}
        assert requeue_stale(settings, app, now=now + timedelta(seconds=61)) == [dead]
        channel.close()


def test_nothing_happens_while_the_broker_is_down(redis_runtime):
    settings, app = redis_runtime(broker_url="redis://127.0.0.1:1/0")
    job_id = add_job(settings)
    assert requeue_stale(settings, app, now=_later(31)) == []
    assert get_job(settings, job_id).state == JobState.QUEUED


def test_embedded_broker_messages_are_seen_in_the_queue_folder(embedded_runtime):
    settings, app = embedded_runtime()
    sent = add_job(settings)
    lost = add_job(settings)
    send_jobs(app, settings.resolved_database_url, PING, [sent])
    send_jobs(app, settings.resolved_database_url, PING, [lost])
    folder = settings.broker_folder / "queue"
    for path in folder.glob("*.msg"):
        if job_ids_in(json.loads(path.read_bytes())) == [lost]:
            path.unlink()  # the message of `lost` is gone
    assert requeue_stale(settings, app, now=_later(31)) == [lost]
    assert sorted(job_ids_in(json.loads(p.read_bytes())) for p in folder.glob("*.msg")) == [
        [sent],
        [lost],
    ]


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        {"headers": {"task": "atelier.ping"}, "body": "not base64 json"},
        {"headers": {"task": "other.task"}, "body": "W1sxXSwge30sIHt9XQ=="},
        {"headers": {"task": "atelier.ping"}, "body": '[["x"], {}, {}]'},
    ],
)
def test_messages_that_are_not_job_tasks_carry_no_job_ids(payload):
    assert job_ids_in(payload) == []


def test_job_ids_are_read_from_a_celery_message():
    payload = {
        "headers": {"task": PING},
        "body": "W1tbMSwgMl1dLCB7fSwge31d",  # base64 of [[[1, 2]], {}, {}]
        "properties": {"body_encoding": "base64"},
    }
    assert job_ids_in(payload) == [1, 2]
