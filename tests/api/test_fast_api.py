"""The fast engine and the painting filter over HTTP: parameters, routing, gallery, inputs."""

from __future__ import annotations

import json

from tests.api.conftest import jpeg_bytes, png_bytes, upload


def _messages(api_settings) -> list[dict]:
    """Messages waiting in the embedded broker's folder."""
    folder = api_settings.broker_folder / "queue"
    return [json.loads(path.read_bytes()) for path in sorted(folder.glob("*.msg"))]


def test_a_fast_batch_goes_to_the_fast_queue_and_shows_no_loss_plot(client, api_settings):
    red = upload(client, png_bytes(color=(200, 0, 0)), "red.png")["sha256"]
    blue = upload(client, jpeg_bytes(color=(0, 0, 200)), "blue.jpg")["sha256"]
    body = {"content": [red], "styles": [blue], "params": {"engine": "fast", "strength": 0.5}}
    response = client.post("/v1/batches", json=body)
    assert response.status_code == 201, response.text
    job = response.json()["jobs"][0]
    assert (job["params"]["engine"], job["params"]["strength"]) == ("fast", 0.5)
    [message] = _messages(api_settings)
    assert message["headers"]["task"] == "atelier.fast.stylize"
    assert message["properties"]["delivery_info"]["routing_key"] == "fast"

    gatys = client.post("/v1/batches", json={"content": [red], "styles": [blue]}).json()
    page = client.get("/").text
    assert f"/v1/jobs/{gatys['jobs'][0]['id']}/losses?format=png" in page
    assert f"/v1/jobs/{job['id']}/losses?format=png" not in page
    for form in ("json", "csv", "png"):  # no empty history: the reason instead
        losses = client.get(f"/v1/jobs/{job['id']}/losses", params={"format": form})
        assert losses.status_code == 404, losses.text
        assert losses.json()["error"] == (
            f"job {job['id']} uses the fast engine, which optimises nothing: it has no loss history"
        )

    bad = client.post("/v1/batches", json={**body, "params": {"engine": "fast", "strength": 2}})
    assert bad.status_code == 422 and "params.strength" in bad.json()["error"]


def test_a_painting_video_names_its_style_asset(client, test_data):
    style = upload(client, png_bytes(), "style.png")["sha256"]
    video = client.post(
        "/v1/assets", content=(test_data / "video" / "chaplin.mp4").read_bytes()
    ).json()["sha256"]
    params = {"layout": "1x2", "filters": ["painting"], "style": style}
    made = client.post("/v1/videos", json={"video": video, "params": params})
    assert made.status_code == 201, made.text
    assert made.json()["jobs"][0]["inputs"] == {"video": video, "style": style}
    unknown = {**params, "style": "0" * 64}
    missing = client.post("/v1/videos", json={"video": video, "params": unknown})
    assert missing.status_code == 422 and "unknown asset" in missing.json()["error"]
    none = client.post("/v1/videos", json={"video": video, "params": {"filter": "painting"}})
    assert none.status_code == 422 and "needs a painting" in none.json()["error"]
