"""The per-process engine cache closes what it drops: no connection or engine outlives its place
in the cache."""

from __future__ import annotations

import gc
import uuid
import weakref

import psycopg
from sqlalchemy import text

from atelier import db
from tests.support.services import PG_ADMIN_URL


def _open_connections(prefix: str) -> int:
    """Connections the server has open for applications named `prefix`... (counted outside the
    engine cache, which a lookup would change)."""
    with psycopg.connect(PG_ADMIN_URL) as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s"
        return conn.execute(query, (f"{prefix}%",)).fetchone()[0]


def test_engines_dropped_from_the_cache_are_disposed_and_freed(pg_url: str):
    prefix = f"evict-{uuid.uuid4().hex[:8]}-"
    urls = [f"{pg_url}?application_name={prefix}{i}" for i in range(db._ENGINES_KEPT + 3)]
    refs = []
    for url in urls:
        engine = db.get_engine(url)
        with engine.connect() as conn:  # one idle connection stays in the engine's pool
            conn.execute(text("SELECT 1"))
        refs.append(weakref.ref(engine))
    del engine
    gc.collect()
    # Only the engines still cached keep a pooled connection; the dropped ones closed theirs.
    assert _open_connections(prefix) == db._ENGINES_KEPT
    assert [ref() is None for ref in refs] == [True] * 3 + [False] * db._ENGINES_KEPT
