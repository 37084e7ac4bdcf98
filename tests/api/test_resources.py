"""Batches, videos and jobs over HTTP against rows in a real database (no worker needed here)."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.http.app import create_app
from atelier import jobs
from atelier.db import session_scope
from atelier.models import Batch, Job, JobState, LossRecord, utcnow
from tests.api.conftest import jpeg_bytes, png_bytes, upload


@pytest.fixture
def images(client):
    return [
        upload(client, png_bytes(color=(200, 0, 0)), "red.png")["sha256"],
        upload(client, jpeg_bytes(color=(0, 0, 200)), "blue.jpg")["sha256"],
        upload(client, png_bytes(color=(0, 200, 0)), "green.png")["sha256"],
    ]


def make_jobs(db_url: str, states: list[str], kind: str = "nst") -> list[int]:
    with session_scope(db_url) as session:
        batch = Batch(kind=kind, label="rows", source="test", params={})
        session.add(batch)
        session.flush()
        jobs = [
            Job(
                kind=kind,
                batch_id=batch.id,
                state=state,
                inputs={},
                params={},
                meta={},
                progress=1.0 if state == JobState.SUCCEEDED else 0.25,
                finished_at=utcnow() if JobState(state).finished else None,
            )
            for state in states
        ]
        session.add_all(jobs)
        session.flush()
        return [job.id for job in jobs]


def test_a_grid_is_created_queued_and_counted(client, images):
    red, blue, green = images
    body = {
        "content": [red, blue, red],  # a repeated image is one row of the grid
        "styles": [green],
        "params": {"size": 32, "iterations": 3},
        "label": "first grid",
    }
    response = client.post("/v1/batches", json=body)
    assert response.status_code == 201, response.text
    batch = response.json()
    assert (batch["kind"], batch["label"], batch["source"], batch["total"]) == (
        "nst",
        "first grid",
        "api",
        2,
    )
    assert batch["counts"] == {"queued": 2} and batch["progress"] == 0 and not batch["finished"]
    assert [j["inputs"] for j in batch["jobs"]] == [
        {"content": red, "styles": [green]},
        {"content": blue, "styles": [green]},
    ]
    assert all(j["params"]["size"] == 32 for j in batch["jobs"])
    assert client.get(f"/v1/batches/{batch['id']}").json()["counts"] == {"queued": 2}
    listing = client.get("/v1/batches").json()
    assert [b["id"] for b in listing["items"]] == [batch["id"]]

    sheet = client.get(batch["sheet_url"])
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(sheet.content)).size[0] > 0

    blended = client.post(
        "/v1/batches",
        json={"content": [red], "styles": [blue, green], "params": {"style_blend": [0.7, 0.3]}},
    )
    assert blended.status_code == 201, blended.text
    assert blended.json()["jobs"][0]["inputs"]["styles"] == [blue, green]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"content": ["f" * 64]}, "unknown content asset"),
        ({"styles": ["0" * 64]}, "unknown style asset"),
        ({"content": ["not-a-sha"]}, "content.0"),
        ({"content": []}, "content"),
        ({"params": {"size": 5}}, "params.size"),
        ({"params": {"sizes": 64}}, "params.sizes"),
        ({"params": {"content_layer": "block9_conv9"}}, "unknown VGG19 layer"),
        ({"params": {"weights": "/etc/passwd"}}, "weight files are set by the operator"),
        ({"params": {"style_blend": [1, 2, 3]}}, "params.style_blend: style_blend has 3"),
        ({"params": {"style_layer_weights": [1]}}, "style_layer_weights: Value error, needs"),
        ({"force": "maybe"}, "force"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_grids_are_422_with_the_reason(client, images, change, words):
    body = {"content": [images[0]], "styles": [images[1]], **change}
    response = client.post("/v1/batches", json=body)
    assert response.status_code == 422, response.text
    assert words in response.json()["error"]
    assert client.get("/v1/batches").json()["total"] == 0


def test_videos_need_a_video_asset(client, images, test_data):
    response = client.post("/v1/videos", json={"video": images[0]})
    assert response.status_code == 422
    assert "not videos" in response.json()["error"]
    data = (test_data / "video" / "chaplin.mp4").read_bytes()
    video = client.post("/v1/assets", content=data).json()["sha256"]
    bad = client.post("/v1/videos", json={"video": video, "params": {"layout": "5x1"}})
    assert bad.status_code == 422 and "params.layout" in bad.json()["error"]
    # A check across fields names the field to change, in the message and in the details.
    panels = {"layout": "1x1", "filters": ["blur"]}
    bad = client.post("/v1/videos", json={"video": video, "params": panels})
    assert bad.status_code == 422
    assert "params.filters: Value error, layout 1x1 takes 0" in bad.json()["error"]
    assert [d["field"] for d in bad.json()["details"]] == ["params.filters"]
    made = client.post(
        "/v1/videos", json={"video": video, "params": {"filter": "blur"}, "label": "clip"}
    )
    assert made.status_code == 201, made.text
    batch = made.json()
    assert (batch["kind"], batch["total"], batch["sheet_url"]) == ("video", 1, None)
    assert batch["jobs"][0]["inputs"] == {"video": video}
    assert client.get(f"/v1/batches/{batch['id']}/sheet.png").status_code == 404


def test_jobs_listing_filters_and_pages(client, api_settings):
    db = api_settings.resolved_database_url
    first = make_jobs(db, ["queued", "running", "succeeded", "failed", "succeeded"])
    second = make_jobs(db, ["succeeded", "queued"], kind="video")

    everything = client.get("/v1/jobs").json()
    assert everything["total"] == 7
    assert [j["id"] for j in everything["items"]] == sorted(first + second, reverse=True)

    succeeded = client.get("/v1/jobs", params={"state": "succeeded"}).json()
    assert {j["id"] for j in succeeded["items"]} == {first[2], first[4], second[0]}
    videos = client.get("/v1/jobs", params={"kind": "video"}).json()
    assert {j["id"] for j in videos["items"]} == set(second)
    mixed = client.get("/v1/jobs", params={"state": "queued", "batch": 1, "kind": "nst"}).json()
    assert [j["id"] for j in mixed["items"]] == [first[0]]

    seen, offset = [], 0
    while offset is not None:
        page = client.get("/v1/jobs", params={"limit": 3, "offset": offset}).json()
        assert page["limit"] == 3 and len(page["items"]) <= 3
        seen += [j["id"] for j in page["items"]]
        offset = page["next_offset"]
    assert seen == sorted(first + second, reverse=True)

    for bad in ({"state": "done"}, {"kind": "gif"}, {"limit": 0}, {"offset": -1}):
        assert client.get("/v1/jobs", params=bad).status_code == 422

    batch = client.get("/v1/batches/1").json()
    assert batch["counts"] == {"failed": 1, "queued": 1, "running": 1, "succeeded": 2}
    assert batch["progress"] == pytest.approx(
        (0.25 + 0.25 + 1 + 1 + 1) / 5
    )  # finished counts as done


def test_batches_listing_pages_newest_first(client, api_settings):
    db = api_settings.resolved_database_url
    jobs = [make_jobs(db, ["queued"], kind=kind)[0] for kind in ("nst", "video", "nst", "video")]
    with session_scope(db) as session:
        made = [session.get(Job, job).batch_id for job in jobs]
    pages, offset = [], 0
    while offset is not None:
        page = client.get("/v1/batches", params={"limit": 3, "offset": offset}).json()
        assert (page["total"], page["limit"], page["offset"]) == (4, 3, offset)
        pages.append([batch["id"] for batch in page["items"]])
        offset = page["next_offset"]
    assert pages == [made[:0:-1], made[:1]]
    videos = client.get("/v1/batches", params={"kind": "video", "limit": 1}).json()
    assert ([b["id"] for b in videos["items"]], videos["total"]) == ([made[3]], 2)
    assert videos["next_offset"] == 1


def test_job_result_losses_and_cancel(client, api_settings):
    db = api_settings.resolved_database_url
    queued, failed = make_jobs(db, ["queued", "failed"])
    with session_scope(db) as session:
        session.get(Job, failed).error = "the content image is corrupt"
        session.add_all(
            LossRecord(job_id=queued, iteration=i, total=10.0 / i, content=1, style=2, tv=0.5)
            for i in (1, 2, 3)
        )

    job = client.get(f"/v1/jobs/{queued}").json()
    assert (job["state"], job["result"], job["batch_id"]) == ("queued", None, 1)
    assert client.get("/v1/jobs/999999").status_code == 404

    not_yet = client.get(f"/v1/jobs/{queued}/result")
    assert not_yet.status_code == 409 and "queued" in not_yet.json()["error"]
    broken = client.get(f"/v1/jobs/{failed}/result")
    assert broken.status_code == 409 and "corrupt" in broken.json()["error"]

    losses = client.get(f"/v1/jobs/{queued}/losses").json()
    assert [r["iteration"] for r in losses["rows"]] == [1, 2, 3]
    assert losses["rows"][1] == {"iteration": 2, "total": 5.0, "content": 1, "style": 2, "tv": 0.5}
    csv = client.get(f"/v1/jobs/{queued}/losses", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == "iteration,total,content,style,tv"
    assert len(csv.text.splitlines()) == 4
    plot = client.get(f"/v1/jobs/{queued}/losses", params={"format": "png"})
    assert plot.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(plot.content)).size == (640, 360)
    assert client.get(f"/v1/jobs/{queued}/losses", params={"format": "gif"}).status_code == 422

    cancelled = client.post(f"/v1/jobs/{queued}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = client.post(f"/v1/jobs/{queued}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]
    assert client.post(f"/v1/jobs/{failed}/cancel").status_code == 409
    assert client.post("/v1/jobs/999999/cancel").status_code == 404


def test_a_jobs_detail_shows_every_attempt_with_its_worker_and_error(client, api_settings):
    db = api_settings.resolved_database_url
    (job_id,) = make_jobs(db, ["queued"])
    for n in (1, 2):
        lease = jobs.claim(db, job_id, f"w{n}@box:{n}", 60, task_id=f"t{n}").lease
        jobs.release(lease, f"ConnectionError: try {n}")
    jobs.succeed(jobs.claim(db, job_id, "w3@box:3", 60, task_id="t3").lease, None, {}, 0.5)
    history = client.get(f"/v1/jobs/{job_id}").json()["history"]
    assert [
        (a["attempt"], a["worker"], a["task_id"], a["outcome"], a["error"]) for a in history
    ] == [
        (1, "w1@box:1", "t1", "released", "ConnectionError: try 1"),
        (2, "w2@box:2", "t2", "released", "ConnectionError: try 2"),
        (3, "w3@box:3", "t3", "succeeded", None),
    ]
    assert client.get("/v1/jobs", params={"batch": 1}).json()["items"][0]["history"] is None


def test_cancel_a_whole_batch(client, api_settings):
    db = api_settings.resolved_database_url
    ids = make_jobs(db, ["queued", "running", "succeeded"])
    response = client.post("/v1/batches/1/cancel")
    assert response.status_code == 200
    assert sorted(j["id"] for j in response.json()) == ids[:2]
    assert client.get("/v1/batches/1").json()["counts"] == {"cancelled": 2, "succeeded": 1}
    assert client.post("/v1/batches/1/cancel").json() == []
    assert client.post("/v1/batches/99/cancel").status_code == 404


def test_gallery_lists_batches(client, images, api_settings):
    client.post(
        "/v1/batches",
        json={"content": [images[0]], "styles": [images[1]], "label": "<b>not bold</b>"},
    )
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Batch 1" in page.text and "/v1/batches/1/sheet.png" in page.text
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page.text  # labels are escaped
    assert "red.png" in page.text


def test_a_cancelled_batch_shows_how_far_it_got_not_a_finished_bar(client, api_settings):
    db = api_settings.resolved_database_url
    ids = make_jobs(db, ["running", "succeeded"])  # the running one is at 25 %
    assert client.post(f"/v1/jobs/{ids[0]}/cancel").status_code == 200
    batch = client.get("/v1/batches/1").json()
    assert batch["finished"] and batch["progress"] == pytest.approx((0.25 + 1) / 2)
    assert [j["progress"] for j in batch["jobs"]] == [0.25, 1.0]
    page = client.get("/").text
    section = page[page.index('id="batch-1"') :]
    assert 'data-outcome="cancelled"' in section.split(">", 1)[0]
    assert '<span class="pct">62%</span>' in section
    tile = section[section.index(f'data-job-id="{ids[0]}"') :]
    assert '<span class="job-state">cancelled</span>' in tile
    assert '<span class="job-pct">25%</span>' in tile.split("</article>", 1)[0]


def test_errors_are_json(client):
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found", "status": 404}
    bad_json = client.post(
        "/v1/batches", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 422 and bad_json.json()["error"].startswith("invalid request")
    wrong_method = client.delete("/v1/jobs")
    assert wrong_method.status_code == 405 and wrong_method.json()["status"] == 405


def test_health_reports_the_broker(api_settings, redis_url):
    with TestClient(create_app(api_settings.model_copy(update={"broker_url": redis_url}))) as c:
        found = c.get("/healthz").json()
        assert (found["database"], found["broker"], found["status"]) == ("ok", "ok", "ok")
    dead = api_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(dead)) as c:
        response = c.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "ok" and response.json()["broker"].startswith("error")


def test_a_broker_outage_keeps_the_rows_and_says_so(api_settings, images):
    dead = api_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(dead)) as c:
        response = c.post("/v1/batches", json={"content": [images[0]], "styles": [images[1]]})
        assert response.status_code == 503, response.text
        assert "saved" in response.json()["error"]
        assert c.get("/v1/jobs", params={"state": "queued"}).json()["total"] == 1


def test_list_parameters_make_a_grid_within_the_limit(api_settings, images):
    red, blue, green = images[0], images[1], images[2]
    limited = api_settings.model_copy(update={"max_grid": 4})
    with TestClient(create_app(limited)) as client:
        body = {
            "content": [red, blue],
            "styles": [green],
            "params": {"size": 32, "style_weight": [10, 100], "style_scale": 0.5},
        }
        response = client.post("/v1/batches", json=body)
        assert response.status_code == 201, response.text
        batch = response.json()
        assert batch["total"] == 4 and batch["params"]["style_weight"] == [10.0, 100.0]
        assert [(j["inputs"]["content"], j["params"]["style_weight"]) for j in batch["jobs"]] == [
            (red, 10.0),
            (red, 100.0),
            (blue, 10.0),
            (blue, 100.0),
        ]
        assert {j["params"]["style_scale"] for j in batch["jobs"]} == {0.5}
        body["params"]["tv_weight"] = [0, 1e-3]
        refused = client.post("/v1/batches", json=body)
        assert refused.status_code == 422
        assert "8 jobs" in refused.json()["error"] and "ATELIER_MAX_GRID" in refused.json()["error"]
        body["params"]["tv_weight"] = [1e-3, -1]
        bad = client.post("/v1/batches", json=body)
        assert bad.status_code == 422 and "tv_weight" in bad.json()["error"]
        assert client.get("/v1/batches").json()["total"] == 1


def test_the_grid_limit_is_the_setting_even_above_a_thousand(api_settings, images):
    """ATELIER_MAX_GRID alone bounds a grid: raised past 1,000, it is the limit a refusal
    names (checked before anything is written, so the test need not write a thousand jobs)."""
    body = {
        "content": images[:2],
        "styles": [images[2]],
        "params": {"size": 32, "style_weight": [float(w) for w in range(1, 1001)]},
    }
    with TestClient(create_app(api_settings.model_copy(update={"max_grid": 1999}))) as client:
        refused = client.post("/v1/batches", json=body)
        assert refused.status_code == 422
        assert "makes 2000 jobs" in refused.json()["error"]
        assert "the limit is 1999" in refused.json()["error"]
        assert client.get("/v1/batches").json()["total"] == 0
