"""PostgreSQL stopped for five seconds under a running NST job, while a video job's message is
delivered to an idle worker. Heartbeats, progress and state writes wait for the database and
retry, so both jobs finish in their first attempt, with no help from the reaper: the running job
goes on where it was, and the video message delivered during the outage is not lost.

The database is a server of the test's own (`tests/support/private_postgres.py`), stopped with
`pg_ctl stop -m immediate`; the lease (30 s) is longer than the outage, as the deployment's
(120 s) is longer than a restart or a failover."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from atelier.assets import record_asset
from atelier.batches import create_video_job
from atelier.celery_app import VIDEO_FILTER, create_app
from atelier.db import get_engine, session_scope
from atelier.schemas import NSTParams, VideoParams
from atelier.storage import Storage
from tests.faults.harness import (
    RedisServer,
    assert_clean,
    cluster,
    fault_runs,
    jobs,
    outcome,
    record,
    submit_nst,
    wait_finished,
    wait_running,
)
from tests.support.private_postgres import PrivatePostgres, postgres_bin, private_postgres

pytestmark = pytest.mark.slow
NST = NSTParams(size=32, iterations=40, seed=13)
VIDEO = VideoParams(filter="blur")
OUTAGE = 5.0  # ten heartbeats
STEADY = {"ATELIER_LEASE_SECONDS": "30", "ATELIER_DB_RETRY_SECONDS": "60"}


@pytest.fixture
def own_postgres() -> Iterator[PrivatePostgres]:
    if postgres_bin() is None:
        pytest.fail("PostgreSQL server binaries are not installed under /usr/lib/postgresql")
    with private_postgres() as server:
        yield server


def test_jobs_ride_out_a_short_database_outage_in_their_first_attempt(
    tmp_path: Path,
    own_postgres: PrivatePostgres,
    fault_redis: RedisServer,
    squares: list[Path],
    clip: Path,
):
    from workers.video.probe import probe_video

    frames = probe_video(clip).frame_count
    db_url = own_postgres.create_database(f"atelier_{uuid.uuid4().hex[:8]}")
    with cluster(tmp_path, db_url, fault_redis.url, **STEADY) as c:
        c.start_many(
            [
                c.worker_spec("nst-0", "nst"),
                c.worker_spec("video-0", "video"),
                c.worker_spec("reaper", "default"),
                c.beat_spec(),
            ]
        )
        settings = c.settings
        app = create_app(settings)
        stored = Storage(settings.resolved_storage_dir).put_file(clip)
        with session_scope(db_url) as session:
            record_asset(session, stored, kind="video", media_type="video/mp4")
        for run in range(1, fault_runs() + 1):
            started = time.monotonic()
            nst = submit_nst(c, squares[:1], squares[-1:], NST)[0]
            wait_running(db_url, nst, 0.05, 0.5, 300)
            # Its row is written now, its message sent once the database is away.
            video = create_video_job(settings, stored.sha256, VIDEO, source="faults").job_ids[0]
            down = time.monotonic()
            own_postgres.stop()
            get_engine(db_url).dispose()  # this process's connections died with the server
            # Delivered to the idle video worker while the database is away.
            app.send_task(VIDEO_FILTER, args=[[video]])
            time.sleep(OUTAGE)
            own_postgres.start()
            away = time.monotonic() - down
            wait_finished(db_url, [nst, video], 300)
            seconds = time.monotonic() - started
            got_nst = outcome(db_url, [nst], NST.iterations)
            got_video = outcome(db_url, [video], frames)
            for name, got in (("NST", got_nst), ("video", got_video)):
                record(
                    f"Stop PostgreSQL for {OUTAGE:.0f} s under a running {name} job"
                    if name == "NST"
                    else f"Stop PostgreSQL for {OUTAGE:.0f} s as a video message is delivered",
                    run,
                    "outage",
                    1,
                    got,
                    seconds,
                    db_away_s=round(away, 1),
                )
            rows = jobs(db_url, [nst, video])
            assert_clean(got_nst, rows[:1], c.logs())
            assert_clean(got_video, rows[1:], c.logs())
            assert [row.attempts for row in rows] == [1, 1], c.logs()
            assert "re-sent" not in c.log("reaper"), c.log("reaper")
