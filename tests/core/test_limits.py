"""Time limits follow the size of the work, and messages carry them to Celery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from atelier.batches import create_video_job, ingest_video, send_plan
from atelier.celery_app import NST_STYLIZE, create_app
from atelier.db import migrate, session_scope
from atelier.limits import (
    COMPILE_SECONDS,
    START_SECONDS,
    VIDEO_FPS_BOUND,
    limits,
    megapixel_steps,
    message_seconds,
    nst_seconds,
    step_cost,
    video_seconds,
)
from atelier.models import Job
from atelier.schemas import MAX_BLEND_STYLES, VGG19_CONV_LAYERS, NSTParams, VideoParams
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


def _work(params: NSTParams, **given: float) -> float:
    return nst_seconds(params, 1, **given) - START_SECONDS


def test_the_nst_bound_counts_layers_scales_tiles_and_styles():
    shallow = NSTParams(size=512, style_layers=("block1_conv1",), content_layer="block1_conv2")
    deep = shallow.model_copy(
        update={"style_layers": tuple(sorted(VGG19_CONV_LAYERS)), "content_layer": "block5_conv4"}
    )
    assert _work(deep) > 10 * _work(shallow)  # VGG19 run to its end, 16 Gram matrices
    assert step_cost(NSTParams()) == 1.0  # the per-step figure is for the default layers
    # Coarse to fine: 300 steps, 75 at a quarter and 75 at half the side, and a compile each.
    one, three = NSTParams(size=512), NSTParams(size=512, scales=3)
    assert megapixel_steps(three) == pytest.approx(512 * 512 / 1e6 * (150 + 75 / 4 + 75 / 16))
    tiny = NSTParams(size=16, iterations=1)
    assert _work(tiny.model_copy(update={"scales": 3})) - _work(tiny) == 2 * COMPILE_SECONDS
    # An image too large for one pass is computed in overlapping tiles.
    big = NSTParams(size=2048)
    assert _work(big, memory_mb=256) > 1.5 * _work(big, memory_mb=1e6)
    # Each style of a blend is one more pass to compute its targets.
    assert _work(one, styles=MAX_BLEND_STYLES) > _work(one, styles=1)
    # An L-BFGS step may evaluate the loss more than once (its line search); Adam's once.
    adam, lbfgs = (one.model_copy(update={"optimizer": name}) for name in ("adam", "lbfgs"))
    assert _work(lbfgs) > 1.5 * _work(adam)


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
        rows = list(session.query(Job).filter(Job.id.in_(ids)))
        assert message_seconds(session, rows) == soft / 0.5


def test_a_video_message_carries_limits_from_its_header(
    pg_url: str, redis_url: str, tmp_path: Path, test_data: Path
):
    """The producer reads the video's header when it stores it; the message of a whole video
    is limited by that size and duration (at VIDEO_FPS_BOUND), as a segment would be."""
    settings = Settings(
        database_url=pg_url, broker_url=redis_url, data_dir=tmp_path, time_limit_scale=1.0
    )
    migrate(pg_url)
    params = VideoParams(layout="2x2", segment_seconds=0)
    with session_scope(pg_url) as session:
        video = ingest_video(session, settings, test_data / "video" / "chaplin.mp4")
        size, duration = (video.width, video.height), video.duration
    assert size == (640, 360) and duration == pytest.approx(9.64, abs=0.05), (size, duration)
    send_plan(create_app(settings), settings, create_video_job(settings, video.sha256, params))
    (raw,) = redis.Redis.from_url(redis_url).lrange("video", 0, -1)
    hard, soft = json.loads(raw)["headers"]["timelimit"]
    frames = round(duration * VIDEO_FPS_BOUND) + 1
    assert soft == video_seconds(frames, 640, 360, 4) and hard > soft


def test_jobs_of_several_parameter_sets_are_bounded_by_the_sum_of_each_sets(pg_url: str):
    """The worker runs the sets of one message one after the other; `rows[0]` alone would
    bound the larger set by the smaller one's work."""
    migrate(pg_url)
    small, large = NSTParams(size=32, iterations=5), NSTParams(size=512, iterations=5)
    with session_scope(pg_url) as session:
        rows = [
            Job(kind="nst", inputs={}, params=p.model_dump(mode="json"))
            for p in (small, large, small)
        ]
        session.add_all(rows)
        session.flush()
        bound = message_seconds(session, rows)
    assert bound == nst_seconds(small, 2) + nst_seconds(large, 1)
