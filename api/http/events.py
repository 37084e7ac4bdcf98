"""Server-sent events of a batch's progress: one listener per API process, fanned out to every
stream.

One thread per API process listens for job notices (`atelier.notify`). When jobs of a followed
batch change, it waits `COALESCE_SECONDS` (a grid's jobs change together: one read for a burst;
a batch's streams get at most two versions a second), reads that batch once and hands the same
event, encoded once, to every stream that follows it. The database is
read once per change per process, however many streams follow the batch; a stream itself never
queries, it only waits for its batch's next version. Without notices (a database that refuses
another connection, or SQLite with workers in other processes) the listener re-reads the
followed batches every `FALLBACK_SECONDS` instead, still once per batch. Between versions a
stream sends a comment every `FALLBACK_SECONDS`, so that a client that has gone is noticed.

A client address may hold `ATELIER_MAX_STREAMS_PER_CLIENT` streams at once; one more is answered
429 with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from api.http.errors import ApiError
from atelier.db import session_scope
from atelier.models import Batch
from atelier.notify import job_feed
from atelier.read import batch_out

log = logging.getLogger(__name__)
FALLBACK_SECONDS = 5.0
COALESCE_SECONDS = 0.5
STREAM_RETRY_AFTER_SECONDS = 10


@dataclass(frozen=True, eq=True)
class Snapshot:
    """One version of a batch, as its streams send it."""

    body: str  # the batch's JSON, as `GET /v1/batches/{id}` answers it
    job_ids: frozenset[int]
    finished: bool

    @cached_property
    def event(self) -> bytes:
        """The server-sent event, encoded once for all the streams that send it."""
        return f"event: batch\ndata: {self.body}\n\n".encode()


def read_batch(db_url: str, batch_id: int) -> Snapshot | None:
    """The batch now, or None if there is no such batch."""
    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id)
        if batch is None:
            return None
        out = batch_out(session, batch)
    return Snapshot(out.model_dump_json(), frozenset(job.id for job in out.jobs), out.finished)


@dataclass(eq=False)
class Follower:
    """One stream's place in the feed: woken (from the listener's thread) on a new version."""

    batch_id: int
    client: str
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # that stream's loop has closed: it is leaving
            self.loop.call_soon_threadsafe(self.changed.set)

    async def next_change(self, timeout: float) -> None:
        """Until the batch has a new version, or `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout)
        self.changed.clear()


class BatchFeed:
    """The process's followed batches and their latest versions (see the module docstring)."""

    def __init__(
        self,
        db_url: str,
        max_per_client: int,
        read: Callable[[str, int], Snapshot | None] = read_batch,
    ) -> None:
        self.db_url = db_url
        self.max_per_client = max_per_client
        self.read = read
        self._followers: dict[int, set[Follower]] = {}
        self._latest: dict[int, Snapshot] = {}
        self._batch_of: dict[int, int] = {}  # job id -> batch id, for followed batches
        self._per_client: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def follow(self, batch_id: int, client: str) -> Follower:
        """A new stream of `batch_id` for `client`; 429 past the client's limit."""
        follower = Follower(batch_id, client)
        with self._lock:
            if self._per_client[client] >= self.max_per_client:
                raise ApiError(
                    429,
                    f"your address already holds {self.max_per_client} event streams "
                    "(ATELIER_MAX_STREAMS_PER_CLIENT); close one or poll GET /v1/batches/{id}",
                    headers={"Retry-After": str(STREAM_RETRY_AFTER_SECONDS)},
                )
            self._per_client[client] += 1
            self._followers.setdefault(batch_id, set()).add(follower)
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name="batch-feed", daemon=True)
                self._thread.start()
        return follower

    def leave(self, follower: Follower) -> None:
        with self._lock:
            followers = self._followers.get(follower.batch_id, set())
            if follower not in followers:
                return
            followers.discard(follower)
            self._per_client[follower.client] -= 1
            if self._per_client[follower.client] <= 0:
                del self._per_client[follower.client]
            if not followers:
                del self._followers[follower.batch_id]
                snapshot = self._latest.pop(follower.batch_id, None)
                for job_id in snapshot.job_ids if snapshot else ():
                    self._batch_of.pop(job_id, None)

    def first(self, batch_id: int) -> Snapshot:
        """The version a new stream starts with: the one its batch's streams share, or read
        now when it has none yet (404 if there is no such batch)."""
        with self._lock:
            snapshot = self._latest.get(batch_id)
        if snapshot is not None:
            return snapshot
        snapshot = self.read(self.db_url, batch_id)
        if snapshot is None:
            raise ApiError(404, f"no batch {batch_id}")
        with self._lock:
            if batch_id in self._followers:  # the listener's version, if newer, stays
                self._store(batch_id, self._latest.get(batch_id) or snapshot)
        return snapshot

    def latest(self, batch_id: int) -> Snapshot | None:
        with self._lock:
            return self._latest.get(batch_id)

    def _store(self, batch_id: int, snapshot: Snapshot) -> None:
        self._latest[batch_id] = snapshot
        for job_id in snapshot.job_ids:
            self._batch_of[job_id] = batch_id

    def _followed(self) -> list[int]:
        with self._lock:
            return list(self._followers)

    def _batches_of(self, job_ids: Iterable[int]) -> list[int]:
        with self._lock:
            return sorted({self._batch_of[i] for i in job_ids if i in self._batch_of})

    def _refresh(self, batch_ids: Iterable[int]) -> None:
        """Read each batch once and wake its streams if it changed."""
        for batch_id in batch_ids:
            try:
                snapshot = self.read(self.db_url, batch_id)
            except Exception as error:  # noqa: BLE001 - the database away: the next pass
                log.warning("event streams: cannot read batch %s: %s", batch_id, error)
                continue
            with self._lock:
                followers = list(self._followers.get(batch_id, ()))
                current = self._latest.get(batch_id)
                if snapshot is None or not followers or snapshot == current:
                    continue
                self._store(batch_id, snapshot)
            for follower in followers:
                follower.wake()

    def _listen(self) -> None:
        """Listen while any stream follows a batch; the last stream to go ends the thread."""
        try:
            while self._wanted():
                self._listen_once()
        except Exception:  # logged; the next stream starts a new listener
            log.exception("event streams: the listener stopped")
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _listen_once(self) -> None:
        """One connection's worth of listening (a dropped connection returns)."""
        with job_feed(self.db_url) as feed:
            self._refresh(self._followed())  # what changed while nobody listened
            if feed is None:
                time.sleep(FALLBACK_SECONDS)  # the database refuses a listener: poll
                return
            try:
                while self._wanted():
                    ids = feed.wait(FALLBACK_SECONDS)
                    if not ids:  # nothing heard: read anyway, in case notices cannot reach us
                        self._refresh(self._followed())
                        continue
                    time.sleep(COALESCE_SECONDS)
                    self._refresh(self._batches_of(ids | feed.wait(0)))
            except Exception as error:  # noqa: BLE001 - the connection dropped: listen again
                log.warning("job notices interrupted: %s", error)

    def _wanted(self) -> bool:
        with self._lock:
            if not self._followers:
                self._thread = None
                return False
            return True


async def batch_events(
    feed: BatchFeed, follower: Follower, first: Snapshot
) -> AsyncIterator[bytes]:
    """`event: batch` with the batch's JSON at once and after every change of one of its jobs,
    until the batch is finished; a comment when nothing changed for `FALLBACK_SECONDS`, so that
    a client that has gone is noticed (the response then ends the stream)."""
    try:
        snapshot, sent = first, None
        while True:
            if snapshot.body != sent:
                yield snapshot.event
                sent = snapshot.body
            else:
                yield b": still here\n\n"
            if snapshot.finished:
                return
            await follower.next_change(FALLBACK_SECONDS)
            snapshot = feed.latest(follower.batch_id) or snapshot
    finally:
        feed.leave(follower)
