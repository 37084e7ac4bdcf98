"""Push notice that jobs changed, so followers re-read the database at once instead of polling it.

The database stays the record: a notice carries only job ids, and whoever receives one reads the
rows. Every state change and progress write in `atelier.jobs` calls `job_changed` inside its
transaction. On PostgreSQL that is `pg_notify` on the channel `atelier_jobs`, delivered to every
listening connection when the transaction commits (and never if it rolls back). On SQLite, which
has no such thing, the notice reaches followers in the same process (the embedded worker runs
inside the CLI or API process that follows it); followers elsewhere fall back to polling.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import event, text
from sqlalchemy.orm import Session

CHANNEL = "atelier_jobs"
_changed = threading.Condition()
_local_notices: list[tuple[int, frozenset[int]]] = []  # (sequence, job ids), recent only
_sequence = 0
_KEEP = 256


def job_changed(session: Session, job_ids: Iterable[int]) -> None:
    """Tell followers that `job_ids` changed, once this session's transaction commits."""
    ids = sorted(set(job_ids))
    if not ids:
        return
    payload = ",".join(map(str, ids))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, :ids)"), {"channel": CHANNEL, "ids": payload}
        )
        return
    event.listen(session, "after_commit", lambda _s: _notify_local(ids), once=True)


def _notify_local(ids: list[int]) -> None:
    global _sequence
    with _changed:
        _sequence += 1
        _local_notices.append((_sequence, frozenset(ids)))
        del _local_notices[:-_KEEP]
        _changed.notify_all()


class JobFeed:
    """Notices of changed jobs, for one follower. `wait` blocks until some arrive or `timeout`
    passes and returns the ids they name (empty on a timeout: poll then, as a fallback)."""

    def __init__(self, db_url: str) -> None:
        self._conn: psycopg.Connection | None = None
        if db_url.startswith("postgresql"):
            plain = "postgresql://" + db_url.split("://", 1)[1]
            self._conn = psycopg.connect(plain, autocommit=True, connect_timeout=5)
            self._conn.execute(f"LISTEN {CHANNEL}")
        with _changed:
            self._seen = _sequence

    def wait(self, timeout: float) -> set[int]:
        if self._conn is not None:
            return self._wait_postgres(timeout)
        with _changed:
            _changed.wait_for(lambda: _sequence > self._seen, timeout)
            fresh = [ids for seq, ids in _local_notices if seq > self._seen]
            self._seen = _sequence
        return set().union(*fresh) if fresh else set()

    def _wait_postgres(self, timeout: float) -> set[int]:
        assert self._conn is not None
        ids: set[int] = set()
        # The first notice within `timeout`, then whatever else has already arrived.
        for wait, stop in ((timeout, 1), (0.0, None)):
            for notice in self._conn.notifies(timeout=wait, stop_after=stop):
                ids.update(int(i) for i in notice.payload.split(",") if i)
            if not ids:
                break
        return ids

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


@contextmanager
def job_feed(db_url: str) -> Iterator[JobFeed | None]:
    """A feed of notices, or None when listening is impossible (the database refuses a new
    connection): callers then poll."""
    try:
        feed = JobFeed(db_url)
    except psycopg.Error:
        yield None
        return
    try:
        yield feed
    finally:
        feed.close()
