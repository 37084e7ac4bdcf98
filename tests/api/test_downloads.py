"""Stored and drawn files are downloads, never pages: they name themselves and, should a
browser ever render one as a document, allow nothing to load or run."""

from __future__ import annotations

from tests.api.conftest import png_bytes, upload
from tests.api.test_resources import make_jobs

POLICY = "default-src 'none'; sandbox"


def test_a_stored_file_is_named_and_sandboxed(client):
    named = upload(client, png_bytes(color=(9, 9, 9)), label="Holiday photo: day 1.png")
    response = client.get(f"/v1/assets/{named['sha256']}/content")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'inline; filename="Holiday_photo_day_1.png"'
    assert response.headers["content-security-policy"] == POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    unnamed = upload(client, png_bytes(color=(8, 8, 8)))
    response = client.get(f"/v1/assets/{unnamed['sha256']}/content")
    assert response.headers["content-disposition"] == (
        f'inline; filename="{unnamed["sha256"][:12]}.png"'
    )
    thumbnail = client.get(f"/v1/assets/{named['sha256']}/thumbnail")
    assert thumbnail.headers["content-security-policy"] == POLICY


def test_drawn_files_are_sandboxed(client, api_settings):
    (job_id,) = make_jobs(api_settings.resolved_database_url, ["succeeded"])
    for fmt in ("csv", "png"):
        response = client.get(f"/v1/jobs/{job_id}/losses", params={"format": fmt})
        assert response.status_code == 200
        assert response.headers["content-security-policy"] == POLICY
