"""Real PostgreSQL and Redis for tests, each test getting a database of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis

PG_ADMIN_URL = os.environ.get("ATELIER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ATELIER_TEST_REDIS", "redis://127.0.0.1:6379")


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping())
    except redis.RedisError:
        return False


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database for one test; dropped afterwards. Yields a SQLAlchemy URL."""
    name = f"atelier_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        from atelier.db import get_engine

        for url in [f"{base}/{name}"]:
            get_engine(url).dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


REDIS_DATABASES = 16  # redis-server's default `databases`


def redis_test_db() -> int:
    """The Redis logical database of this test process: ATELIER_TEST_REDIS_DB (default 12, so
    concurrent suites can be kept apart) plus the number of the pytest-xdist worker (`gw2`: 2),
    so the parallel workers of one suite never flush each other's queues."""
    base = int(os.environ.get("ATELIER_TEST_REDIS_DB", "12"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    db = base + int(worker.removeprefix("gw"))
    if not 0 <= db < REDIS_DATABASES:
        pytest.fail(
            f"Redis database {db} (ATELIER_TEST_REDIS_DB={base} + xdist worker {worker}) does"
            f" not exist: Redis has {REDIS_DATABASES}; lower ATELIER_TEST_REDIS_DB or use fewer"
            " workers"
        )
    return db


@contextmanager
def fresh_redis_db() -> Iterator[str]:
    """A flushed Redis logical database for one test (`redis_test_db`). Yields its URL."""
    url = f"{REDIS_URL}/{redis_test_db()}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()


@contextmanager
def deployment_env(root: Path, **settings: str) -> Iterator[dict[str, str]]:
    """The ATELIER_* settings of a test deployment: a fresh PostgreSQL database and Redis DB,
    files under `root`, random VGG19 weights, fast heartbeats; `settings` add or override."""
    if not (redis_available() and postgres_available()):
        pytest.fail("Redis and PostgreSQL must be up; `make test` starts them")
    with fresh_postgres_database() as db, fresh_redis_db() as broker:
        yield {
            "ATELIER_DATABASE_URL": db,
            "ATELIER_BROKER_URL": broker,
            "ATELIER_DATA_DIR": str(root / "data"),
            "ATELIER_VGG_WEIGHTS": "none",
            "ATELIER_HEARTBEAT_SECONDS": "0.5",
            **settings,
        }
