"""Retention: files older than `ATELIER_RETENTION_DAYS` leave storage; their rows stay, marked.

An asset (upload, result, preview, plot, sheet) expires when it was stored before the cutoff and no
job still needs it: nothing queued or running uses it, and no job that was created or finished
after the cutoff has it as an input or a result. Styles an inbox names by sha256 are kept too
(those of the beat's `ATELIER_INBOXES`, sent with the task, as its retention age is). The row is
marked `deleted_at` first and the file removed after, so a crash in between leaves a file that
the next run removes, never a row pointing at nothing. Storing the same bytes again (an upload, a
result) brings the asset back (`record_asset` clears the mark).

Protecting and expiring are one transaction that first locks the candidate assets' rows. A
producer locks the assets a new job names in the transaction that writes the job
(`atelier.assets.hold_assets`), so either retention waits for that job and sees it, or the
producer waits and finds the asset expired (and says it is unknown): a job never points at a
removed file.

With an object store, the files are deleted from the bucket. The scratch area (and an object
store's work files) is swept apart from retention, whether it is on or not (`atelier.scratch`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from atelier.db import session_scope
from atelier.models import Asset, Job, JobState, utcnow
from atelier.settings import Settings
from atelier.storage import Storage, open_storage
from scheduler.inboxes import InboxConfigError, load_inboxes

log = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    removed: list[str] = field(default_factory=list)  # sha256 of the assets removed
    kept_in_use: int = 0
    bytes_freed: int = 0


def _shas(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _shas(item)


def _protected(session: Session, cutoff: datetime) -> tuple[set[str], set[int]]:
    """sha256s and asset ids that jobs still need (see the module docstring)."""
    shas: set[str] = set()
    ids: set[int] = set()
    rows = session.execute(
        select(Job.inputs, Job.result_asset_id, Job.meta).where(
            or_(
                Job.state.in_([JobState.QUEUED, JobState.RUNNING]),
                Job.created_at >= cutoff,
                Job.finished_at >= cutoff,
            )
        )
    )
    for inputs, result_asset_id, meta in rows:
        for value in (inputs or {}).values():
            shas.update(_shas(value))
        if result_asset_id is not None:
            ids.add(result_asset_id)
        if isinstance(meta, dict) and isinstance(meta.get("preview"), str):
            shas.add(meta["preview"])
    return shas, ids


def _inbox_styles(settings: Settings) -> set[str]:
    """The styles this process's own `ATELIER_INBOXES` names (a task sent without the beat's)."""
    try:
        return {style for inbox in load_inboxes(settings) for style in inbox.styles}
    except InboxConfigError as error:
        log.warning("retention: %s", error)
        return set()


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), 500):
        yield ids[start : start + 500]


def purge_expired(
    settings: Settings,
    older_than: timedelta | None = None,
    now: datetime | None = None,
    protected: Iterable[str] | None = None,
) -> RetentionReport:
    """Remove expired files (see the module docstring). `older_than` defaults to the setting;
    with neither, nothing is removed. `protected`: sha256s kept whatever their age (the beat's
    inbox styles); by default, those of this process's `ATELIER_INBOXES`."""
    report = RetentionReport()
    age = older_than if older_than is not None else timedelta(days=settings.retention_days)
    if age <= timedelta(0):
        return report
    now = now or utcnow()
    cutoff = now - age
    storage = open_storage(settings)
    kept = set(protected) if protected is not None else _inbox_styles(settings)
    with session_scope(settings.resolved_database_url) as session:
        old = session.execute(
            select(Asset.id, Asset.sha256).where(
                Asset.deleted_at.is_(None), Asset.created_at < cutoff
            )
        ).all()
        for chunk in _chunks([row.id for row in old]):  # lock them: see the module docstring
            session.execute(
                update(Asset)
                .where(Asset.id.in_(chunk), Asset.deleted_at.is_(None))
                .values(deleted_at=None)
            )
        shas, ids = _protected(session, cutoff)
        shas |= kept
        expired = [r.id for r in old if r.sha256 not in shas and r.id not in ids]
        report.kept_in_use = len(old) - len(expired)
        for chunk in _chunks(expired):
            session.execute(
                update(Asset)
                .where(Asset.id.in_(chunk), Asset.deleted_at.is_(None))
                .values(deleted_at=now)
            )
    _remove_marked_files(settings, storage, report)
    if report.removed:
        log.warning(
            "retention: removed %d file(s), %d bytes", len(report.removed), report.bytes_freed
        )
    return report


def _remove_marked_files(settings: Settings, storage: Storage, report: RetentionReport) -> None:
    """Delete the files of marked assets (also those a crashed run marked but did not delete).

    The mark is read again right before each delete: an asset stored again meanwhile is kept.
    """
    with session_scope(settings.resolved_database_url) as session:
        marked = session.execute(
            select(Asset.id, Asset.sha256, Asset.size_bytes).where(Asset.deleted_at.is_not(None))
        ).all()
    for row in marked:
        if not storage.exists(row.sha256):
            continue
        with session_scope(settings.resolved_database_url) as session:
            still_marked = session.scalar(
                select(Asset.id).where(Asset.id == row.id, Asset.deleted_at.is_not(None))
            )
        if still_marked is not None and storage.delete(row.sha256):
            report.removed.append(row.sha256)
            report.bytes_freed += row.size_bytes
