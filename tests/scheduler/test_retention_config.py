"""Retention as the beat configures it, and never under a job being written.

The beat's retention age and the styles of its inboxes travel in the retention message, so a
worker whose environment says nothing of them (no ATELIER_RETENTION_DAYS, no ATELIER_INBOXES)
removes what the beat's configuration says has expired, and keeps the inbox styles. Retention
locks the assets it may expire before it reads which ones jobs need, and producers lock the
assets a job names while they write it, so a job written while retention runs keeps its files.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from atelier.assets import record_asset
from atelier.batches import write_nst_batch
from atelier.db import migrate, session_scope
from atelier.models import Asset, utcnow
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.storage import Storage
from scheduler.retention import purge_expired
from tests.faults.harness import waiting_on_locks
from tests.support.procs import atelier_process
from tests.support.services import deployment_env

DAY = timedelta(days=1)


def _old_asset(settings: Settings, content: bytes, age: timedelta = 30 * DAY) -> str:
    stored = Storage(settings.resolved_storage_dir).put_bytes(content)
    with session_scope(settings.resolved_database_url) as session:
        asset = record_asset(session, stored, kind="image", media_type="image/png")
        asset.created_at = utcnow() - age
        return stored.sha256


def _deleted(settings: Settings) -> dict[str, bool]:
    with session_scope(settings.resolved_database_url) as session:
        rows = session.execute(select(Asset.sha256, Asset.deleted_at)).all()
    return {sha: deleted is not None for sha, deleted in rows}


def test_a_job_written_while_retention_runs_keeps_its_files(pg_url: str, tmp_path: Path):
    settings = Settings(_env_file=None, database_url=pg_url, data_dir=tmp_path / "data")
    migrate(pg_url)
    content, style = _old_asset(settings, b"old content"), _old_asset(settings, b"old style")
    ran: list[object] = []
    retention = threading.Thread(
        target=lambda: ran.append(purge_expired(settings, older_than=DAY)), daemon=True
    )
    with session_scope(pg_url) as session:  # the producer's transaction, still open
        write_nst_batch(session, settings, [content], [style], NSTParams(size=32), force=True)
        retention.start()
        deadline = time.monotonic() + 30
        while retention.is_alive() and not waiting_on_locks(pg_url):
            assert time.monotonic() < deadline, "retention neither finished nor waited"
            time.sleep(0.05)
    retention.join(30)
    assert ran and not retention.is_alive()
    assert _deleted(settings) == {content: False, style: False}
    storage = Storage(settings.resolved_storage_dir)
    assert storage.exists(content) and storage.exists(style)


@pytest.mark.slow
def test_retention_and_inboxes_run_as_the_beat_is_configured(tmp_path: Path):
    """A real beat with ATELIER_RETENTION_DAYS and ATELIER_INBOXES, a real worker with neither."""
    with deployment_env(tmp_path) as common:
        _beat_configures_retention(tmp_path, common)


def _beat_configures_retention(tmp_path: Path, common: dict[str, str]) -> None:
    db_url = common["ATELIER_DATABASE_URL"]
    settings = Settings(_env_file=None, database_url=db_url, data_dir=tmp_path / "data")
    migrate(db_url)
    expired, inbox_style = _old_asset(settings, b"nobody needs me"), _old_asset(settings, b"style")
    (tmp_path / "scans").mkdir()
    inbox = {"scans": {"folder": str(tmp_path / "scans"), "styles": [inbox_style]}}
    beat_env = {
        **common,
        "ATELIER_RETENTION_DAYS": "7",
        "ATELIER_RETENTION_INTERVAL": "1",
        "ATELIER_INBOXES": json.dumps(inbox),
    }
    worker = ["worker", "--queues", "default", "--hostname", "plain@%h"]
    with (
        atelier_process(worker, common, tmp_path / "worker.log", ready=" ready."),
        atelier_process(["beat"], beat_env, tmp_path / "beat.log", ready="beat: reaper"),
    ):
        deadline = time.monotonic() + 60
        while not _deleted(settings)[expired]:
            log = (tmp_path / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"nothing expired:\n{log}"
            time.sleep(0.2)
    assert _deleted(settings) == {expired: True, inbox_style: False}
    storage = Storage(settings.resolved_storage_dir)
    assert not storage.exists(expired) and storage.exists(inbox_style)
