"""Retention removes old files nobody needs and marks them; files jobs still use stay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from atelier.assets import record_asset
from atelier.db import session_scope
from atelier.models import Asset, JobKind, JobState, utcnow
from atelier.settings import Settings
from atelier.storage import Storage
from scheduler.inboxes import Inbox
from scheduler.retention import purge_expired
from scheduler.schedule import REAP, RETENTION, SCAN_INBOXES, SWEEP_SCRATCH, beat_schedule
from tests.scheduler.jobrows import add_job

DAY = timedelta(days=1)


def _asset(settings: Settings, content: bytes, kind: str, age: timedelta) -> tuple[str, int]:
    stored = Storage(settings.resolved_storage_dir).put_bytes(content)
    with session_scope(settings.resolved_database_url) as session:
        asset = record_asset(session, stored, kind=kind, media_type="image/png")
        asset.created_at = utcnow() - age
        session.flush()
        return stored.sha256, asset.id


def _deleted(settings: Settings) -> dict[str, bool]:
    with session_scope(settings.resolved_database_url) as session:
        rows = session.execute(select(Asset.sha256, Asset.deleted_at)).all()
    return {sha: deleted is not None for sha, deleted in rows}


def test_old_files_go_and_files_in_use_stay(embedded_runtime):
    settings, _ = embedded_runtime(retention_days=7)
    storage = Storage(settings.resolved_storage_dir)
    old_result, _ = _asset(settings, b"old result", "result", 30 * DAY)
    old_preview, _ = _asset(settings, b"old preview", "preview", 30 * DAY)
    queued_input, _ = _asset(settings, b"input of a queued job", "image", 30 * DAY)
    running_style, _ = _asset(settings, b"style of a running job", "image", 30 * DAY)
    recent_input, _ = _asset(settings, b"input of yesterday's job", "image", 30 * DAY)
    reused_result, reused_id = _asset(settings, b"result reused today", "result", 30 * DAY)
    fresh, _ = _asset(settings, b"fresh upload", "image", DAY)
    add_job(settings, JobKind.NST, inputs={"content": queued_input, "styles": []})
    add_job(
        settings,
        JobKind.NST,
        state=JobState.RUNNING,
        inputs={"content": "0" * 64, "styles": [running_style]},
    )
    add_job(
        settings,
        JobKind.VIDEO,
        state=JobState.SUCCEEDED,
        inputs={"video": recent_input},
        finished_at=utcnow() - DAY,
        created_at=utcnow() - 2 * DAY,
    )
    add_job(
        settings,
        JobKind.NST,
        state=JobState.SUCCEEDED,
        result_asset_id=reused_id,
        created_at=utcnow(),
        finished_at=utcnow(),
    )

    report = purge_expired(settings)
    assert sorted(report.removed) == sorted([old_result, old_preview])
    assert report.kept_in_use == 4
    assert report.bytes_freed == len(b"old result") + len(b"old preview")
    assert _deleted(settings) == {
        old_result: True,
        old_preview: True,
        queued_input: False,
        running_style: False,
        recent_input: False,
        reused_result: False,
        fresh: False,
    }
    assert not storage.exists(old_result) and not storage.exists(old_preview)
    assert all(storage.exists(s) for s in (queued_input, running_style, recent_input, fresh))
    assert purge_expired(settings).removed == []


def test_storing_the_same_bytes_again_brings_an_asset_back(embedded_runtime):
    settings, _ = embedded_runtime()
    sha, _ = _asset(settings, b"result", "result", 30 * DAY)
    assert purge_expired(settings, older_than=7 * DAY).removed == [sha]
    again, _ = _asset(settings, b"result", "result", timedelta(0))
    assert again == sha and _deleted(settings) == {sha: False}
    assert Storage(settings.resolved_storage_dir).exists(sha)


def test_a_file_left_by_a_crashed_run_is_removed_next_time(embedded_runtime):
    settings, _ = embedded_runtime()
    sha, asset_id = _asset(settings, b"marked, not yet removed", "result", 30 * DAY)
    with session_scope(settings.resolved_database_url) as session:
        session.get(Asset, asset_id).deleted_at = utcnow()
    assert purge_expired(settings, older_than=7 * DAY).removed == [sha]
    assert not Storage(settings.resolved_storage_dir).exists(sha)


def test_retention_is_off_unless_an_age_is_set(embedded_runtime):
    settings, _ = embedded_runtime()
    sha, _ = _asset(settings, b"ancient", "result", 3650 * DAY)
    assert purge_expired(settings).removed == []
    assert _deleted(settings) == {sha: False}


def test_the_schedule_has_what_is_configured(tmp_path: Path):
    base = beat_schedule(Settings(reaper_interval=5, scratch_interval=60))
    assert base == {
        "reaper": {"task": REAP, "schedule": 5, "options": {"queue": "default", "expires": 5}},
        "scratch": {
            "task": SWEEP_SCRATCH,
            "schedule": 60,
            "options": {"queue": "default", "expires": 60},
        },
    }
    inbox = Inbox(name="scans", folder=tmp_path, styles=["wave.jpg"])
    full = beat_schedule(Settings(retention_days=30), [inbox])
    assert {name: e["task"] for name, e in full.items()} == {
        "reaper": REAP,
        "scratch": SWEEP_SCRATCH,
        "inboxes": SCAN_INBOXES,
        "retention": RETENTION,
    }
