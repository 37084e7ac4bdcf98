"""POST /v1/assets: streamed, typed by content, limited, deduplicated; refusals leave nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.http.app import create_app
from atelier.db import session_scope
from atelier.models import Asset
from atelier.sniff import sniff
from tests.api.conftest import bomb_png, jpeg_bytes, png_bytes, stored_objects, upload


def asset_count(settings) -> int:
    with session_scope(settings.resolved_database_url) as session:
        return session.scalar(select(func.count()).select_from(Asset))


def test_raw_and_multipart_uploads_are_stored_once(client, api_settings):
    first = client.post(
        "/v1/assets?label=red.png",
        content=png_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["kind"], body["media_type"], body["width"], body["height"]) == (
        "image",
        "image/png",
        40,
        30,
    )
    assert body["label"] == "red.png"
    path = api_settings.resolved_storage_dir / "objects" / body["sha256"][:2] / body["sha256"][2:4]
    assert (path / body["sha256"]).read_bytes() == png_bytes()

    again = client.post("/v1/assets", files={"file": ("other-name.png", png_bytes(), "image/png")})
    assert again.status_code == 200, again.text
    assert again.json()["sha256"] == body["sha256"]
    assert asset_count(api_settings) == 1

    content = client.get(body["content_url"])
    assert content.status_code == 200
    assert content.content == png_bytes()
    assert content.headers["content-type"] == "image/png"
    assert content.headers["x-content-type-options"] == "nosniff"
    thumb = client.get(body["thumbnail_url"], params={"size": 16})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


def test_type_comes_from_the_content_not_the_name(client):
    # JPEG bytes sent as "photo.png" with an image/png part type: stored as the JPEG it is.
    response = client.post("/v1/assets", files={"file": ("photo.png", jpeg_bytes(), "image/png")})
    assert response.status_code == 201, response.text
    assert response.json()["media_type"] == "image/jpeg"
    assert response.json()["label"] == "photo.png"


def test_a_video_is_recognised_by_its_container(client, test_data):
    data = (test_data / "video" / "chaplin.mp4").read_bytes()
    response = client.post("/v1/assets", files={"file": ("clip.bin", data, "text/plain")})
    assert response.status_code == 201, response.text
    assert (response.json()["kind"], response.json()["media_type"]) == ("video", "video/mp4")
    thumb = client.get(response.json()["thumbnail_url"], params={"size": 64})
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"


REFUSED = {
    "text": (b"just some text, not an image" * 10, 415),
    "empty": (b"", 415),
    "html disguised": (b"<html><script>alert(1)</script></html>", 415),
    "png magic then garbage": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, 422),
    "truncated png": (png_bytes(64, 64)[:60], 422),
    "decompression bomb": (bomb_png(), 422),
    "too many pixels for the limit": (png_bytes(2100, 2000), 422),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_refused_uploads_leave_nothing(client, api_settings, case, multipart):
    upload(client, png_bytes(8, 8))  # something already stored, which must stay as it is
    before = stored_objects(api_settings)
    data, status = REFUSED[case]
    if multipart:
        response = client.post("/v1/assets", files={"file": ("x.png", data, "image/png")})
    else:
        response = client.post("/v1/assets", content=data)
    assert response.status_code == status, response.text
    assert response.json()["status"] == status and response.json()["error"]
    assert stored_objects(api_settings) == before
    assert asset_count(api_settings) == 1


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_an_upload_over_the_size_limit_is_refused_while_streaming(client, api_settings, multipart):
    limit = api_settings.max_upload_bytes
    data = png_bytes(8, 8) + b"\x00" * (limit + 1)  # a valid image header, then far too much
    before = stored_objects(api_settings)
    if multipart:
        response = client.post("/v1/assets", files={"file": ("big.png", data, "image/png")})
    else:
        chunks = (data[i : i + 65536] for i in range(0, len(data), 65536))  # no Content-Length
        response = client.post("/v1/assets", content=chunks)
    assert response.status_code == 413, response.text
    assert str(limit) in response.json()["error"]
    assert stored_objects(api_settings) == before
    assert asset_count(api_settings) == 0


def test_a_declared_oversize_body_is_refused_before_it_is_read(client, api_settings):
    data = b"\x00" * (api_settings.max_upload_bytes + 1)
    response = client.post("/v1/assets", content=data)
    assert response.status_code == 413
    assert stored_objects(api_settings) == []


def test_a_multipart_form_without_a_file_field(client, api_settings):
    response = client.post("/v1/assets", files={"picture": ("x.png", png_bytes(), "image/png")})
    assert response.status_code == 422
    assert "`file`" in response.json()["error"]
    assert asset_count(api_settings) == 0


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", ("image", "image/jpeg")),
        (b"GIF89a\x01\x00", ("image", "image/gif")),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", ("image", "image/webp")),
        (b"II*\x00\x08\x00\x00\x00", ("image", "image/tiff")),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", ("video", "video/mp4")),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", ("video", "video/quicktime")),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", ("video", "video/webm")),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska", ("video", "video/x-matroska")),
        (b"RIFF\x00\x00\x00\x00AVI LIST", ("video", "video/x-msvideo")),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", None),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_sniff(head, expected):
    found = sniff(head)
    if expected is None:
        assert found is None
    else:
        assert (found.kind, found.media_type) == expected


def test_video_frames_over_the_pixel_limit_are_refused_at_upload_and_thumbnail(
    api_settings, test_data
):
    data = (test_data / "video" / "chaplin.mp4").read_bytes()  # 640x360
    with TestClient(create_app(api_settings)) as client:
        body = upload(client, data)
    small = api_settings.model_copy(update={"max_video_pixels": 640 * 360 - 1})
    with TestClient(create_app(small)) as client:
        # size 40: a size no other test asks for, so no thumbnail is cached for it yet
        thumb = client.get(body["thumbnail_url"], params={"size": 40})
        assert thumb.status_code == 422 and "640x360" in thumb.text, thumb.text
        again = client.post(
            "/v1/assets", content=data, headers={"Content-Type": "application/octet-stream"}
        )
        assert again.status_code == 422 and "too large" in again.text, again.text
