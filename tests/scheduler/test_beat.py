"""One beat at a time, and the beat's reaper really brings stranded jobs back through a worker."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from atelier.celery_app import create_app
from atelier.db import migrate
from atelier.models import JobState
from atelier.settings import Settings
from atelier.submit import wait_for_jobs
from scheduler.held import held_scheduler
from scheduler.locks import BEAT_KEY, BeatLock, BeatLockHeld, exclusive
from scheduler.schedule import REAP
from tests.scheduler.jobrows import add_job
from tests.support.procs import ATELIER, REPO, atelier_env, atelier_process
from tests.support.servers import private_redis


def _wait_until(check, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_redis_beat_lock_is_single_renewed_and_survives_an_empty_redis(redis_url: str):
    settings = Settings(broker_url=redis_url)
    client = redis.Redis.from_url(redis_url)
    with BeatLock(settings, ttl=0.6) as first:
        with pytest.raises(BeatLockHeld, match=first.token), BeatLock(settings):
            pass
        time.sleep(1.0)  # longer than the TTL: only renewal keeps the key
        assert client.get(BEAT_KEY).decode() == first.token
        client.flushdb()  # Redis restarted without its data
        assert _wait_until(lambda: client.get(BEAT_KEY) == first.token.encode())
        assert not first.lost.is_set()
    assert client.get(BEAT_KEY) is None  # released on exit
    with BeatLock(settings):
        pass


def test_a_dead_beats_lock_is_taken_over_within_a_heartbeat(redis_url: str):
    settings = Settings(broker_url=redis_url, heartbeat_seconds=0.5)
    assert BeatLock(settings).ttl == 0.5  # the key lives one heartbeat unless renewed
    client = redis.Redis.from_url(redis_url)
    client.set(BEAT_KEY, "killed-beat:1:0", px=500)  # what a beat killed just now leaves
    with BeatLock(settings, wait=settings.heartbeat_seconds * 4 / 3) as replacement:
        assert client.get(BEAT_KEY).decode() == replacement.token
        # A live beat's lock is renewed: one waiting as long still gives up.
        with pytest.raises(BeatLockHeld, match=replacement.token):
            BeatLock(settings, wait=settings.heartbeat_seconds * 4 / 3).__enter__()


def test_a_beat_whose_lock_was_taken_stops(redis_url: str):
    settings = Settings(broker_url=redis_url)
    stopped = []
    with BeatLock(settings, ttl=0.6) as lock:
        lock.on_lost = lambda: stopped.append(True)
        redis.Redis.from_url(redis_url).set(BEAT_KEY, "someone-else")
        assert _wait_until(lock.lost.is_set)
    assert stopped == [True]


def test_a_beat_that_cannot_renew_its_lock_sends_nothing_until_it_can(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
):
    """The lock's Redis goes away while the broker stays: once the key's TTL has run out the
    beat cannot know another one has not taken over, so it sends nothing, and it goes on, its
    waiting entries first, when its renewal succeeds again."""
    broker = redis.Redis.from_url(redis_url)
    app = create_app(Settings(broker_url=redis_url))
    app.conf.beat_schedule = {"reap": {"task": REAP, "schedule": 0.05, "options": {"queue": "q"}}}

    def sends_within(scheduler, seconds: float) -> bool:
        before = broker.llen("q")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and broker.llen("q") == before:
            time.sleep(max(0.0, min(scheduler.tick(), 0.05)))
        return broker.llen("q") > before

    with private_redis(tmp_path / "redis") as lock_redis:
        lock = BeatLock(Settings(broker_url=lock_redis.url), ttl=0.6).__enter__()
        scheduler = held_scheduler(lock.holds)(app=app, schedule_filename=str(tmp_path / "s"))
        try:
            assert lock.holds() and sends_within(scheduler, 10)
            lock_redis.stop()
            assert _wait_until(lambda: not lock.holds())
            assert "cannot renew the beat lock" in caplog.text
            assert not sends_within(scheduler, 1.0)
            lock_redis.start()  # empty: the beat takes its key again
            assert _wait_until(lock.holds)
            assert sends_within(scheduler, 10)
            assert not lock.lost.is_set() and "the schedule goes on" in caplog.text
        finally:
            scheduler.close()
            lock.__exit__(None, None, None)


def test_embedded_beat_lock_is_a_file_lock(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, broker_url=None)
    with (
        BeatLock(settings) as first,
        pytest.raises(BeatLockHeld, match=first.token),
        BeatLock(settings),
    ):
        pass
    with BeatLock(settings):
        pass


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_exclusive_lets_one_holder_in(backend: str, tmp_path: Path, request: pytest.FixtureRequest):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    settings = Settings(database_url=url, data_dir=tmp_path)
    with (
        exclusive(settings, "inbox:a") as first,
        exclusive(settings, "inbox:a") as second,
        exclusive(settings, "inbox:b") as other,
    ):
        assert (first, second, other) == (True, False, True)
    with exclusive(settings, "inbox:a") as again:
        assert again


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["embedded", "redis"])
def test_a_second_beat_says_so_and_exits(broker: str, tmp_path: Path, request):
    env = {"ATELIER_DATA_DIR": str(tmp_path / "data"), "ATELIER_HEARTBEAT_SECONDS": "1"}
    if broker == "redis":
        env["ATELIER_BROKER_URL"] = request.getfixturevalue("redis_url")
        env["ATELIER_DATABASE_URL"] = request.getfixturevalue("pg_url")
    with atelier_process(["beat"], env, tmp_path / "beat.log", ready="beat: reaper") as first:
        second = subprocess.run(
            [*ATELIER, "beat"],
            env=atelier_env(env),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert second.returncode == 1
        assert "another atelier beat is running" in second.stderr
        # Killed (no chance to free its lock), the first beat is replaced at once: the
        # replacement waits out the lock's last heartbeat instead of exiting.
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        with atelier_process(["beat"], env, tmp_path / "replacement.log", ready="beat: reaper"):
            pass
    assert any(p.name.startswith("celerybeat-schedule") for p in (tmp_path / "data").iterdir())


@pytest.mark.slow
def test_the_beat_reaper_brings_stranded_jobs_to_a_worker(
    tmp_path: Path, pg_url: str, redis_url: str
):
    env = {
        "ATELIER_DATABASE_URL": pg_url,
        "ATELIER_BROKER_URL": redis_url,
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
        "ATELIER_REAPER_INTERVAL": "1",
        "ATELIER_REQUEUE_GRACE_SECONDS": "0",
    }
    settings = Settings(database_url=pg_url)
    migrate(pg_url)
    stranded = [add_job(settings) for _ in range(3)]  # rows committed, messages never sent
    worker = ["worker", "--queues", "default", "--hostname", "reaped@%h"]
    with (
        atelier_process(worker, env, tmp_path / "worker.log", ready=" ready."),
        atelier_process(["beat"], env, tmp_path / "beat.log", ready="beat: reaper"),
    ):
        jobs = wait_for_jobs(pg_url, stranded, timeout=60)
    assert {job.state for job in jobs.values()} == {JobState.SUCCEEDED}, (
        tmp_path / "worker.log"
    ).read_text()[-3000:]
    assert all(job.attempts == 1 for job in jobs.values())
