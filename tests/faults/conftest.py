"""Fixtures of the fault suite: a private Redis server, a short clip and tiny square images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

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


@pytest.fixture(scope="session")
def squares(tmp_path_factory: pytest.TempPathFactory, test_data: Path) -> list[Path]:
    """32 px square crops of the sample images: one shape, so a worker compiles its step once
    for the whole batch instead of once per aspect ratio."""
    folder = tmp_path_factory.mktemp("squares")
    sources = [
        *sorted((test_data / "content").glob("*.jpg")),
        *sorted((test_data / "faces").glob("*.jpg")),
        *sorted((test_data / "style").glob("*.*")),
    ]
    out = []
    for source in sources:
        with Image.open(source) as image:
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            square = image.convert("RGB").crop((left, top, left + side, top + side))
            target = folder / f"{source.stem}.png"
            square.resize((32, 32)).save(target)
            out.append(target)
    return out
