"""With ATELIER_API_TOKEN set, everything but /healthz needs the token (header, or the gallery's
cookie for reads)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.http import session
from api.http.app import create_app
from api.http.brake import FailureBrake
from tests.api.conftest import png_bytes

TOKEN = "s3cret-token"


@pytest.fixture
def secured(api_settings):
    settings = api_settings.model_copy(update={"api_token": TOKEN})
    with TestClient(create_app(settings)) as client:
        yield client


GUARDED = [
    ("GET", "/v1/jobs"),
    ("GET", "/v1/batches"),
    ("GET", "/v1/batches/1"),
    ("GET", "/v1/batches/1/sheet.png"),
    ("GET", "/v1/jobs/1/losses?format=png"),
    ("POST", "/v1/jobs/1/cancel"),
    ("POST", "/v1/assets"),
    ("POST", "/v1/batches"),
    ("GET", "/v1/assets/" + "0" * 64 + "/content"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/static/gallery.js"),
]


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_no_token_is_401_and_a_wrong_one_403(secured, method, path):
    response = secured.request(method, path)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in response.json()["error"]
    wrong = secured.request(method, path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403, wrong.text


def test_the_right_token_opens_the_api(secured):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert secured.get("/v1/jobs", headers=auth).status_code == 200
    assert secured.get("/openapi.json", headers=auth).status_code == 200
    uploaded = secured.post("/v1/assets", content=png_bytes(), headers=auth)
    assert uploaded.status_code == 201, uploaded.text
    spec = secured.get("/openapi.json", headers=auth).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_health_is_open(secured):
    response = secured.get("/healthz")
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["disk"].startswith(("ok: ", "low: ")), found  # the test machine's own disk
    expected = "ok" if found["disk"].startswith("ok") else "low disk"
    assert found == {"status": expected, "database": "ok", "broker": "ok", "disk": found["disk"]}


def test_browser_login_sets_a_session_good_for_reading_only(secured):
    page = secured.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert "token" in secured.get("/login").text

    refused = secured.post("/login", data={"token": "nope"}, follow_redirects=False)
    assert refused.status_code == 403 and "wrong" in refused.text
    assert session.COOKIE not in secured.cookies

    accepted = secured.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert accepted.status_code == 303
    cookie = accepted.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert f"max-age={12 * 3600}" in cookie
    assert TOKEN not in accepted.headers["set-cookie"]  # a session, not the token
    assert secured.get("/").status_code == 200
    assert secured.get("/v1/jobs").status_code == 200
    # The cookie alone never authorizes a change: a foreign page could make the browser send it.
    assert secured.post("/v1/assets", content=png_bytes()).status_code == 401
    assert secured.post("/v1/jobs/1/cancel").status_code == 401

    secured.post("/logout")
    assert secured.get("/v1/jobs").status_code == 401


def test_a_session_is_signed_with_the_token_and_expires(secured):
    expired = session.issue(TOKEN, lifetime=-1)
    secured.cookies.set(session.COOKIE, expired)
    response = secured.get("/v1/jobs")
    assert response.status_code == 401 and "expired" in response.json()["error"]
    for forged in (
        session.issue("another-token", lifetime=3600),  # signed under another token
        session.issue(TOKEN, 3600).replace(".", "9.", 1),  # its expiry pushed later
        TOKEN,  # what the cookie used to hold
    ):
        secured.cookies.set(session.COOKIE, forged)
        response = secured.get("/v1/jobs")
        assert response.status_code == 403 and "not valid" in response.json()["error"], forged
    secured.cookies.set(session.COOKIE, session.issue(TOKEN, 3600))
    assert secured.get("/v1/jobs").status_code == 200


@pytest.fixture
def braked(api_settings):
    settings = api_settings.model_copy(update={"api_token": TOKEN, "auth_failures_per_minute": 3})
    app = create_app(settings)
    with (
        TestClient(app, client=("192.0.2.1", 50000)) as guesser,
        TestClient(app, client=("192.0.2.2", 50000)) as other,
    ):
        yield guesser, other


def test_wrong_bearer_tokens_are_braked_per_client(braked):
    guesser, other = braked
    right = {"Authorization": f"Bearer {TOKEN}"}
    for guess in range(3):
        wrong = {"Authorization": f"Bearer guess-{guess}"}
        assert guesser.get("/v1/jobs", headers=wrong).status_code == 403
    braked_answer = guesser.get("/v1/jobs", headers={"Authorization": "Bearer guess-4"})
    assert braked_answer.status_code == 429
    assert 1 <= int(braked_answer.headers["retry-after"]) <= 60
    assert "too many wrong tokens" in braked_answer.json()["error"]
    # Even the right token waits: a guess that is right must not work at once.
    assert guesser.get("/v1/jobs", headers=right).status_code == 429
    assert other.get("/v1/jobs", headers=right).status_code == 200  # others are not affected


def test_wrong_logins_are_braked_too(braked):
    guesser, _ = braked
    for guess in range(3):
        refused = guesser.post("/login", data={"token": f"guess-{guess}"}, follow_redirects=False)
        assert refused.status_code == 403
    braked_answer = guesser.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert braked_answer.status_code == 429 and "try again in" in braked_answer.text
    assert int(braked_answer.headers["retry-after"]) >= 1
    assert session.COOKIE not in guesser.cookies
    header = guesser.get("/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert header.status_code == 429  # one brake for the form and the header


def test_the_brake_forgets_failures_older_than_its_window():
    now = [1000.0]
    brake = FailureBrake(limit=2, window=60, clock=lambda: now[0])
    brake.failed("a")
    now[0] += 30
    brake.failed("a")
    assert brake.retry_after("a") == 30  # the first failure leaves the window in 30 s
    assert brake.retry_after("b") is None
    now[0] += 30
    assert brake.retry_after("a") is None  # the first one has left: one failure in the window
    brake.failed("a")
    assert brake.retry_after("a") == 30  # two again, the older from 30 s ago


def test_without_a_token_setting_everything_is_open(client):
    assert client.get("/v1/jobs").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/login", follow_redirects=False).status_code == 303
