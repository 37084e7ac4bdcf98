"""Asset rows for stored files: one row per distinct content."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from atelier.models import Asset
from atelier.storage import StoredFile


def record_asset(
    session: Session,
    stored: StoredFile,
    *,
    kind: str,
    media_type: str,
    width: int | None = None,
    height: int | None = None,
    duration: float | None = None,
    label: str | None = None,
) -> Asset:
    """Get or create the row for `stored`; safe when two processes store the same bytes at once."""
    existing = session.execute(
        select(Asset).where(Asset.sha256 == stored.sha256)
    ).scalar_one_or_none()
    if existing is not None:
        if existing.deleted_at is not None:  # stored again after retention removed it
            existing.deleted_at = None
        # What an earlier store did not read (a video stored before its header was recorded).
        for name, value in (("width", width), ("height", height), ("duration", duration)):
            if getattr(existing, name) is None and value is not None:
                setattr(existing, name, value)
        return existing
    asset = Asset(
        sha256=stored.sha256,
        kind=kind,
        media_type=media_type,
        size_bytes=stored.size,
        width=width,
        height=height,
        duration=duration,
        label=(label or "")[:255] or None,
    )
    try:
        with session.begin_nested():
            session.add(asset)
    except IntegrityError:
        return session.execute(select(Asset).where(Asset.sha256 == stored.sha256)).scalar_one()
    return asset


def hold_assets(session: Session, shas: Iterable[str]) -> set[str]:
    """The sha256s of `shas` that are stored and not expired, their rows locked (shared) until
    the caller's transaction ends. A producer writes a job's row in that transaction, so
    retention, which locks the assets it may expire before it reads which ones jobs need
    (`scheduler/retention.py`), either sees the job or expires the asset first, never a job that
    points at a removed file."""
    wanted = sorted(set(shas))
    return set(
        session.scalars(
            select(Asset.sha256)
            .where(Asset.sha256.in_(wanted), Asset.deleted_at.is_(None))
            .with_for_update(read=True)
        )
    )
