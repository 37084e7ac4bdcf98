"""Engines, sessions and migrations, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from atelier.cache import LRU

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK_KEY = 0x0A7E11E4  # PostgreSQL advisory lock id shared by every Atelier process
CONNECT_TIMEOUT = 5  # seconds


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI types
    """WAL and a busy timeout let a worker and the CLI write one SQLite file concurrently."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@dataclass(frozen=True)
class PoolSize:
    """How many connections a process keeps to PostgreSQL, may add under load, and how long a
    caller waits for one before SQLAlchemy raises (the API answers that with 503)."""

    size: int = 10
    overflow: int = 10
    timeout: float = 10.0


_ENGINES_KEPT = 8
_pools: dict[str, PoolSize] = {}
_lock = threading.Lock()


def use_pool(url: str, pool: PoolSize) -> None:
    """Size the pool of `url`'s engine in this process (the API and workers call this with the
    settings' sizes before serving); an engine built with other sizes is replaced."""
    with _lock:
        if _pools.get(url, PoolSize()) == pool:
            _pools[url] = pool
            return
        _pools[url] = pool
    _engines.pop(url)  # disposed by `_evicted`


def _build(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        pool = _pools.get(url, PoolSize())
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_recycle=1800,
            pool_size=pool.size,
            max_overflow=pool.overflow,
            pool_timeout=pool.timeout,
            # An unreachable server fails a connect within seconds instead of the OS's minutes.
            connect_args={"connect_timeout": CONNECT_TIMEOUT},
        )
    return engine


def _evicted(_url: Hashable, built: tuple[Engine, sessionmaker[Session]]) -> None:
    """An engine dropped from the cache closes its pooled connections now; otherwise they stay
    open until the engine happens to be garbage collected."""
    built[0].dispose()


_engines: LRU[tuple[Engine, sessionmaker[Session]]] = LRU(_ENGINES_KEPT, on_evict=_evicted)


def _forget_parent_connections() -> None:
    """In a forked child, every cached engine starts with an empty pool (see `get_engine`);
    the parent's connections are left open for the parent. One hook for the whole cache, not
    one per engine, so an engine dropped from the cache is not kept alive by its hook."""
    for engine, _sessions in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_connections)


def _engine_and_sessions(url: str) -> tuple[Engine, sessionmaker[Session]]:
    def make() -> tuple[Engine, sessionmaker[Session]]:
        engine = _build(url)
        return engine, sessionmaker(engine, expire_on_commit=False)

    return _engines.get_or_make(url, make)


def get_engine(url: str) -> Engine:
    """One pooled engine per URL and process; `pool_pre_ping` survives dropped connections.

    A forked child (a prefork worker process) starts with an empty pool: the parent migrated
    the schema before forking, and two processes talking over one inherited socket corrupt
    each other's transactions.
    """
    return _engine_and_sessions(url)[0]


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A transaction: committed when the block ends, rolled back on error."""
    session = _engine_and_sessions(url)[1]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`, serialized across processes starting at once."""
    from alembic import command

    engine = get_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            try:
                cfg = _alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            except BaseException:
                # A failed step aborted the transaction: end it, or the unlock below fails too
                # and its error hides the migration's own.
                conn.rollback()
                raise
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                conn.commit()
        return
    lock_path = Path(engine.url.database or ".").with_suffix(".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        command.upgrade(_alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The schema revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
