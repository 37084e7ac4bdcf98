"""Bad input, case by case, through the HTTP API and through the CLI.

`cases.CASES` is the whole suite: each row names an input and what each way in must make of it. A
refusal must come at the door (a 4xx with the reason, or the exit code 2 of a bad argument) and
leave no row and no file; an input accepted at the door that cannot be processed must fail its
job with the reason; an unusual but valid input must simply work. After every case the worker
process must still be running and storage must hold no scratch or partial file (see
`conftest.assert_healthy`). Uploads refused by the API for the generic reasons (plain text, empty
body, size, HTML, a bomb claiming 2.5 G pixels) are covered in tests/api/test_uploads.py; the
rows here add the CLI, the worker and the formats and parameters the issue lists.

The CLI cases run first: the worker compiles its NST step (the fixture's warm-up job) while the
CLI's refusals run. The accepted images come last in the table, so the last API cases prove that
the worker still does real work after every bad input before them.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from atelier.db import session_scope
from atelier.models import Asset, Job, JobState
from atelier.submit import wait_for_jobs
from tests.badinput import makers
from tests.badinput.cases import CASES, SUCCEEDS, Case, Expect, Kind, Outcome
from tests.badinput.conftest import (
    NST,
    TOKEN,
    Deployment,
    Goods,
    last_job,
    plain,
    row_counts,
    sha256_of,
)

pytestmark = pytest.mark.slow
JOB_TIMEOUT = 180


def _ids(cases: list[Case]) -> list[pytest.param]:
    return [pytest.param(case, id=case.name) for case in cases]


API_CASES = _ids([c for c in CASES if c.api is not None])
CLI_CASES = _ids([c for c in CASES if c.cli is not None])


# --- helpers --------------------------------------------------------------------------------


def _job(db_url: str, job_id: int) -> Job:
    job = wait_for_jobs(db_url, [job_id], timeout=JOB_TIMEOUT)[job_id]
    assert JobState(job.state).finished, f"job {job_id} still {job.state}"
    return job


def _check_job(deployment: Deployment, job: Job, expect: Expect) -> None:
    if expect.outcome is Outcome.SUCCEEDED:
        assert job.state == JobState.SUCCEEDED, job.error
        with session_scope(deployment.db_url) as session:
            result = session.get(Asset, job.result_asset_id)
        assert (result.width, result.height) == (NST["size"], NST["size"])
        assert deployment.storage.exists(result.sha256)
    else:
        assert job.state == JobState.FAILED, job.state
        assert expect.phrase in (job.error or ""), job.error
        assert job.attempts == 1  # a bad input is final: never retried
        assert job.result_asset_id is None


def _refusal(response: httpx.Response, expect: Expect) -> None:
    assert response.status_code == expect.code, response.text
    assert response.json()["status"] == expect.code
    assert expect.phrase in response.json()["error"], response.json()["error"]


@dataclass(frozen=True)
class Snapshot:
    """Rows before a case, and whether the case's input bytes were already stored (another
    case may have stored the same bytes through another way in)."""

    rows: dict[str, int]
    sha: str | None
    stored: bool


def snapshot(deployment: Deployment, data: bytes | None) -> Snapshot:
    sha = sha256_of(data) if data is not None else None
    stored = sha is not None and deployment.storage.exists(sha)
    return Snapshot(row_counts(deployment.db_url), sha, stored)


def _nothing_new(deployment: Deployment, before: Snapshot) -> None:
    assert row_counts(deployment.db_url) == before.rows
    if before.sha is not None and not before.stored:
        assert not deployment.storage.exists(before.sha), "the refused file was stored"


def _upload(api: TestClient, path: Path, media_type: str) -> httpx.Response:
    return api.post("/v1/assets", files={"file": (path.name, path.read_bytes(), media_type)})


def _nst_body(goods: Goods, case: Case, content: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "content": [content or goods.content_sha],
        "styles": [goods.style_sha],
        "params": {**NST, **case.params},
        "force": True,
    }
    return {**body, **case.body}


def _post_json(api: TestClient, url: str, body: dict[str, object]) -> httpx.Response:
    """JSON as Python writes it: NaN and Infinity included, as some clients send them."""
    return api.post(url, content=json.dumps(body), headers={"Content-Type": "application/json"})


def _stylize(
    deployment: Deployment, content: Path, goods: Goods, out: Path, *flags: str
) -> subprocess.CompletedProcess[str]:
    return deployment.atelier(
        "stylize", str(content), "--style", str(goods.style), "--out", str(out),
        "--size", str(NST["size"]), "--iterations", str(NST["iterations"]), *flags,
    )  # fmt: skip


# --- the CLI --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CLI_CASES)
def test_through_the_cli(
    case: Case,
    deployment: Deployment,
    api: TestClient,
    goods: Goods,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    expect = case.cli
    assert expect is not None
    path = case.make(tmp_path) if case.make else None
    out = tmp_path / "out"
    before = snapshot(deployment, path.read_bytes() if path else None)
    previous = last_job(deployment.db_url)
    if case.kind is Kind.IMAGE:
        assert path is not None
        done = _stylize(deployment, path, goods, out, "--force")
    elif case.kind is Kind.PARAMS:
        done = _stylize(deployment, goods.content, goods, out, *case.flags)
    elif case.kind is Kind.VIDEO:
        source = path or tmp_path / "missing.mp4"
        done = deployment.atelier("video", str(source), "--out", str(out / "result.mp4"))
    elif case.kind is Kind.TOKEN:
        server = request.getfixturevalue("secured_server")
        token = ("--token", case.token) if case.token else ()
        done = deployment.atelier(
            "submit", str(goods.content), "--style", str(goods.style), "--api", server, *token,
            "--size", "32", "--iterations", "2", "--no-wait",
        )  # fmt: skip
    else:
        _cli_export_of_a_traversal_label(case, deployment, api, goods, path, out)
        return
    output = plain(done.stderr + done.stdout)
    if expect.outcome is Outcome.REFUSED:
        assert done.returncode == expect.code, output
        assert expect.phrase in output, output
        _nothing_new(deployment, before)
        return
    job = last_job(deployment.db_url)
    assert job is not None and (previous is None or job.id > previous.id), output
    _check_job(deployment, job, expect)
    if expect.outcome is Outcome.SUCCEEDED:
        assert done.returncode == 0, output
        with Image.open(out / f"{path.stem}__style.png") as result:
            assert result.size == (NST["size"], NST["size"])
    else:
        assert done.returncode == 1, output
        assert expect.phrase in output, output


def _cli_export_of_a_traversal_label(
    case: Case,
    deployment: Deployment,
    api: TestClient,
    goods: Goods,
    path: Path | None,
    out: Path,
) -> None:
    """An upload named ../../../../evil.png keeps that label; `atelier results` must still
    write only inside --out, under a cleaned name."""
    assert path is not None and case.filename is not None
    uploaded = _raw_multipart(api, case.filename, path.read_bytes())
    assert uploaded.status_code in (200, 201), uploaded.text
    batch = api.post("/v1/batches", json=_nst_body(goods, case, uploaded.json()["sha256"]))
    assert batch.status_code == 201, batch.text
    _check_job(deployment, _job(deployment.db_url, batch.json()["jobs"][0]["id"]), SUCCEEDS)
    done = deployment.atelier("results", str(batch.json()["id"]), "--out", str(out))
    assert done.returncode == 0, plain(done.stderr)
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(
        ["batch.json", "evil__style.png", "evil__style.loss.png", "evil__style.losses.csv",
         "sheet.png"]
    )  # fmt: skip
    _not_written_by_name(case.filename, out, deployment.storage.root)


def _not_written_by_name(name: str, *folders: Path) -> None:
    """Nothing was written where the name points when taken as a path from these folders."""
    for folder in folders:
        target = (folder / name.replace("\x00", "")).resolve()  # no path holds a NUL
        assert not target.exists(), f"{target} was written through the name {name!r}"


# --- the HTTP API ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", API_CASES)
def test_through_the_api(
    case: Case,
    deployment: Deployment,
    api: TestClient,
    goods: Goods,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    expect = case.api
    assert expect is not None
    path = case.make(tmp_path) if case.make else None
    before = snapshot(deployment, path.read_bytes() if path else None)
    if case.kind is Kind.IMAGE:
        assert path is not None
        response = _upload(api, path, "image/jpeg")  # the declared type is never believed
        if expect.outcome is Outcome.REFUSED:
            _refusal(response, expect)
            _nothing_new(deployment, before)
            return
        assert response.status_code in (200, 201), response.text
        batch = api.post("/v1/batches", json=_nst_body(goods, case, response.json()["sha256"]))
        assert batch.status_code == 201, batch.text
        _check_job(deployment, _job(deployment.db_url, batch.json()["jobs"][0]["id"]), expect)
    elif case.kind is Kind.PARAMS:
        _refusal(_post_json(api, "/v1/batches", _nst_body(goods, case)), expect)
        _nothing_new(deployment, before)
    elif case.kind is Kind.VIDEO:
        _api_video(case, expect, deployment, api, path, before)
    elif case.kind is Kind.TOKEN:
        _api_token(case, expect, deployment, request.getfixturevalue("secured_server"))
    else:
        _api_name(case, expect, deployment, api, goods, path, before)


def _api_video(
    case: Case,
    expect: Expect,
    deployment: Deployment,
    api: TestClient,
    path: Path | None,
    before: Snapshot,
) -> None:
    if path is None:  # refers to a video by id only
        _refusal(_post_json(api, "/v1/videos", case.body), expect)
        _nothing_new(deployment, before)
        return
    response = _upload(api, path, "video/mp4")
    if expect.outcome is Outcome.REFUSED and response.status_code != 201:
        _refusal(response, expect)
        _nothing_new(deployment, before)
        return
    assert response.status_code in (200, 201), response.text
    created = api.post("/v1/videos", json={"video": response.json()["sha256"]})
    if expect.outcome is Outcome.REFUSED:  # stored as an image, refused as a video
        _refusal(created, expect)
        assert row_counts(deployment.db_url)["jobs"] == before.rows["jobs"]
        return
    assert created.status_code == 201, created.text
    _check_job(deployment, _job(deployment.db_url, created.json()["jobs"][0]["id"]), expect)


def _api_token(case: Case, expect: Expect, deployment: Deployment, url: str) -> None:
    # A valid image that was never stored: refused by the token check before it is read.
    data = makers.noise_image(20)
    before = snapshot(deployment, data)
    headers = {"Authorization": f"Bearer {case.token}"} if case.token else {}
    response = httpx.post(f"{url}/v1/assets", content=data, headers=headers, timeout=30)
    _refusal(response, expect)
    _nothing_new(deployment, before)
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{url}/v1/jobs", headers=right, timeout=30).status_code == 200


def _api_name(
    case: Case,
    expect: Expect,
    deployment: Deployment,
    api: TestClient,
    goods: Goods,
    path: Path | None,
    before: Snapshot,
) -> None:
    if case.urls:
        for url in case.urls:
            _refusal(api.get(url.format(content=goods.content_sha)), expect)
        return
    if case.filename is not None:
        assert path is not None
        name = case.filename
        response = _raw_multipart(api, name, path.read_bytes())
        assert response.status_code in (200, 201), response.text
        stored = deployment.storage.path(response.json()["sha256"])
        assert stored.read_bytes() == path.read_bytes()
        assert response.json()["label"] == name.replace("\x00", "")
        _not_written_by_name(name, deployment.storage.root, deployment.storage.tmp)
        return
    if path is not None:  # a label on the upload itself
        response = api.post("/v1/assets", params=case.body, content=path.read_bytes())
        _refusal(response, expect)
        _nothing_new(deployment, before)
        return
    _refusal(_post_json(api, "/v1/batches", _nst_body(goods, case)), expect)
    _nothing_new(deployment, before)


def _raw_multipart(api: TestClient, filename: str, data: bytes) -> httpx.Response:
    """A multipart body written by hand: the file name goes out byte for byte (clients would
    escape a NUL or strip the folders)."""
    boundary = "badinputboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return api.post(
        "/v1/assets",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
