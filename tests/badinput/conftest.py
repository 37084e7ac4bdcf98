"""One deployment for the bad-input suite: a real worker process on Redis and a PostgreSQL
database of its own, the HTTP API in this process (TestClient) on the same database, broker and
storage, and `atelier` commands run as subprocesses against it.

Starting a worker and compiling the NST step costs tens of seconds, so the cases share them; the
worker's first compile is started by a warm-up job as soon as the deployment is up, and overlaps
the cases that are refused at the door. After every test the worker must still be running, the
storage's scratch area must be empty, and every stored object must be whole (its bytes hash to
its name): a bad input may fail, it may not leave debris or take the worker down.
"""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.http.app import create_app
from atelier.db import migrate, session_scope
from atelier.models import Asset, Batch, Job
from atelier.settings import Settings
from atelier.storage import Storage
from tests.badinput.makers import noise_image
from tests.support import services
from tests.support.procs import ATELIER, REPO, atelier_env, atelier_process

MAX_UPLOAD_BYTES = 512 * 1024
"""Small enough that the test clip (744 KiB) is an oversize upload, big enough for the
rest (half of that clip included)."""

NST = {"size": 32, "iterations": 2}
"""Every stylization: 32 px (one output shape for every case, so the step compiles once)."""

TOKEN = "correct-horse-battery"
"""The bearer token of the secured `atelier api` process."""

INPUT_KINDS = ("image", "video")
_BOX = re.compile(r"[│╭╮╰╯─┃━]")


@dataclass
class Deployment:
    """The running deployment and the means to drive and inspect it."""

    env: dict[str, str]
    root: Path
    worker: subprocess.Popen[bytes]
    worker_log: Path
    settings: Settings

    @property
    def db_url(self) -> str:
        return self.env["ATELIER_DATABASE_URL"]

    @property
    def storage(self) -> Storage:
        return Storage(self.settings.resolved_storage_dir)

    def atelier(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run an `atelier` command against the deployment (wide console: messages unwrapped)."""
        return subprocess.run(
            [*ATELIER, *args],
            env={**atelier_env(self.env), "COLUMNS": "250"},
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=timeout,
        )


@dataclass(frozen=True)
class Goods:
    """A valid content and style image, stored before any case runs, so a command that
    re-ingests them stores nothing new."""

    content: Path
    style: Path
    content_sha: str
    style_sha: str


def plain(text: str) -> str:
    """A command's output with Rich's panel borders and line wrapping taken out."""
    return " ".join(_BOX.sub(" ", text).split())


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def row_counts(db_url: str) -> dict[str, int]:
    """Batches, jobs and input assets (uploads, not results a running job may add meanwhile)."""
    with session_scope(db_url) as session:
        return {
            "batches": session.scalar(select(func.count()).select_from(Batch)),
            "jobs": session.scalar(select(func.count()).select_from(Job)),
            "inputs": session.scalar(
                select(func.count()).select_from(Asset).where(Asset.kind.in_(INPUT_KINDS))
            ),
        }


def last_job(db_url: str) -> Job | None:
    with session_scope(db_url) as session:
        return session.scalars(select(Job).order_by(Job.id.desc()).limit(1)).first()


def scratch_left(storage: Storage) -> list[Path]:
    return sorted(storage.tmp.rglob("*")) if storage.tmp.exists() else []


def damaged_objects(storage: Storage) -> list[str]:
    """Stored objects whose bytes do not hash to their name (a partial or foreign file)."""
    if not storage.objects.exists():
        return []
    return [
        str(path.relative_to(storage.root))
        for path in storage.objects.rglob("*")
        if path.is_file() and sha256_of(path.read_bytes()) != path.name
    ]


def assert_healthy(deployment: Deployment) -> None:
    """The worker still runs, nothing is left in scratch, every object is whole.

    Scratch is polled for a while: a job that just reported success removes its working folder
    right after, and the warm-up or an earlier job may still be writing a result.
    """
    assert deployment.worker.poll() is None, (
        "the worker died:\n" + deployment.worker_log.read_text(errors="replace")[-4000:]
    )
    deadline = time.monotonic() + 30
    while scratch_left(deployment.storage) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert scratch_left(deployment.storage) == []
    assert damaged_objects(deployment.storage) == []


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("badinput")
    upload_limit = {"ATELIER_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}
    with services.deployment_env(root, **upload_limit) as env:
        db, broker = env["ATELIER_DATABASE_URL"], env["ATELIER_BROKER_URL"]
        migrate(db)
        settings = Settings(
            data_dir=root / "data",
            database_url=db,
            broker_url=broker,
            vgg_weights="none",
            max_upload_bytes=MAX_UPLOAD_BYTES,
            api_token=None,
        )
        log = root / "worker.log"
        args = ["worker", "--queues", "nst,video,default", "--concurrency", "1"]
        with atelier_process(args, env, log, ready=" ready.") as worker:
            yield Deployment(env, root, worker, log, settings)


@pytest.fixture(scope="module")
def api(deployment: Deployment) -> Iterator[TestClient]:
    with TestClient(create_app(deployment.settings)) as client:
        yield client


@pytest.fixture(scope="module")
def goods(deployment: Deployment, api: TestClient) -> Goods:
    """Upload the valid images, and send the warm-up job that makes the worker compile."""
    folder = deployment.root / "goods"
    folder.mkdir()
    shas = {}
    for name, seed in (("content", 100), ("style", 101)):
        (folder / f"{name}.png").write_bytes(noise_image(seed))
        response = api.post(
            "/v1/assets", files={"file": (f"{name}.png", noise_image(seed), "image/png")}
        )
        assert response.status_code == 201, response.text
        shas[name] = response.json()["sha256"]
    warm = api.post(
        "/v1/batches",
        json={"content": [shas["content"]], "styles": [shas["style"]], "params": NST},
    )
    assert warm.status_code == 201, warm.text
    return Goods(folder / "content.png", folder / "style.png", shas["content"], shas["style"])


@pytest.fixture(autouse=True)
def healthy(deployment: Deployment) -> Iterator[None]:
    yield
    assert_healthy(deployment)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def secured_server(deployment: Deployment) -> Iterator[str]:
    """A real `atelier api` (uvicorn) on the deployment, requiring TOKEN; yields its URL."""
    port = _free_port()
    env = {**deployment.env, "ATELIER_API_TOKEN": TOKEN}
    log = deployment.root / "api.log"
    with atelier_process(
        ["api", "--port", str(port)], env, log, ready="Application startup complete"
    ):
        yield f"http://127.0.0.1:{port}"
