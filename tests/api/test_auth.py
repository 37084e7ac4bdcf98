"""With ATELIER_API_TOKEN set, everything but /healthz needs the token (header, or the gallery's
cookie for reads)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
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
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_browser_login_sets_a_cookie_good_for_reading_only(secured):
    page = secured.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert "token" in secured.get("/login").text

    refused = secured.post("/login", data={"token": "nope"}, follow_redirects=False)
    assert refused.status_code == 403 and "wrong" in refused.text
    assert "atelier_token" not in secured.cookies

    accepted = secured.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert accepted.status_code == 303
    cookie = accepted.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert secured.get("/").status_code == 200
    assert secured.get("/v1/jobs").status_code == 200
    # The cookie alone never authorizes a change: a foreign page could make the browser send it.
    assert secured.post("/v1/assets", content=png_bytes()).status_code == 401
    assert secured.post("/v1/jobs/1/cancel").status_code == 401

    secured.post("/logout")
    assert secured.get("/v1/jobs").status_code == 401


def test_without_a_token_setting_everything_is_open(client):
    assert client.get("/v1/jobs").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/login", follow_redirects=False).status_code == 303
