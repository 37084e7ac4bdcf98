"""The API under test: the real app on a real PostgreSQL database, with files made on the spot."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.http.app import create_app
from atelier.db import migrate
from atelier.settings import Settings


def png_bytes(
    width: int = 40, height: int = 30, color: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes(
    width: int = 40, height: int = 30, color: tuple[int, int, int] = (40, 40, 200)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="JPEG")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid PNG header claiming width x height pixels (2.5 G by default) with a few bytes of
    compressed zeros: tiny on disk, enormous once decoded."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    data = zlib.compress(b"\x00" * 4096, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def stored_objects(settings: Settings) -> list[Path]:
    """Every file in the storage folder (objects and scratch): what a refusal must not change."""
    root = settings.resolved_storage_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def api_settings(tmp_path: Path, pg_url: str) -> Settings:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg_url,
        storage_dir=tmp_path / "storage",
        vgg_weights="none",
        max_upload_bytes=1024 * 1024,
        max_pixels=4_000_000,
    )
    migrate(pg_url)
    return settings


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


def upload(client: TestClient, data: bytes, label: str | None = None) -> dict:
    response = client.post(
        "/v1/assets",
        params={"label": label} if label else None,
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code in (200, 201), response.text
    return response.json()
