"""The object store (SeaweedFS, a server of the test's own) killed for five seconds while a
fast-engine job and a video job (a 1 s clip) are delivered together to a worker (two pool
processes) that shares no folder with anyone: reading their inputs and storing their results
wait for the store and retry (`ATELIER_STORAGE_RETRY_SECONDS`), so both jobs finish in their
first attempt and the reaper re-sends nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from atelier.batches import (
    create_nst_batch,
    create_video_job,
    ingest_image,
    ingest_video,
    send_plan,
)
from atelier.celery_app import create_app
from atelier.db import session_scope
from atelier.schemas import NSTParams, VideoParams
from tests.faults.harness import (
    RedisServer,
    assert_clean,
    cluster,
    cut_clip,
    fault_runs,
    jobs,
    outcome,
    record,
    wait_finished,
)
from tests.support.seaweed import fresh_prefix, private_seaweed

pytestmark = pytest.mark.slow
OUTAGE = 5.0  # ten heartbeats
FAST = NSTParams(engine="fast", size=32)
VIDEO = VideoParams(filter="blur")


def test_jobs_ride_out_an_object_store_outage_in_their_first_attempt(
    tmp_path: Path,
    pg_url: str,
    fault_redis: RedisServer,
    squares: list[Path],
    test_data: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    from workers.video.probe import probe_video

    short_clip = cut_clip(test_data / "video" / "chaplin.mp4", tmp_path / "clip.mp4", 5.0, 1.0)

    frames = probe_video(short_clip).frame_count
    with private_seaweed(tmp_path / "seaweed", wait=False) as store:
        steady = {
            **store.env,
            "ATELIER_STORAGE_URL": fresh_prefix(),
            "ATELIER_LEASE_SECONDS": "30",
            "ATELIER_STORAGE_RETRY_SECONDS": "60",
        }
        for key, value in steady.items():  # the producer (this process) stores there too
            monkeypatch.setenv(key, value)
        with cluster(tmp_path, pg_url, fault_redis.url, **steady) as c:
            # Two pool processes: both jobs are delivered, and wait for the store, together.
            cpu = c.worker_spec("cpu-0", "fast,video,default", "--concurrency", "2")
            c.start_many([cpu, c.beat_spec()])  # while the store starts
            store.wait_ready(60)
            # The producer keeps its own local copies: the worker must fetch from the store.
            settings = c.settings.model_copy(update={"data_dir": tmp_path / "producer"})
            app = create_app(settings)
            for run in range(1, fault_runs() + 1):
                started = time.monotonic()
                with session_scope(c.db_url) as session:
                    content = ingest_image(session, settings, squares[run % 2]).sha256
                    style = ingest_image(session, settings, squares[-1]).sha256
                    video = ingest_video(session, settings, short_clip).sha256
                down = time.monotonic()
                store.kill()  # the inputs are in the store; now it is gone
                fast = create_nst_batch(settings, [content], [style], FAST, force=True)
                padded = VIDEO.model_copy(update={"padding": 0.1 + run / 100})
                filtered = create_video_job(settings, video, padded)
                for plan in (fast, filtered):
                    send_plan(app, settings, plan)
                time.sleep(OUTAGE)
                store.start()
                away = time.monotonic() - down
                ids = [*fast.job_ids, *filtered.job_ids]
                wait_finished(c.db_url, ids, 300)
                seconds = time.monotonic() - started
                got_fast = outcome(c.db_url, ids[:1], 0)
                got_video = outcome(c.db_url, ids[1:], frames)
                for name, got in (("fast-engine", got_fast), ("video", got_video)):
                    record(
                        f"Kill the object store for {OUTAGE:.0f} s as a {name} job is delivered",
                        run,
                        "store",
                        1,
                        got,
                        seconds,
                        store_away_s=round(away, 1),
                    )
                rows = jobs(c.db_url, ids)
                assert [r.state for r in rows] == ["succeeded"] * 2, c.logs()
                assert_clean(got_video, rows[1:], c.logs())
                assert got_fast.results == [1] and got_fast.duplicated == 0, c.logs()
                assert [row.attempts for row in rows] == [1, 1], c.logs()
                assert "object store unavailable" in c.log("cpu-0"), c.log("cpu-0")
                assert "re-sent" not in c.log("beat"), c.log("beat")
