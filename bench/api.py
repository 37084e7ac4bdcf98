"""HTTP API under concurrent clients: throughput and latency of `atelier api` on PostgreSQL.

At 50, 200 and 500 clients started at once, each sending one GET to one of the routes a gallery
and a polling script use (`/v1/jobs`, `/v1/jobs/{id}`, `/v1/batches/{id}`, the gallery page `/`
and a result download, in turn), against one `atelier api` process with the default pool. Every
row also runs the same clients on a static file (`/static/gallery.css`, no database), the
baseline its throughput is given against. Errors are counted; a non-zero count is a failure.

Each client count is measured twice: alone, and with `STREAMS` server-sent-event streams open on
one batch while a job of that batch reports progress `CHANGES_PER_SECOND` times a second (a
worker's heartbeats, each a PostgreSQL NOTIFY that every stream must hear of). The second row's
p50 is also given as a ratio to the first's: the goal is at most 2x.

`python -m bench.api` needs PostgreSQL and Redis (ATELIER_TEST_PG / ATELIER_TEST_REDIS, as the
tests) and writes the `api` section of BENCHMARKS.md; `--quick` runs 200 clients once and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from atelier import jobs
from atelier.db import session_scope
from atelier.models import Job, JobState
from atelier.settings import Settings
from bench.report import machine_line, write_section
from tests.support.load import Load, fire, seed, serve
from tests.support.services import fresh_postgres_database, fresh_redis_db

CLIENTS = (50, 200, 500)
ROUNDS = 3  # each row keeps its best round: the machine is shared
STREAMS = 300
CHANGES_PER_SECOND = 1


@dataclass(frozen=True)
class Row:
    routes: Load
    static: Load
    streams: int  # event streams open while the row ran
    events: int  # batch events those streams received during the row


def _best(rounds: list[Load]) -> Load:
    return max(rounds, key=lambda load: load.throughput)


class Streams:
    """`count` event streams of one batch, held open and read in a thread of their own."""

    def __init__(self, base: str, batch_id: int, count: int) -> None:
        self.host, port = base.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.path = f"/v1/batches/{batch_id}/events"
        self.count = count
        self.events = 0
        self.opened = threading.Event()
        self.failures: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))

    async def _one(self, ready: list[int]) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            self.failures.append(head.split(b"\r\n", 1)[0].decode())
        ready[0] += 1
        if ready[0] == self.count:
            self.opened.set()
        assert self._stop is not None
        while not self._stop.is_set():
            line = await reader.readline()
            if not line:
                break
            if line.startswith(b"event: batch"):
                self.events += 1
        writer.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        ready = [0]
        tasks = [asyncio.create_task(self._one(ready)) for _ in range(self.count)]
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> Streams:
        self._thread.start()
        if not self.opened.wait(120) or self.failures:
            raise RuntimeError(f"streams did not open: {self.failures[:3]}")
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@contextmanager
def changing(db_url: str, job_id: int) -> Iterator[None]:
    """A job of the streamed batch reports progress CHANGES_PER_SECOND times a second."""
    claim = jobs.claim(db_url, job_id, "bench:1", lease_seconds=3600)
    assert claim.lease is not None, claim.outcome
    stop = threading.Event()

    def report() -> None:
        step = 0
        while not stop.wait(1 / CHANGES_PER_SECOND):
            step += 1
            jobs.heartbeat(claim.lease, progress=(step % 100) / 100)

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        jobs.release(claim.lease, None)


def _queued_job(db_url: str, batch_id: int) -> int:
    with session_scope(db_url) as session:
        return session.scalars(
            select(Job.id).where(Job.batch_id == batch_id, Job.state == JobState.QUEUED)
        ).first()


def measure(clients: tuple[int, ...], rounds: int, streams: int = STREAMS) -> list[Row]:
    """Per client count: the routes and the static baseline alone, then with `streams` event
    streams open on a batch that keeps changing."""
    results = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_postgres_database() as db,
        fresh_redis_db() as broker,
    ):
        data = Path(tmp) / "data"
        seeded = seed(Settings(data_dir=data, database_url=db, broker_url=broker))
        env = {
            "ATELIER_DATABASE_URL": db,
            "ATELIER_BROKER_URL": broker,
            "ATELIER_DATA_DIR": str(data),
            # One load generator stands for many users here, all from 127.0.0.1.
            "ATELIER_MAX_STREAMS_PER_CLIENT": str(streams + 10),
        }
        with serve(env, Path(tmp) / "api.log") as base:
            fire(base, seeded.paths(), 20)  # warm: templates, plans, pool
            for n in clients:
                routes = _best([fire(base, seeded.paths(), n) for _ in range(rounds)])
                static = _best([fire(base, ["/static/gallery.css"], n) for _ in range(rounds)])
                results.append(Row(routes, static, 0, 0))
                with Streams(base, seeded.batch_id, streams) as held:
                    with changing(db, _queued_job(db, seeded.batch_id)):
                        before = held.events
                        routes = _best([fire(base, seeded.paths(), n) for _ in range(rounds)])
                        static = _best(
                            [fire(base, ["/static/gallery.css"], n) for _ in range(rounds)]
                        )
                        results.append(Row(routes, static, streams, held.events - before))
                    time.sleep(1)
    return results


def table(results: list[Row]) -> str:
    lines = [
        "| clients | open streams | events received | errors | requests/s | vs static file "
        "| p50 ms | p99 ms | p50 vs no streams |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    alone: dict[int, Load] = {}
    for row in results:
        routes, static = row.routes, row.static
        if row.streams == 0:
            alone[routes.clients] = routes
            versus = ""
        else:
            versus = f"{routes.percentile(0.5) / alone[routes.clients].percentile(0.5):.2f}x"
        lines.append(
            f"| {routes.clients} | {row.streams} | {row.events} | {routes.errors} | "
            f"{routes.throughput:.0f} | {routes.throughput / static.throughput:.2f}x | "
            f"{routes.percentile(0.5) * 1000:.0f} | {routes.percentile(0.99) * 1000:.0f} | "
            f"{versus} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 clients, once; print only")
    args = parser.parse_args()
    results = measure((200,), 1) if args.quick else measure(CLIENTS, ROUNDS)
    text = table(results)
    print(text)
    if args.quick:
        return
    body = (
        "## HTTP API under concurrent clients\n\n"
        f"{machine_line()}\n\n"
        "`python -m bench.api`: one `atelier api` process (default pool: 10 + 10 connections) on "
        "PostgreSQL; N clients start at once, each sending one GET to `/v1/jobs`, "
        "`/v1/jobs/{id}`, `/v1/batches/{id}`, `/` or a result download, in turn; best of "
        f"{ROUNDS} rounds. Latency is from the start signal to the last byte; throughput is "
        "requests over the time from the start signal to the last answer, also as a ratio "
        "to the same clients fetching a static file (no database) in the same run. Rows with "
        f"open streams: {STREAMS} server-sent-event streams on one batch, held by the load "
        "generator, while a job of that batch writes its progress every "
        f"{1 / CHANGES_PER_SECOND:g} s; *events received* counts the batch events those streams "
        "got during the row; "
        "the last column is the row's p50 over the same clients' p50 without streams (goal: "
        "at most 2x).\n\n"
        f"{text}\n"
    )
    write_section("api", body)


if __name__ == "__main__":
    main()
