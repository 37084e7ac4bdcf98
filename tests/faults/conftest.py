"""Fixtures of the fault suite: a private Redis server and a short clip (tiny square images are
the whole suite's: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import RedisServer, cut_clip, have_redis_server, private_redis


@pytest.fixture
def fault_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, so it can be restarted without disturbing others."""
    if not have_redis_server():
        pytest.fail("redis-server is not installed; the fault suite starts a private one")
    with private_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory, test_data: Path) -> Path:
    """Two seconds of the sample film, with faces and audio."""
    folder = tmp_path_factory.mktemp("clip")
    return cut_clip(test_data / "video" / "chaplin.mp4", folder / "clip.mp4", 5.0, 2.0)
