"""`atelier api` is never open to a network by accident: without a token it serves on loopback
only, and an open API on another address must be asked for by name."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.procs import ATELIER, REPO, atelier_env, atelier_process
from tests.support.servers import free_port


def test_a_non_loopback_bind_without_a_token_is_refused_with_the_reason(tmp_path: Path):
    env = {"ATELIER_DATA_DIR": str(tmp_path / "data")}
    refused = subprocess.run(
        [*ATELIER, "api", "--host", "0.0.0.0", "--port", str(free_port())],
        env=atelier_env(env),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert refused.returncode == 2, refused.stderr
    said = " ".join(refused.stderr.split())
    assert "refusing to serve on 0.0.0.0 without a token" in said
    assert "--insecure-no-auth" in said
    assert not (tmp_path / "data").exists()  # refused before anything was set up


@pytest.mark.slow
def test_insecure_no_auth_serves_an_open_api_and_says_so(tmp_path: Path):
    port = free_port()
    env = {"ATELIER_DATA_DIR": str(tmp_path / "data")}
    args = ["api", "--host", "0.0.0.0", "--port", str(port), "--insecure-no-auth"]
    with atelier_process(args, env, tmp_path / "api.log", ready="startup complete"):
        assert httpx.get(f"http://127.0.0.1:{port}/v1/jobs", timeout=10).status_code == 200
    said = " ".join((tmp_path / "api.log").read_text().split())  # the console wraps lines
    assert "no token: open to anyone who can reach it" in said
