"""Exported file names: unique in one output folder, and the same on every export."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from sqlalchemy import update

from atelier.batches import create_nst_batch, ingest_image
from atelier.db import migrate, session_scope
from atelier.export import export_batch
from atelier.models import Job, JobState
from atelier.schemas import NSTParams
from atelier.settings import Settings


def _png(path: Path, color: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), color).save(path)
    return path


def test_two_contents_of_the_same_name_get_two_files(tmp_path: Path, sqlite_url: str):
    settings = Settings(database_url=sqlite_url, data_dir=tmp_path / "data")
    migrate(sqlite_url)
    paths = [
        _png(tmp_path / "trip1" / "a.png", (200, 0, 0)),
        _png(tmp_path / "trip2" / "a.png", (0, 200, 0)),
        _png(tmp_path / "s.png", (0, 0, 200)),
    ]
    with session_scope(sqlite_url) as session:
        first, second, style = (ingest_image(session, settings, p) for p in paths)
        shas = [first.sha256, second.sha256, style.sha256]
        # Each job's "result" is its own content image, so the files can be told apart.
        results = {first.sha256: first.id, second.sha256: second.id}
    plan = create_nst_batch(settings, shas[:2], shas[2:], NSTParams(size=16, iterations=1))
    with session_scope(sqlite_url) as session:
        for job in session.query(Job).filter(Job.id.in_(plan.job_ids)):
            session.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(state=JobState.SUCCEEDED, result_asset_id=results[job.inputs["content"]])
            )

    exported = export_batch(settings, plan.batch_id, tmp_path / "out")
    names = [item.image.name for item in exported]
    assert names == [f"a-{shas[0][:8]}__s.png", f"a-{shas[1][:8]}__s.png"]
    for item, path in zip(exported, paths[:2], strict=True):
        assert item.image.read_bytes() == path.read_bytes()
    again = export_batch(settings, plan.batch_id, tmp_path / "out")
    assert [item.image.name for item in again] == names
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png") if ".loss" not in p.name) == [
        *names,
        "sheet.png",
    ]
