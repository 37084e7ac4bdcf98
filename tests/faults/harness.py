"""What the fault tests share: a Redis server of their own (`tests.support.servers`), a cluster
of real Atelier processes, jobs submitted the way producers do and waited for, faults inside
PostgreSQL (`tests.faults.database`), and a record of what each run observed
(`tests.faults.outcomes`). Scenarios import all of it from here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from atelier.batches import (
    create_nst_batch,
    create_video_job,
    ingest_image,
    ingest_video,
    send_plan,
)
from atelier.celery_app import create_app
from atelier.db import migrate, session_scope
from atelier.models import Job, JobState
from atelier.schemas import NSTParams, VideoParams
from atelier.settings import Settings
from tests.faults.database import table_locked as table_locked
from tests.faults.database import terminate_backends as terminate_backends
from tests.faults.database import waiting_on_locks as waiting_on_locks
from tests.faults.outcomes import Outcome as Outcome
from tests.faults.outcomes import assert_clean as assert_clean
from tests.faults.outcomes import fault_runs as fault_runs
from tests.faults.outcomes import jobs
from tests.faults.outcomes import outcome as outcome
from tests.faults.outcomes import record as record
from tests.support.procs import atelier_process, stop_all, wait_for_log
from tests.support.servers import RedisServer as RedisServer  # the fault tests' Redis
from tests.support.servers import have_redis_server as have_redis_server
from tests.support.servers import private_redis as private_redis

T = TypeVar("T")


@dataclass
class Cluster:
    """Settings shared by the test (the producer) and the processes it starts.

    The lease and heartbeat are short so a dead worker's job is taken over within seconds.
    """

    folder: Path
    db_url: str
    broker_url: str
    extra: dict[str, str] = field(default_factory=dict)
    stack: ExitStack = field(default_factory=ExitStack)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            "ATELIER_DATABASE_URL": self.db_url,
            "ATELIER_BROKER_URL": self.broker_url,
            "ATELIER_DATA_DIR": str(self.folder / "data"),
            "ATELIER_VGG_WEIGHTS": "none",
            "ATELIER_LEASE_SECONDS": "5",
            "ATELIER_HEARTBEAT_SECONDS": "0.5",
            "ATELIER_REAPER_INTERVAL": "1",
            "ATELIER_REQUEUE_GRACE_SECONDS": "3",
            **self.extra,
        }

    @property
    def settings(self) -> Settings:
        env = self.env
        return Settings(
            database_url=env["ATELIER_DATABASE_URL"],
            broker_url=env["ATELIER_BROKER_URL"],
            data_dir=Path(env["ATELIER_DATA_DIR"]),
            vgg_weights="none",
            max_batch=int(env.get("ATELIER_MAX_BATCH", "4")),
            time_limit_scale=float(env.get("ATELIER_TIME_LIMIT_SCALE", "1")),
        )

    def start(self, name: str, args: Sequence[str], ready: str) -> subprocess.Popen[bytes]:
        return self.start_many([(name, args, ready)])[0]

    def start_many(
        self, specs: Sequence[tuple[str, Sequence[str], str]]
    ) -> list[subprocess.Popen[bytes]]:
        """Start several processes at once and wait until each says it is ready: starting them
        one after the other would add their start-up times."""
        procs = []
        for name, args, _ready in specs:
            log = self.folder / f"{name}.log"
            procs.append(self.stack.enter_context(atelier_process(list(args), self.env, log, None)))
        self.procs.extend(procs)
        for proc, (name, _args, ready) in zip(procs, specs, strict=True):
            wait_for_log(self.folder / f"{name}.log", ready, 120, proc)
        return procs

    @staticmethod
    def worker_spec(name: str, queues: str, *options: str) -> tuple[str, list[str], str]:
        """`atelier worker` on `queues`, named `name`, with more `options` (`-c 2`)."""
        return name, ["worker", "--queues", queues, "--hostname", f"{name}@%h", *options], " ready."

    @staticmethod
    def beat_spec() -> tuple[str, list[str], str]:
        return "beat", ["beat"], "beat: reaper"

    def worker(self, name: str, queues: str) -> subprocess.Popen[bytes]:
        return self.start(*self.worker_spec(name, queues))

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def logs(self) -> str:
        """The tail of every process log, for assertion messages."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.folder.glob("*.log"))
        )


@contextmanager
def cluster(folder: Path, db_url: str, broker_url: str, **extra: str) -> Iterator[Cluster]:
    migrate(db_url)
    made = Cluster(folder, db_url, broker_url, dict(extra))
    with made.stack:
        try:
            yield made
        finally:
            stop_all(made.procs)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group: no cleanup, no ack, no last heartbeat."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def holder(job_row: Job, procs: Sequence[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """The worker process running `job_row` (a worker names itself `node:pid` on the row, the
    pid of the pool process that runs the task: the worker's own, or a prefork child's)."""
    pid = int((job_row.worker or "").rsplit(":", 1)[-1])
    found = [proc for proc in procs if pid in (proc.pid, *child_pids(proc.pid))]
    assert found, f"job {job_row.id} is held by {job_row.worker}, none of this test's workers"
    return found[0]


def child_pids(pid: int) -> list[int]:
    """The pids of process `pid`'s children (forked by any of its threads), from /proc (Linux)."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in children.read_text().split()]
        except OSError:  # the thread has just ended
            continue
    return found


def cut_clip(source: Path, target: Path, start: float, seconds: float) -> Path:
    """A short clip of `source` (re-encoded, so it starts on a key frame), audio kept."""
    import imageio_ffmpeg

    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-ss",
            str(start),
            "-t",
            str(seconds),
            "-i",
            str(source),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            str(target),
        ],
        check=True,
        timeout=60,
    )
    return target


def submit_nst(
    c: Cluster, contents: Sequence[Path], styles: Sequence[Path], params: NSTParams
) -> list[int]:
    settings = c.settings
    with session_scope(c.db_url) as session:
        content_shas = [ingest_image(session, settings, p).sha256 for p in contents]
        style_shas = [ingest_image(session, settings, p).sha256 for p in styles]
    plan = create_nst_batch(settings, content_shas, style_shas, params, source="faults", force=True)
    send_plan(create_app(settings), settings, plan)
    return plan.job_ids


def submit_video(c: Cluster, video: Path, params: VideoParams) -> int:
    return submit_videos(c, video, [params])[0]


def submit_videos(c: Cluster, video: Path, params: Sequence[VideoParams]) -> list[int]:
    """One job per `params` on `video`, their messages sent one right after the other (in this
    order) once every row is written, so a busy worker finds them all queued."""
    settings = c.settings
    with session_scope(c.db_url) as session:
        sha = ingest_video(session, settings, video).sha256
    plans = [create_video_job(settings, sha, each, source="faults") for each in params]
    app = create_app(settings)
    for plan in plans:
        send_plan(app, settings, plan)
    return [plan.job_ids[0] for plan in plans]


def job(db_url: str, job_id: int) -> Job:
    with session_scope(db_url) as session:
        row = session.get(Job, job_id)
        assert row is not None, f"no job {job_id}"
        return row


def all_finished(db_url: str, job_ids: Sequence[int]) -> bool:
    return all(JobState(row.state).finished for row in jobs(db_url, job_ids))


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `check` until it returns something true; a deadline, not a timed assertion: it only
    bounds how long a broken system is waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")


def wait_running(db_url: str, job_id: int, low: float, high: float, timeout: float) -> Job:
    """The job's row once it runs with progress in [low, high] (as its heartbeats report it),
    so a fault lands part way through the job; fails if the job finished first."""

    def check() -> Job | bool:
        row = job(db_url, job_id)
        if row.state == JobState.RUNNING and low <= row.progress <= high:
            return row
        return JobState(row.state).finished

    found = wait_for(check, timeout, f"job {job_id} to run")
    assert isinstance(found, Job), f"job {job_id} finished before the fault could reach it"
    return found


def wait_finished(db_url: str, job_ids: Sequence[int], timeout: float) -> None:
    wait_for(lambda: all_finished(db_url, job_ids), timeout, f"jobs {list(job_ids)} to finish")
