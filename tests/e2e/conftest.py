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

from tests.support import services
from tests.support.procs import ATELIER, REPO, atelier_env, atelier_process

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


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
    if not (services.redis_available() and services.postgres_available()):
        pytest.fail("Redis and PostgreSQL must be up; `make test` starts them")
    root = tmp_path_factory.mktemp("deployment")
    with services.fresh_postgres_database() as db, services.fresh_redis_db() as broker:
        env = {
            "ATELIER_DATABASE_URL": db,
            "ATELIER_BROKER_URL": broker,
            "ATELIER_DATA_DIR": str(root / "data"),
            "ATELIER_VGG_WEIGHTS": "none",
            "ATELIER_HEARTBEAT_SECONDS": "0.5",
        }
        args = ["worker", "--queues", "nst,video,default", "--concurrency", "2"]
        with atelier_process(args, env, root / "worker.log", ready=" ready."):
            yield Deployment(env, root)


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real photos and paintings from the shared data, downscaled to 40 px."""
    folder = tmp_path_factory.mktemp("images")
    picks = {
        "tubingen": "content/tubingen.jpg",
        "golden_gate": "content/golden_gate.jpg",
        "starry": "style/starry_night.jpg",
        "wave": "style/wave_crop.jpg",
    }
    out = {}
    for name, relative in picks.items():
        source = SHARED_DATA / relative
        if not source.is_file():
            pytest.skip(f"test data {source} is absent")
        with Image.open(source) as image:
            small = image.convert("RGB")
            small.thumbnail((40, 40))
            out[name] = folder / f"{name}.jpg"
            small.save(out[name])
    return out
