"""The database's clock, which every lease is written and judged by.

Leases are read and written by PostgreSQL's `now()`, not by the clock of the machine that
happens to write or check them, so machines whose clocks disagree cannot take each other's live
jobs. The embedded SQLite database is only ever used from one machine, whose clock is used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atelier.models import utcnow


def sql_now(session: Session) -> Any:
    """Now by the database's clock: PostgreSQL's `now()` (the transaction's start) as an SQL
    expression; on SQLite, this machine's clock."""
    return func.now() if session.get_bind().dialect.name == "postgresql" else utcnow()


def db_now(session: Session) -> datetime:
    """The database's clock as a value (see `sql_now`)."""
    now = sql_now(session)
    return now if isinstance(now, datetime) else as_aware(session.scalar(select(now)))


def as_aware(value: datetime | None) -> datetime:
    """SQLite returns naive datetimes; they were written as UTC. None reads as the distant past."""
    if value is None:
        return datetime.min.replace(tzinfo=utcnow().tzinfo)
    return value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)
