"""Edges of the HTTP API: strict JSON types, form fields that are not the file, what a video job
and a video upload answer."""

from __future__ import annotations

import pytest

from tests.api.conftest import png_bytes, upload
from tests.api.test_resources import make_jobs


@pytest.fixture
def grid(client) -> dict:
    content = upload(client, png_bytes(color=(9, 9, 9)))["sha256"]
    style = upload(client, png_bytes(color=(99, 9, 9)))["sha256"]
    return {"content": [content], "styles": [style]}


COERCIBLE = [
    ({"params": {"iterations": "10"}}, "params.iterations"),
    ({"params": {"iterations": True}}, "params.iterations"),
    ({"params": {"content_weight": "1.5"}}, "params.content_weight"),
    ({"params": {"preserve_colors": "yes"}}, "params.preserve_colors"),
    ({"params": {"style_layer_weights": ["1", 1, 1, 1, 1]}}, "params.style_layer_weights.0"),
    ({"force": "yes"}, "force"),
    ({"force": 1}, "force"),
]


def test_json_types_are_not_coerced(client, grid):
    for change, field in COERCIBLE:  # one database for all cases: each needs only a request
        response = client.post("/v1/batches", json={**grid, **change})
        assert response.status_code == 422, (change, response.text)
        body = response.json()
        assert field in [d["field"] for d in body["details"]], body
        assert field in body["error"]


def test_video_params_are_strict_too(client):
    response = client.post("/v1/videos", json={"video": "a" * 64, "params": {"detect_every": "5"}})
    assert response.status_code == 422
    assert "params.detect_every" in response.json()["error"]


def test_well_typed_grids_still_pass(client, grid):
    body = {**grid, "params": {"iterations": 10, "content_weight": 2, "init": "noise"}}
    response = client.post("/v1/batches", json={**body, "force": True})
    assert response.status_code == 201, response.text
    assert response.json()["jobs"][0]["params"]["iterations"] == 10


def test_a_large_form_field_besides_the_file_is_refused(client):
    files = {"file": ("a.png", png_bytes(), "image/png")}
    big = {"note": "x" * 200_000}  # under the 1 MiB upload limit, over the field limit
    response = client.post("/v1/assets", files=files, data=big)
    assert response.status_code == 413, response.text
    assert "form field" in response.json()["error"]
    small = client.post("/v1/assets", files=files, data={"note": "fine"})
    assert small.status_code == 201, small.text


def test_a_video_job_has_no_loss_history(client, api_settings):
    (video_job,) = make_jobs(api_settings.resolved_database_url, ["succeeded"], kind="video")
    for fmt in ("json", "csv", "png"):
        response = client.get(f"/v1/jobs/{video_job}/losses", params={"format": fmt})
        assert response.status_code == 404
        assert "video job" in response.json()["error"]


def test_a_video_upload_answers_its_size_and_duration(client, test_data):
    data = (test_data / "video" / "chaplin.mp4").read_bytes()
    response = client.post("/v1/assets", content=data)
    assert response.status_code == 201, response.text
    asset = response.json()
    assert (asset["kind"], asset["width"], asset["height"]) == ("video", 640, 360)
    assert asset["duration"] == pytest.approx(9.64, abs=0.05)
    again = client.get(f"/v1/assets/{asset['sha256']}").json()
    assert (again["width"], again["height"]) == (640, 360)
