"""Server-sent events of a batch's progress, pushed when its jobs change.

One thread per API process listens for job notices (`atelier.notify`) and wakes every open stream;
a stream then reads its batch in a short session (no connection is held while it waits) and sends
the batch's JSON if it changed. Without notices (a database that refuses another connection, or
SQLite with workers in other processes) the streams read every `FALLBACK_SECONDS` instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from atelier.notify import job_feed

log = logging.getLogger(__name__)
FALLBACK_SECONDS = 5.0
COALESCE_SECONDS = 0.2  # a grid's jobs change together: one read for a burst of notices


class JobNotices:
    """Fans the process's job notices out to asyncio subscribers."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[set[int]]]] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def subscribe(self) -> asyncio.Queue[set[int]]:
        queue: asyncio.Queue[set[int]] = asyncio.Queue()
        with self._lock:
            self._subscribers.add((asyncio.get_running_loop(), queue))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._listen, name="job-notices", daemon=True
                )
                self._thread.start()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[set[int]]) -> None:
        with self._lock:
            self._subscribers = {s for s in self._subscribers if s[1] is not queue}

    def _listen(self) -> None:
        """Listen while anyone is subscribed; the last stream to go ends the thread."""
        while self._wanted():
            with job_feed(self.db_url) as feed:
                if feed is None:
                    time.sleep(FALLBACK_SECONDS)  # the database is away: the streams poll
                    continue
                try:
                    while self._wanted():
                        ids = feed.wait(FALLBACK_SECONDS)
                        if ids:
                            self._publish(ids)
                except Exception as error:  # noqa: BLE001 - the connection dropped: listen again
                    log.warning("job notices interrupted: %s", error)

    def _wanted(self) -> bool:
        with self._lock:
            if not self._subscribers:
                self._thread = None
                return False
            return True

    def _publish(self, ids: set[int]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, ids)
            except RuntimeError:  # that stream's loop has closed
                self.unsubscribe(queue)


async def batch_events(
    notices: JobNotices,
    read: Callable[[], tuple[str, set[int], bool]],
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    """`event: batch` with the batch's JSON at once and after every change of one of its jobs,
    until the batch is finished or the client goes. `read` returns (json, job ids, finished)."""
    queue = notices.subscribe()
    try:
        last = None
        while True:
            body, job_ids, finished = await run_in_threadpool(read)
            if body != last:
                yield f"event: batch\ndata: {body}\n\n"
                last = body
            else:
                yield ": still here\n\n"  # lets the server notice a client that has gone
            if finished or await disconnected():
                return
            await _next_change(queue, job_ids)
    finally:
        notices.unsubscribe(queue)


async def _next_change(queue: asyncio.Queue[set[int]], job_ids: set[int]) -> None:
    deadline = time.monotonic() + FALLBACK_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        try:
            ids = await asyncio.wait_for(queue.get(), left)
        except TimeoutError:
            return
        if ids & job_ids:
            await asyncio.sleep(COALESCE_SECONDS)
            while not queue.empty():
                queue.get_nowait()
            return
