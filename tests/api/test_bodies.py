"""Request bodies are bounded before and while they arrive, on every route, with a token or
without: a real `atelier api` process is sent the start of a huge body and must answer at once,
without waiting for the rest, and close the connection rather than drain it. A client that goes
away mid-upload leaves no scratch file and no traceback in the log."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.conftest import png_bytes
from tests.support.load import serve
from tests.support.procs import ATELIER, REPO, atelier_env
from tests.support.services import fresh_postgres_database, fresh_redis_db

TOKEN = "bodies-test-token"
MAX_REQUEST_BYTES = 64 * 1024
HUGE = 200 * 1024 * 1024
ANSWER_WITHIN = 20  # seconds: a server still waiting for the rest of the body never answers


@dataclass(frozen=True)
class Server:
    address: tuple[str, int]
    log: Path
    scratch: Path


@pytest.fixture(scope="module")
def api() -> Iterator[Server]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_postgres_database() as db,
        fresh_redis_db() as broker,
    ):
        env = {
            "ATELIER_DATABASE_URL": db,
            "ATELIER_BROKER_URL": broker,
            "ATELIER_DATA_DIR": str(Path(tmp) / "data"),
            "ATELIER_API_TOKEN": TOKEN,
            "ATELIER_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
            "ATELIER_MAX_UPLOAD_BYTES": str(1024 * 1024),
        }
        with serve(env, Path(tmp) / "api.log") as base:
            host, port = base.removeprefix("http://").rsplit(":", 1)
            scratch = Path(tmp) / "data" / "storage" / "tmp"
            yield Server((host, int(port)), Path(tmp) / "api.log", scratch)


@pytest.fixture
def server(api: Server) -> tuple[str, int]:
    return api.address


def _answer(server: tuple[str, int], head: list[str], sent: bytes) -> tuple[int, dict[str, str]]:
    """Send the request line and headers, then `sent` (the start of the body only), and read
    the answer's status and headers; the server must also close the connection after it."""
    with socket.create_connection(server, timeout=ANSWER_WITHIN) as sock:
        sock.sendall(("\r\n".join([*head, "", ""])).encode() + sent)
        raw = b""
        while chunk := sock.recv(65536):  # until the server closes the connection
            raw += chunk
    status_line, *lines = raw.partition(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}


def _chunked(data: bytes, size: int = 8192) -> bytes:
    """`data` as HTTP chunks, without the final empty chunk: the body goes on."""
    parts = (data[i : i + size] for i in range(0, len(data), size))
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts)


def _post(path: str, *headers: str) -> list[str]:
    return [f"POST {path} HTTP/1.1", "Host: test", *headers]


def test_a_huge_login_form_is_refused_before_it_is_received(server):
    form = "Content-Type: multipart/form-data; boundary=x"
    status, headers = _answer(server, _post("/login", form, f"Content-Length: {HUGE}"), b"--x")
    assert status == 413 and headers["connection"] == "close"
    # Without a declared length, it is counted as it streams and refused past the limit.
    body = _chunked(b"--x\r\n" + b"a" * (MAX_REQUEST_BYTES + 1))
    status, headers = _answer(server, _post("/login", form, "Transfer-Encoding: chunked"), body)
    assert status == 413 and headers["connection"] == "close"


def test_a_json_body_is_refused_as_soon_as_it_passes_the_limit(server):
    auth = f"Authorization: Bearer {TOKEN}"
    json = "Content-Type: application/json"
    start = b'{"content": ["' + b"a" * (MAX_REQUEST_BYTES + 1)
    head = _post("/v1/batches", auth, json, "Transfer-Encoding: chunked")
    status, headers = _answer(server, head, _chunked(start))
    assert status == 413 and headers["connection"] == "close"
    head = _post("/v1/batches", auth, json, f"Content-Length: {HUGE}")
    assert _answer(server, head, start[:1000])[0] == 413


def test_an_upload_with_a_wrong_token_is_refused_before_its_body_is_read(server):
    head = _post("/v1/assets", "Authorization: Bearer wrong", f"Content-Length: {1024 * 1024}")
    status, headers = _answer(server, head, b"")  # not a byte of the body sent
    assert status == 403 and headers["connection"] == "close"
    status, headers = _answer(server, _post("/v1/assets", "Content-Length: 100"), b"")
    assert status == 401 and headers["connection"] == "close"


def test_a_client_gone_mid_upload_leaves_no_scratch_and_no_traceback(api: Server):
    head = _post("/v1/assets", f"Authorization: Bearer {TOKEN}", "Content-Length: 900000")
    with socket.create_connection(api.address, timeout=ANSWER_WITHIN) as sock:
        sock.sendall(("\r\n".join([*head, "", ""])).encode() + b"\x89PNG\r\n\x1a\n" * 20000)
        deadline = time.monotonic() + ANSWER_WITHIN
        while not any(api.scratch.glob("upload-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(api.scratch.glob("upload-*")), "the upload never started"
    # The connection is gone with 740 kB of the body still to come.
    deadline = time.monotonic() + ANSWER_WITHIN
    while any(api.scratch.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(api.scratch.iterdir())
    time.sleep(0.5)  # whatever the server logs about it is written by now
    log = api.log.read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]


def test_submit_checks_the_token_before_it_uploads(api: Server, tmp_path: Path):
    picture = tmp_path / "photo.png"
    picture.write_bytes(png_bytes(64, 64))
    url = f"http://{api.address[0]}:{api.address[1]}"
    done = subprocess.run(
        [*ATELIER, "submit", str(picture), "--style", str(picture), "--api", url,
         "--token", "wrong", "--no-wait"],
        env={**atelier_env({}), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "GET /v1/batches: 403 the bearer token is wrong" in done.stderr
    assert "/v1/assets" not in done.stderr + done.stdout
