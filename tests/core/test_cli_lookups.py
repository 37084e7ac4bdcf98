"""A mistyped job or batch id gets a one-line answer and a non-zero exit, not a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.procs import ATELIER, atelier_env


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["status", "--job", "999"], 1, "no job 999"),
        (["status", "--batch", "999"], 1, "no batch 999"),
        (["results", "999", "--out", "x"], 1, "no batch 999"),
        (["losses", "999"], 2, "no job 999"),
    ],
)
def test_unknown_ids(tmp_path: Path, args: list[str], code: int, message: str):
    done = subprocess.run(
        [*ATELIER, *args],
        env=atelier_env({"ATELIER_DATA_DIR": str(tmp_path / "data")}),
        capture_output=True,
        text=True,
        cwd=tmp_path,  # where a relative --out would be created
        timeout=120,
    )
    assert done.returncode == code, done.stderr
    assert message in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()
