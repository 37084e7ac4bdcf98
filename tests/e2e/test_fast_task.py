"""The fast engine on a real worker (Redis, PostgreSQL): results, metadata, reuse, the sheet."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from atelier.batches import create_nst_batch, ingest_image, send_plan
from atelier.celery_app import FAST_STYLIZE, create_app
from atelier.db import migrate, session_scope
from atelier.export import export_batch
from atelier.fast_models import model_digests
from atelier.models import JobState
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.submit import wait_for_jobs
from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def settings(deployment: Deployment) -> Settings:
    s = Settings(
        database_url=deployment.db_url,
        broker_url=deployment.env["ATELIER_BROKER_URL"],
        data_dir=Path(deployment.env["ATELIER_DATA_DIR"]),
    )
    migrate(s.resolved_database_url)
    return s


def _ingest(settings: Settings, path: Path) -> str:
    with session_scope(settings.resolved_database_url) as session:
        return ingest_image(session, settings, path).sha256


def test_fast_grid_runs_records_its_models_and_is_reused(
    settings: Settings, tiny_images: dict[str, Path], tmp_path: Path
):
    contents = [_ingest(settings, tiny_images[n]) for n in ("tubingen", "golden_gate")]
    styles = [_ingest(settings, tiny_images[n]) for n in ("starry", "wave")]
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
    gatys = create_nst_batch(
        settings, contents[:1], styles[:1], params.model_copy(update={"engine": "gatys"})
    )
    assert gatys.reused == []  # another engine is other work
