"""Reuse of finished results: only for the same inputs, parameters and weights."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import update

from atelier.batches import create_nst_batch, ingest_image
from atelier.db import migrate, session_scope
from atelier.models import Job, JobState
from atelier.notify import job_feed
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.weights import WEIGHTS_FILE

PARAMS = NSTParams(size=16, iterations=1)


@pytest.fixture
def images(tmp_path: Path, pg_url: str) -> tuple[Settings, list[str]]:
    settings = Settings(database_url=pg_url, data_dir=tmp_path / "data")
    migrate(pg_url)
    shas = []
    with session_scope(pg_url) as session:
        for i, color in enumerate([(200, 10, 10), (10, 10, 200)]):
            Image.new("RGB", (20, 16), color).save(tmp_path / f"{i}.png")
            shas.append(ingest_image(session, settings, tmp_path / f"{i}.png").sha256)
    return settings, shas


def _submit_and_finish(settings: Settings, shas: list[str]) -> Job:
    """One job of a batch made under `settings`, marked done with a result (its content)."""
    plan = create_nst_batch(settings, shas[:1], shas[1:], PARAMS)
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(Job, plan.job_ids[0])
        if job.state == JobState.QUEUED:
            session.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(state=JobState.SUCCEEDED, result_asset_id=1)
            )
            session.refresh(job)
        return job


def test_random_weights_results_are_not_reused_for_imagenet(
    images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    settings, shas = images
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    random = _submit_and_finish(settings.model_copy(update={"vgg_weights": "none"}), shas)
    assert random.params["weights"] == "none"  # the worker runs exactly what was fingerprinted

    imagenet = settings.model_copy(update={"vgg_weights": "imagenet"})
    first = _submit_and_finish(imagenet, shas)
    assert first.reused_from_id is None and first.params["weights"] == "imagenet"
    # Once the ImageNet file is cached here, it is named by its content.
    (tmp_path / "keras" / "models").mkdir(parents=True)
    (tmp_path / "keras" / "models" / WEIGHTS_FILE).write_bytes(b"imagenet weights")
    cached = _submit_and_finish(imagenet, shas)
    assert cached.reused_from_id is None and cached.fingerprint != first.fingerprint
    again = _submit_and_finish(settings.model_copy(update={"vgg_weights": "none"}), shas)
    assert again.reused_from_id == random.id


def test_weights_files_are_matched_by_content_not_path(images, tmp_path: Path):
    settings, shas = images
    a, b, a_copy = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "copy" / "a.h5"
    a.write_bytes(b"one set of weights")
    b.write_bytes(b"another set of weights")
    a_copy.parent.mkdir()
    a_copy.write_bytes(a.read_bytes())
    made = _submit_and_finish(settings.model_copy(update={"vgg_weights": str(a)}), shas)
    other = _submit_and_finish(settings.model_copy(update={"vgg_weights": str(b)}), shas)
    assert other.reused_from_id is None
    same = _submit_and_finish(settings.model_copy(update={"vgg_weights": str(a_copy)}), shas)
    assert same.reused_from_id == made.id and same.params["weights"] == str(a_copy)


def test_a_reused_job_is_announced_to_followers(images):
    """A reused job is `succeeded` the moment it is written; followers of the batch hear of it
    as of any other transition."""
    settings, shas = images
    settings = settings.model_copy(update={"vgg_weights": "none"})
    _submit_and_finish(settings, shas)
    with job_feed(settings.resolved_database_url) as feed:
        assert feed is not None
        plan = create_nst_batch(settings, shas[:1], shas[1:], PARAMS)
        assert plan.reused == plan.job_ids
        assert feed.wait(10) == set(plan.reused)
