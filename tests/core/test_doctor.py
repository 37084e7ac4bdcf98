"""`atelier doctor` on a broken configuration, and `atelier --version` (a healthy deployment,
workers and all, is checked in tests/deploy/test_queues_consumed.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli.main import app
from atelier import __version__
from atelier import settings as settings_module

runner = CliRunner()


def test_version():
    done = runner.invoke(app, ["--version"])
    assert done.exit_code == 0 and done.output.strip() == f"atelier {__version__}"


def test_doctor_says_what_is_broken_and_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ATELIER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ATELIER_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    monkeypatch.setenv("ATELIER_VGG_WEIGHTS", str(tmp_path / "missing.h5"))
    monkeypatch.setenv("ATELIER_FACE_MODEL", str(tmp_path / "yunet.onnx"))
    monkeypatch.delenv("ATELIER_DATABASE_URL", raising=False)
    settings_module.get_settings.cache_clear()
    try:
        done = runner.invoke(app, ["doctor", "--no-gpu"])
    finally:
        settings_module.get_settings.cache_clear()
    assert done.exit_code == 1, done.output
    lines = done.output.splitlines()

    def finding(name: str) -> tuple[str, str]:
        index = next(i for i, line in enumerate(lines) if f" {name}: " in line)
        fix = lines[index + 1] if index + 1 < len(lines) else ""
        return lines[index], fix.strip() if fix.strip().startswith("fix:") else ""

    broker, fix = finding("broker")
    assert broker.startswith("FAIL") and "cannot reach redis://127.0.0.1:1/0" in broker
    assert "start Redis" in fix and "ATELIER_BROKER_URL" in fix
    weights, fix = finding("VGG19 weights")
    assert weights.startswith("FAIL") and "missing.h5 does not exist" in weights
    assert "ATELIER_VGG_WEIGHTS=" in fix
    face, fix = finding("face model")
    assert face.startswith("FAIL") and "YuNet" in fix
    database, fix = finding("database")  # the embedded SQLite default, not created yet
    assert database.startswith("warn") and "sqlite" in database and "revision none" in database
    assert "atelier migrate" in fix
    assert not any(" GPU: " in line for line in lines)  # --no-gpu
