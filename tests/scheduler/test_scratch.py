"""Scratch is cleaned always: what killed processes left in storage's `tmp/` goes when the API
or a worker starts and on the scheduler's every pass, with retention off (the default)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.http.app import create_app
from atelier.celery_app import create_app as create_celery
from atelier.db import migrate
from atelier.scratch import sweep
from atelier.settings import Settings, get_settings
from atelier.storage import Storage
from scheduler.schedule import SWEEP_SCRATCH, beat_schedule
from workers.embedded import embedded_worker

GRACE = 3600.0


def _leftovers(tmp: Path) -> tuple[Path, Path, Path]:
    """An old upload's scratch folder, an old loose file, and a folder still being written."""
    tmp.mkdir(parents=True, exist_ok=True)
    upload = tmp / "upload-abc"
    (upload / "tmp").mkdir(parents=True)
    (upload / "tmp" / "put-xyz").write_bytes(b"x" * 1000)
    loose = tmp / "segments-7-1.partial.mp4"
    loose.write_bytes(b"y")
    busy = tmp / "video-def"
    busy.mkdir()
    (busy / "frames.partial.mp4").write_bytes(b"z")
    old = time.time() - 2 * GRACE
    for path in (upload / "tmp" / "put-xyz", upload / "tmp", upload, loose, busy):
        os.utime(path, (old, old))  # `busy` holds a file written just now
    return upload, loose, busy


def test_entries_untouched_for_the_grace_period_go(tmp_path: Path):
    upload, loose, busy = _leftovers(tmp_path / "tmp")
    assert sweep(tmp_path / "tmp", GRACE) == 2
    assert not upload.exists() and not loose.exists() and busy.exists()
    assert sweep(tmp_path / "missing", GRACE) == 0


def test_the_schedule_sweeps_with_retention_off():
    settings = Settings(retention_days=0, scratch_interval=600)
    schedule = beat_schedule(settings)
    assert schedule["scratch"]["task"] == SWEEP_SCRATCH
    assert schedule["scratch"]["schedule"] == 600 and "retention" not in schedule


def test_the_api_sweeps_as_it_starts(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data", scratch_grace_seconds=GRACE)
    migrate(settings.resolved_database_url)
    upload, loose, busy = _leftovers(Storage(settings.resolved_storage_dir).tmp)
    app = create_app(settings)
    assert upload.exists()  # building the app is not starting it
    with TestClient(app) as client:
        assert client.get("/healthz").status_code in (200, 503)
    assert not upload.exists() and not loose.exists() and busy.exists()


def test_a_worker_sweeps_as_it_starts(atelier_env: dict[str, str], monkeypatch):
    monkeypatch.setenv("ATELIER_SCRATCH_GRACE_SECONDS", str(GRACE))
    get_settings.cache_clear()
    settings = get_settings()
    upload, loose, busy = _leftovers(Storage(settings.resolved_storage_dir).tmp)
    with embedded_worker(create_celery(settings), ("default",)):
        pass  # the same WorkController `atelier worker` runs, started in this process
    assert not upload.exists() and not loose.exists() and busy.exists()
