"""The NST task on a real worker: a bad input fails alone, a redelivered finished job is a no-op."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from atelier.assets import record_asset
from atelier.batches import create_nst_batch, send_plan
from atelier.celery_app import NST_STYLIZE, create_app
from atelier.db import session_scope
from atelier.models import Job, JobState, LossRecord
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.storage import Storage
from atelier.submit import send_jobs, wait_for_jobs
from tests.e2e.conftest import ingest

pytestmark = pytest.mark.slow


def test_corrupt_stored_input_fails_alone_and_redelivery_is_a_no_op(
    settings: Settings, tiny_images: dict[str, Path]
):
    good = ingest(settings, tiny_images["tubingen"])
    style = ingest(settings, tiny_images["starry"])
    # Bytes that passed no validation (as if storage were damaged): the worker must say so.
    broken = Storage(settings.resolved_storage_dir).put_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    with session_scope(settings.resolved_database_url) as session:
        record_asset(session, broken, kind="image", media_type="image/jpeg", label="broken.jpg")
    params = NSTParams(size=32, iterations=4)
    plan = create_nst_batch(settings, [good, broken.sha256], [style], params, force=True)
    assert len(plan.messages) == 1  # both jobs travel in one message, optimized together
    app = create_app(settings)
    send_plan(app, settings, plan)
    jobs = wait_for_jobs(settings.resolved_database_url, plan.job_ids, timeout=240)
    ok, bad = (jobs[i] for i in plan.job_ids)
    assert ok.state == JobState.SUCCEEDED, ok.error
    assert bad.state == JobState.FAILED and "image" in bad.error.lower()

    db = settings.resolved_database_url
    duplicate = send_jobs(app, db, NST_STYLIZE, [ok.id])  # a redelivery of a finished job
    assert app.AsyncResult(duplicate).get(timeout=120) == {"claimed": []}
    with session_scope(db) as session:
        row = session.get(Job, ok.id)
        losses = session.scalar(select(func.count()).where(LossRecord.job_id == ok.id))
    assert (row.state, row.attempts, row.result_asset_id) == (
        JobState.SUCCEEDED,
        1,
        ok.result_asset_id,
    )
    assert losses == 4


def test_a_panorama_and_an_elongated_style_fail_alone(
    settings: Settings, tiny_images: dict[str, Path], tmp_path: Path
):
    """Images fine at the door but unusable at this size fail their own jobs; the job of the
    same message that has neither succeeds."""
    from PIL import Image

    def stretched(name: str, size: tuple[int, int]) -> Path:
        path = tmp_path / f"{name}.png"
        with Image.open(tiny_images[name]) as image:
            image.convert("RGB").resize(size).save(path)
        return path

    panorama = ingest(settings, stretched("golden_gate", (400, 12)))  # 32x1 at size 32
    ribbon = ingest(settings, stretched("wave", (600, 10)))  # too elongated to enlarge
    good, style = (
        ingest(settings, tiny_images["tubingen"]),
        ingest(settings, tiny_images["starry"]),
    )
    params = NSTParams(size=32, iterations=3, seed=11)
    plan = create_nst_batch(settings, [good, panorama], [style, ribbon], params, force=True)
    assert len(plan.messages) == 1
    send_plan(create_app(settings), settings, plan)
    jobs = wait_for_jobs(settings.resolved_database_url, plan.job_ids, timeout=240)
    by_cell = {(j.inputs["content"], j.inputs["styles"][0]): j for j in jobs.values()}
    assert by_cell[good, style].state == JobState.SUCCEEDED, by_cell[good, style].error
    assert by_cell[good, style].attempts == 1
    assert "too elongated" in by_cell[good, ribbon].error
    assert "shortest side" in by_cell[panorama, style].error
    assert by_cell[panorama, ribbon].state == JobState.FAILED
    assert all(by_cell[c].state == JobState.FAILED for c in by_cell if c != (good, style))


def test_identical_batches_posted_at_once_compute_each_cell_once(
    settings: Settings, tiny_images: dict[str, Path]
):
    """Two producers post the same 2x2 grid at the same moment; the worker runs two messages
    at once. Each cell is computed by one job; its twin gets the same result."""
    import threading

    contents = [ingest(settings, tiny_images[n]) for n in ("tubingen", "golden_gate")]
    styles = [ingest(settings, tiny_images[n]) for n in ("starry", "wave")]
    params = NSTParams(size=32, iterations=3, seed=23)
    app = create_app(settings)
    start = threading.Barrier(2)
    plans = []

    def post() -> None:
        start.wait()
        plan = create_nst_batch(settings, contents, styles, params)
        send_plan(app, settings, plan)
        plans.append(plan)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ids = [i for plan in plans for i in plan.job_ids]
    assert len(ids) == 8 and not any(plan.reused for plan in plans)
    jobs = wait_for_jobs(settings.resolved_database_url, ids, timeout=240)
    assert all(job.state == JobState.SUCCEEDED for job in jobs.values()), [
        (job.id, job.state, job.attempts, job.error) for job in jobs.values()
    ]
    computed = [job for job in jobs.values() if job.attempts > 0]
    joined = [job for job in jobs.values() if job.attempts == 0]
    assert len(computed) == 4 and len(joined) == 4
    by_fingerprint = {job.fingerprint: job for job in computed}
    for job in joined:
        twin = by_fingerprint[job.fingerprint]
        assert (job.reused_from_id, job.result_asset_id) == (twin.id, twin.result_asset_id)
    with session_scope(settings.resolved_database_url) as session:
        rows = session.scalars(select(LossRecord.job_id).where(LossRecord.job_id.in_(ids))).all()
    assert sorted(set(rows)) == sorted(job.id for job in computed)
