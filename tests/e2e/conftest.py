"""One real worker process per module, on real Redis and a PostgreSQL database of its own.

Starting a worker and compiling the NST step costs seconds, so the tests of a module share them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from atelier.batches import ingest_image
from atelier.db import migrate, session_scope
from atelier.settings import Settings
from tests.conftest import TEST_DATA
from tests.support import services
from tests.support.procs import ATELIER, REPO, atelier_env, atelier_process


@dataclass
class Deployment:
    """Settings of a running deployment, and a way to run `atelier` commands against it."""

    env: dict[str, str]
    root: Path

    @property
    def db_url(self) -> str:
        return self.env["ATELIER_DATABASE_URL"]

    def atelier(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ATELIER, *args],
            env=atelier_env(self.env),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A worker on every queue (two processes so segments run in parallel), Redis, PostgreSQL."""
    root = tmp_path_factory.mktemp("deployment")
    with services.deployment_env(root) as env:
        args = ["worker", "--queues", "nst,video,fast,default", "--concurrency", "2"]
        with atelier_process(args, env, root / "worker.log", ready=" ready."):
            yield Deployment(env, root)


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real photos and paintings from the test data, downscaled to 40 px."""
    folder = tmp_path_factory.mktemp("images")
    picks = {
        "tubingen": "content/tubingen.jpg",
        "golden_gate": "content/golden_gate.jpg",
        "starry": "style/starry_night.jpg",
        "wave": "style/wave_crop.jpg",
    }
    out = {}
    for name, relative in picks.items():
        with Image.open(TEST_DATA / relative) as image:
            small = image.convert("RGB")
            small.thumbnail((40, 40))
            out[name] = folder / f"{name}.jpg"
            small.save(out[name])
    return out


@pytest.fixture(scope="module")
def settings(deployment: Deployment) -> Settings:
    """The deployment's settings for producers in this process, its schema created."""
    s = Settings(
        database_url=deployment.db_url,
        broker_url=deployment.env["ATELIER_BROKER_URL"],
        data_dir=Path(deployment.env["ATELIER_DATA_DIR"]),
        vgg_weights=deployment.env["ATELIER_VGG_WEIGHTS"],
    )
    migrate(s.resolved_database_url)
    return s


def ingest(settings: Settings, path: Path) -> str:
    """Store an image as the producers do; returns its sha256."""
    with session_scope(settings.resolved_database_url) as session:
        return ingest_image(session, settings, path).sha256
