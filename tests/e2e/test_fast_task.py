"""The fast engine on a real worker (Redis, PostgreSQL): results, metadata, reuse, the sheet;
and `atelier video` with the painting filter as a board panel."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from atelier.batches import create_nst_batch, send_plan
from atelier.celery_app import FAST_STYLIZE, create_app
from atelier.db import session_scope
from atelier.export import export_batch
from atelier.fast_models import model_digests
from atelier.models import Job, JobState
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.submit import wait_for_jobs
from tests.e2e.conftest import TEST_DATA, Deployment, ingest
from tests.video.media import ffmpeg

pytestmark = pytest.mark.slow


def test_fast_grid_runs_records_its_models_and_is_reused(
    settings: Settings, tiny_images: dict[str, Path], tmp_path: Path
):
    contents = [ingest(settings, tiny_images[n]) for n in ("tubingen", "golden_gate")]
    styles = [ingest(settings, tiny_images[n]) for n in ("starry", "wave")]
    params = NSTParams(engine="fast", size=48)
    plan = create_nst_batch(settings, contents, styles, params, force=True)
    assert plan.task_name == FAST_STYLIZE and len(plan.job_ids) == 4
    send_plan(create_app(settings), settings, plan)
    jobs = wait_for_jobs(settings.resolved_database_url, plan.job_ids, timeout=120)
    for job in jobs.values():
        assert job.state == JobState.SUCCEEDED, job.error
        assert job.meta["engine"] == "fast" and job.meta["models"] == model_digests()
        assert (
            job.meta["random_weights"] is False and max(job.meta["width"], job.meta["height"]) == 48
        )

    exported = export_batch(settings, plan.batch_id, tmp_path / "out")
    assert all(item.image is not None and item.plot is None for item in exported)
    with Image.open(tmp_path / "out" / "sheet.png") as sheet:
        assert sheet.width > 160 * 2

    again = create_nst_batch(settings, contents, styles, params)
    assert sorted(again.reused) == sorted(again.job_ids) and not again.messages
    unread = params.model_copy(update={"iterations": 7, "seed": 3, "init": "noise"})
    assert not create_nst_batch(settings, contents, styles, unread).messages  # unread by fast
    weaker = create_nst_batch(
        settings, contents[:1], styles[:1], params.model_copy(update={"strength": 0.5})
    )
    assert weaker.reused == []
    gatys = create_nst_batch(
        settings, contents[:1], styles[:1], params.model_copy(update={"engine": "gatys"})
    )
    assert gatys.reused == []  # another engine is other work


def test_a_painting_panel_with_a_style_and_the_old_stylize_name(
    deployment: Deployment, tmp_path: Path
):
    clip = tmp_path / "clip.mp4"
    ffmpeg(
        *("-ss", "3", "-i", str(TEST_DATA / "video" / "chaplin.mp4"), "-t", "0.4"),
        *("-vf", "scale=320:180", "-an", "-c:v", "libx264", "-preset", "veryfast", str(clip)),
    )
    out = tmp_path / "board.mp4"
    style = TEST_DATA / "style" / "starry_night.jpg"
    done = deployment.atelier(
        "video", str(clip), "--out", str(out), "--layout", "2x2",
        "--filters", "stylize,painting,blur", "--style", str(style),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert "now called `watercolor`" in said
    job_id = int(re.search(r"job (\d+):", done.stderr).group(1))
    with session_scope(deployment.db_url) as session:
        job = session.get(Job, job_id)
    assert job.state == JobState.SUCCEEDED
    assert job.params["filters"] == ["watercolor", "painting", "blur"]
    assert set(job.inputs) == {"video", "style"}
    assert out.stat().st_size > 0
