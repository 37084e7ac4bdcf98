"""The API on a full disk (a real `ENOSPC`: a tmpfs of its own, filled up, in a user and mount
namespace, `tests/support/small_disk.py`): an upload that cannot be stored answers 507 with
`Retry-After`, not 500, and `/healthz` says the disk is low while the database and the broker
still answer (200). `atelier doctor` fails its disk check under ATELIER_MIN_FREE_DISK_MB."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.load import serve
from tests.support.procs import ATELIER, REPO, atelier_env
from tests.support.services import deployment_env
from tests.support.small_disk import namespaces_work, on_small_disk


def test_an_upload_to_a_full_disk_answers_507_and_healthz_says_the_disk_is_low(
    tmp_path: Path, squares: list[Path]
):
    if not namespaces_work(tmp_path / "probe"):
        pytest.skip("unprivileged user namespaces (unshare --user --mount) are not available")
    with deployment_env(tmp_path) as env:
        _upload_to_a_full_disk(tmp_path, env, squares[0])
    assert "Traceback" not in (tmp_path / "api.log").read_text()


def _upload_to_a_full_disk(tmp_path: Path, env: dict[str, str], image: Path) -> None:
    prefix = on_small_disk(Path(env["ATELIER_DATA_DIR"]), 1, tmp_path / "disk", full=True)
    with serve(env, tmp_path / "api.log", prefix=prefix) as base:
        health = httpx.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "low disk", health.text
        assert health.json()["disk"].startswith("low: 0 MiB free"), health.text
        sent = httpx.post(
            f"{base}/v1/assets",
            content=image.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
        assert sent.status_code == 507, sent.text
        assert int(sent.headers["Retry-After"]) > 0
        assert "disk is full" in sent.json()["error"], sent.text


def _doctor_disk(tmp_path: Path, minimum_mb: int) -> dict:
    env = atelier_env(
        {
            "ATELIER_DATA_DIR": str(tmp_path / "data"),
            "ATELIER_VGG_WEIGHTS": "none",
            "ATELIER_MIN_FREE_DISK_MB": str(minimum_mb),
        }
    )
    done = subprocess.run(
        [*ATELIER, "doctor", "--no-gpu", "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = json.loads(done.stdout)
    checks = found["checks"] if isinstance(found, dict) else found
    return next(check for check in checks if check["name"] == "disk")


def test_doctor_fails_its_disk_check_under_the_minimum(tmp_path: Path):
    """The real free space of the test's disk, against a minimum above any disk and one of 0."""
    under = _doctor_disk(tmp_path, 1 << 30)
    assert under["status"] == "FAIL" and "under ATELIER_MIN_FREE_DISK_MB" in under["detail"]
    assert _doctor_disk(tmp_path, 0)["status"] != "FAIL"
