"""Locks that keep scheduled work to one runner at a time.

`BeatLock`: only one `atelier beat` may send the schedule, or every periodic task would run twice.
With a Redis broker the lock is a Redis key whose time to live is one heartbeat
(`ATELIER_HEARTBEAT_SECONDS`), renewed three times per TTL while the beat runs, so a beat that
dies without cleaning up frees it within a heartbeat; a beat that starts meanwhile (its
replacement) waits that long for the lock before it gives up. After Redis restarts empty (it
keeps nothing on disk) the running beat simply takes its key again. A beat that cannot renew
its key no longer knows it holds the lock once a TTL has passed since the last renewal (another
beat may have taken the expired key): `holds()` is then false and the beat sends nothing
(`scheduler.held`) until a renewal succeeds, or stops if another beat has the key. Embedded, the
lock is an `fcntl` lock on a file in the data dir, released by the kernel when the process dies.

`exclusive`: a non-blocking lock around one piece of scheduled work (an inbox scan), so a scan
that runs longer than its interval is not started twice: a PostgreSQL advisory lock when the
database is PostgreSQL (workers may be on several hosts), an `fcntl` lock file otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import redis
from sqlalchemy import text

from atelier.db import get_engine
from atelier.settings import Settings

log = logging.getLogger(__name__)
BEAT_KEY = "atelier:beat:lock"
POLL_SECONDS = 0.1  # how often a waiting beat tries the lock again

# Renew our key, or take it again if it vanished (Redis restarted empty); 0: someone else has it.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class BeatLockHeld(RuntimeError):
    """Another beat holds the lock; the message says which."""


class BeatLock:
    """The single-beat lock (see the module docstring). Use as a context manager."""

    def __init__(self, settings: Settings, ttl: float | None = None, wait: float = 0.0) -> None:
        """`ttl`: the Redis key's time to live (default: one heartbeat); `wait`: how long to
        wait for a lock that another beat holds (it may be a dead one's, expiring)."""
        self.settings = settings
        self.ttl = ttl if ttl is not None else settings.heartbeat_seconds
        self.wait = wait
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lost = threading.Event()
        self._renewed_at = -float("inf")  # time.monotonic() of the last write of our key
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file: IO[str] | None = None
        self._client: redis.Redis | None = None
        self.on_lost: Callable[[], None] = lambda: None

    def holds(self) -> bool:
        """Whether this beat surely holds the lock now: a file lock is held until the process
        ends; a Redis key only until its TTL runs out after the last renewal, and never once
        another beat has taken it."""
        if self._file is not None:
            return True
        renewed_ago = time.monotonic() - self._renewed_at
        return self._client is not None and not self.lost.is_set() and renewed_ago < self.ttl

    @property
    def uses_redis(self) -> bool:
        return self.settings.resolved_broker_url.startswith(("redis://", "rediss://", "unix://"))

    @property
    def lock_file(self) -> Path:
        return self.settings.resolved_data_dir / "beat.lock"

    def __enter__(self) -> BeatLock:
        if self.uses_redis:
            self._acquire_redis()
        else:
            self._acquire_file()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._client is not None:
            with contextlib.suppress(redis.RedisError):
                self._client.eval(_RELEASE, 1, BEAT_KEY, self.token)
            self._client.close()
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the fcntl lock

    def _acquire_file(self) -> None:
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        handle = self.lock_file.open("a+")
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(POLL_SECONDS)
                    continue
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
                raise BeatLockHeld(
                    f"another atelier beat is running (lock {self.lock_file} held by {holder})"
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(self.token)
        handle.flush()
        self._file = handle

    def _acquire_redis(self) -> None:
        client = redis.Redis.from_url(
            self.settings.resolved_broker_url, socket_timeout=5, socket_connect_timeout=5
        )
        ttl_ms = max(1, int(self.ttl * 1000))
        deadline = time.monotonic() + self.wait
        while not self._write_key(lambda: client.set(BEAT_KEY, self.token, nx=True, px=ttl_ms)):
            if time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                continue
            holder = client.get(BEAT_KEY)
            client.close()
            who = holder.decode() if holder else "unknown"
            raise BeatLockHeld(f"another atelier beat is running (Redis key {BEAT_KEY}: {who})")
        self._client = client
        self._thread = threading.Thread(target=self._renew, name="beat-lock", daemon=True)
        self._thread.start()

    def _write_key(self, write: Callable[[], object]) -> bool:
        """Run `write` (a SET or a renewal); when it took, the key lives a TTL from before it
        was sent."""
        started = time.monotonic()
        if write():
            self._renewed_at = started
            return True
        return False

    def _renew(self) -> None:
        assert self._client is not None
        client, ttl_ms = self._client, max(1, int(self.ttl * 1000))
        failing_since: float | None = None
        while not self._stop.wait(self.ttl / 3):
            try:
                if self._write_key(lambda: client.eval(_RENEW, 1, BEAT_KEY, self.token, ttl_ms)):
                    if failing_since is not None:
                        log.warning(
                            "beat lock renewed after %.1f s; the schedule goes on",
                            time.monotonic() - failing_since,
                        )
                    failing_since = None
                    continue
            except redis.RedisError as error:
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.error(
                        "cannot renew the beat lock (%s): once its %g s TTL has run out this "
                        "beat sends nothing until it is renewed, as another beat may take it",
                        error,
                        self.ttl,
                    )
                continue
            log.error("another beat took the beat lock; stopping this one")
            self.lost.set()
            self.on_lost()
            return


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def exclusive(settings: Settings, name: str) -> Iterator[bool]:
    """Try to take the lock `name` without waiting; yields whether this process got it."""
    url = settings.resolved_database_url
    engine = get_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            key = _lock_key(name)
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        return
    folder = settings.resolved_data_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
