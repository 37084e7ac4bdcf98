"""The HTTP API served by `atelier api`, a real worker behind it, and the gallery in Chromium.

A grid goes in over HTTP, a worker process runs it, the results, loss histories and contact sheet
come back over HTTP, and headless Chromium (Debian's, driven by Playwright) watches the gallery
page update a running batch in place and takes a screenshot of the finished one.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from tests.e2e.conftest import Deployment
from tests.support.procs import atelier_process

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these Chromium keeps trying to reach Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ITERATIONS = 40


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def api(deployment: Deployment) -> Iterator[httpx.Client]:
    port = _free_port()
    args = ["api", "--host", "127.0.0.1", "--port", str(port)]
    log = deployment.root / "api.log"
    with (
        atelier_process(args, deployment.env, log, ready="startup"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        yield client


def _upload(api: httpx.Client, path: Path) -> str:
    response = api.post("/v1/assets", params={"label": path.stem}, content=path.read_bytes())
    assert response.status_code in (200, 201), response.text
    return response.json()["sha256"]


def _wait_finished(api: httpx.Client, batch_id: int, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = api.get(f"/v1/batches/{batch_id}").json()
        if batch["finished"]:
            return batch
        time.sleep(0.5)
    raise TimeoutError(f"batch {batch_id} not finished: {batch}")


def test_a_grid_over_http_runs_on_the_worker_and_the_gallery_follows_it(
    api: httpx.Client, tiny_images: dict[str, Path], tmp_path: Path
):
    if not Path(CHROMIUM).is_file():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package")
    contents = [_upload(api, tiny_images[name]) for name in ("tubingen", "golden_gate")]
    styles = [_upload(api, tiny_images["starry"])]
    response = api.post(
        "/v1/batches",
        json={
            "content": contents,
            "styles": styles,
            "params": {"size": 32, "iterations": ITERATIONS, "weights": "none"},
            "label": "gallery",
        },
    )
    assert response.status_code == 201, response.text
    batch_id = response.json()["id"]

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(f"{api.base_url}/")
        section = page.locator(f"#batch-{batch_id}")
        assert section.get_attribute("data-finished") == "false"  # rendered before the jobs end
        # The page follows the batch's server-sent events (polling if they fail) and updates in
        # place: no reload between these two looks.
        assert section.get_attribute("data-streaming") == "true"
        page.wait_for_function(
            "id => document.querySelectorAll(`#batch-${id} .job[data-state=succeeded]`).length"
            " === 2",
            arg=batch_id,
            timeout=300_000,
        )
        batch = _wait_finished(api, batch_id)
        page.reload()
        page.wait_for_load_state("networkidle")
        loaded = page.evaluate(
            "id => [...document.querySelectorAll(`#batch-${id} img`)]"
            ".map(img => [img.className, img.complete && img.naturalWidth > 0])",
            batch_id,
        )
        assert not [m for m in console if "Content Security Policy" in m], console
        shot = tmp_path / "gallery.png"
        section.screenshot(path=str(shot))
        browser.close()

    assert batch["counts"] == {"succeeded": 2} and batch["progress"] == 1
    # one contact sheet, two result thumbnails, two loss plots: all decoded by the browser
    assert sorted(kind for kind, ok in loaded if ok) == [
        "plot",
        "plot",
        "sheet-img",
        "thumb",
        "thumb",
    ]
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and pixels.std() > 20

    for job in batch["jobs"]:
        result = api.get(f"/v1/jobs/{job['id']}/result")
        assert result.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(result.content)) as image:
            assert max(image.size) == 32
        rows = list(
            csv.reader(io.StringIO(api.get(f"/v1/jobs/{job['id']}/losses?format=csv").text))
        )
        assert rows[0] == ["iteration", "total", "content", "style", "tv"]
        assert [int(r[0]) for r in rows[1:]] == list(range(1, ITERATIONS + 1))
        assert float(rows[-1][1]) < float(rows[1][1])  # the optimisation made progress
    sheet = api.get(f"/v1/batches/{batch_id}/sheet.png")
    assert sheet.status_code == 200 and sheet.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_cancelling_a_running_job_stops_the_worker_at_its_next_check(
    api: httpx.Client, deployment: Deployment, tiny_images: dict[str, Path]
):
    content, style = _upload(api, tiny_images["wave"]), _upload(api, tiny_images["tubingen"])
    long_run = {"size": 32, "iterations": 5000, "weights": "none", "seed": 3}
    created = api.post(
        "/v1/batches", json={"content": [content], "styles": [style], "params": long_run}
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["jobs"][0]["id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["state"] == "running" and job["progress"] > 0:
            break
        time.sleep(0.2)
    assert job["state"] == "running", job

    cancelled = api.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    log = deployment.root / "worker.log"
    wait_for_log_line(log, f"job {job_id}: cancelled; attempt 1 stopped", 120)

    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "cancelled" and job["result"] is None
    rows = api.get(f"/v1/jobs/{job_id}/losses", params={"format": "csv"}).text.split()[1:]
    assert 0 < len(rows) < 5000  # it stopped part way, keeping the history it had written
    # The worker is free again: the next job runs to the end.
    quick = {**long_run, "iterations": 3}
    after = api.post("/v1/batches", json={"content": [content], "styles": [style], "params": quick})
    batch = _wait_finished(api, after.json()["id"])
    assert batch["counts"] == {"succeeded": 1}


def wait_for_log_line(log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} not in {log}"
        time.sleep(0.2)


def test_submit_takes_the_shared_options_and_shows_uploads_and_downloads(
    api: httpx.Client, deployment: Deployment, tiny_images: dict[str, Path], tmp_path: Path
):
    out = tmp_path / "remote"
    done = deployment.atelier(
        "submit", str(tiny_images["golden_gate"]), "--style", str(tiny_images["wave"]),
        "--api", str(api.base_url), "--size", "32", "--iterations", "2", "--preserve-colors",
        "-p", "style_layers=block1_conv1,block2_conv1", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Progress bars for the uploads and the downloads (drawn once at the end into a pipe).
    assert "uploading 2 file(s)" in done.stderr and "downloading 4 file(s)" in done.stderr
    batch = json.loads((out / "batch.json").read_text())
    params = batch["jobs"][0]["params"]
    assert params["preserve_colors"] is True and params["size"] == 32
    assert params["style_layers"] == ["block1_conv1", "block2_conv1"]
    stem = out / "golden_gate__wave"
    for suffix in (".png", ".losses.csv", ".loss.png"):
        assert Path(f"{stem}{suffix}").stat().st_size > 0, suffix
    assert len(Path(f"{stem}.losses.csv").read_text().splitlines()) == 3
    assert (out / "sheet.png").stat().st_size > 0


def test_submit_out_writes_no_loss_files_for_fast_jobs(
    api: httpx.Client, deployment: Deployment, tiny_images: dict[str, Path], tmp_path: Path
):
    out = tmp_path / "fast"
    done = deployment.atelier(
        "submit", str(tiny_images["golden_gate"]), "--style", str(tiny_images["wave"]),
        "--api", str(api.base_url), "--engine", "fast", "--size", "48", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "downloading 2 file(s)" in done.stderr  # the result and the sheet
    assert sorted(p.name for p in out.iterdir()) == [
        "batch.json",
        "golden_gate__wave.png",
        "sheet.png",
    ]
    job = json.loads((out / "batch.json").read_text())["jobs"][0]
    losses = api.get(f"/v1/jobs/{job['id']}/losses", params={"format": "csv"})
    assert losses.status_code == 404 and "fast engine" in losses.json()["error"]
