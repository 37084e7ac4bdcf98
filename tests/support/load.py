"""Concurrent HTTP clients against a running `atelier api`, and the data they read.

Shared by `bench.api` (throughput and latency), `bench.queue` and the suite's load test (zero
errors): `seed` writes a small NST batch with one finished job and its result file, `serve` runs
`atelier api` on a loopback port, and `fire` starts N clients at once, each sending one request,
and records every status and latency. Only loopback addresses are used.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image
from sqlalchemy import update

from atelier.assets import record_asset
from atelier.batches import create_nst_batch
from atelier.db import migrate, session_scope
from atelier.models import Job, JobState, utcnow
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.storage import Storage
from tests.support.procs import REPO, stop


@dataclass(frozen=True)
class Seeded:
    batch_id: int
    job_id: int  # a succeeded job with a result file

    def paths(self) -> list[str]:
        """The routes the load goes to: lists, one job, one batch, the gallery, a download."""
        return [
            "/v1/jobs",
            f"/v1/jobs/{self.job_id}",
            f"/v1/batches/{self.batch_id}",
            "/",
            f"/v1/jobs/{self.job_id}/result",
        ]


def _png(color: tuple[int, int, int], size: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, format="PNG")
    return out.getvalue()


def seed(settings: Settings) -> Seeded:
    """A 2 x 2 NST batch whose first job has succeeded with a result file."""
    db_url = settings.resolved_database_url
    migrate(db_url)
    storage = Storage(settings.resolved_storage_dir)
    shas = []
    with session_scope(db_url) as session:
        for i, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 9)]):
            stored = storage.put_bytes(_png(color))
            asset = record_asset(
                session,
                stored,
                kind="image",
                media_type="image/png",
                width=48,
                height=48,
                label=f"input {i}",
            )
            shas.append(asset.sha256)
    plan = create_nst_batch(settings, shas[:2], shas[2:], NSTParams(), source="bench", force=True)
    job_id = plan.job_ids[0]
    with session_scope(db_url) as session:
        result = record_asset(
            session,
            storage.put_bytes(_png((120, 60, 200), 64)),
            kind="result",
            media_type="image/png",
            width=64,
            height=64,
            label=f"job {job_id}",
        )
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state=JobState.SUCCEEDED,
                progress=1.0,
                result_asset_id=result.id,
                finished_at=utcnow(),
            )
        )
    return Seeded(plan.batch_id, job_id)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(
    env: Mapping[str, str], log: Path, timeout: float = 60, prefix: Sequence[str] = ()
) -> Iterator[str]:
    """Run `atelier api` on a free loopback port with `env` (ATELIER_* settings) until the block
    ends; yields its base URL. `prefix`: a command that runs it (one that sets up a namespace)."""
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    full.update(env)
    full["PYTHONPATH"] = str(REPO)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-m",
                "api.cli",
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"atelier api exited:\n{log.read_text()[-3000:]}")
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    tail = log.read_text()[-3000:]
                    raise TimeoutError(f"atelier api did not answer:\n{tail}") from None
                time.sleep(0.1)
        yield base
    finally:
        stop(proc)


@dataclass(frozen=True)
class Load:
    """What N concurrent clients got: one entry per request."""

    clients: int
    seconds: float  # first request sent to last answer received
    statuses: list[int]  # 0: no answer (connection error or client time-out)
    latencies: list[float]
    failures: list[str]

    @property
    def errors(self) -> int:
        return sum(1 for status in self.statuses if status != 200)

    @property
    def throughput(self) -> float:
        return len(self.statuses) / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _get(host: str, port: int, path: str) -> tuple[int, bytes]:
    """One HTTP/1.1 GET on a connection of its own (`Connection: close`): status and body.

    Plain asyncio streams: a full HTTP client per simulated user costs the load generator more
    than the requests cost the server it measures.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Accept: text/html,application/json\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        raw = await reader.read()  # until the server closes the connection
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else 0
    return status, body


async def _fire(base: str, paths: Sequence[str], clients: int, timeout: float) -> Load:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    start = asyncio.Event()
    statuses = [0] * clients
    latencies = [0.0] * clients
    failures: list[str] = []

    async def client(i: int) -> None:
        path = paths[i % len(paths)]
        await start.wait()
        began = time.perf_counter()
        try:
            statuses[i], body = await asyncio.wait_for(_get(host, int(port), path), timeout)
            if statuses[i] != 200:
                failures.append(f"{path}: {statuses[i]} {body[:200]!r}")
        except (OSError, TimeoutError, ValueError, IndexError) as error:
            failures.append(f"{path}: {type(error).__name__} {error}")
        latencies[i] = time.perf_counter() - began

    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await asyncio.sleep(0.05)  # every client is waiting on the start signal
    began = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - began
    return Load(clients, seconds, statuses, latencies, failures)


def fire(base: str, paths: Sequence[str], clients: int, timeout: float = 60) -> Load:
    """`clients` clients start at once, each sending one GET (the paths taken in turn)."""
    return asyncio.run(_fire(base, paths, clients, timeout))
