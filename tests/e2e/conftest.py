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
