"""`atelier demo` (what `make demo` runs) in the embedded default: no broker, no server, SQLite."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from atelier.weights import WEIGHTS_FILE
from tests.support.procs import ATELIER, REPO, atelier_env
from tests.support.servers import free_port

pytestmark = pytest.mark.slow

CONTENTS = sorted(p.stem for p in (REPO / "samples" / "content").iterdir())
STYLES = sorted(p.stem for p in (REPO / "samples" / "style").iterdir())


def test_demo_stylizes_the_bundled_samples_with_no_server(tmp_path: Path):
    """Nothing set, no weights here and none to be had (Keras' URL and the package index both
    unreachable): the demo says so and runs on random weights."""
    out = tmp_path / "out"
    (tmp_path / "no-links").mkdir()
    offline = {
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
        "KERAS_HOME": str(tmp_path / "keras"),
        "ATELIER_VGG_WEIGHTS_URL": f"http://127.0.0.1:{free_port()}/{WEIGHTS_FILE}",
        "PIP_INDEX_URL": "http://127.0.0.1:9/",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(tmp_path / "no-links"),
    }
    env = atelier_env(offline)
    env.pop("TF_CPP_MIN_LOG_LEVEL")  # as a new user runs it: nothing set
    args = ["--out", str(out), "--size", "32", "--iterations", "3", "--fast-size", "40"]
    done = subprocess.run(
        [*ATELIER, "demo", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,  # nothing from the repository's working directory is needed
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert len(CONTENTS) * len(STYLES) == 6
    for content in CONTENTS:
        for style in STYLES:
            with Image.open(out / f"{content}__{style}.png") as result:
                assert max(result.size) == 32
            assert (out / f"{content}__{style}.loss.png").is_file()
            with Image.open(out / "fast" / f"{content}__{style}.png") as painted:
                assert max(painted.size) == 40  # the fast engine's grid, beside Gatys's
    assert (out / "sheet.png").is_file() and (out / "fast" / "sheet.png").is_file()
    said = " ".join((done.stdout + done.stderr).split())
    assert "random VGG19: tests the pipeline" in said and "real paintings" in said
    assert "neither Keras' URL nor the package index could provide them" in said
    assert not (tmp_path / "keras" / "models" / WEIGHTS_FILE).exists()
    assert str(out) in done.stdout + done.stderr  # it says where the results are
    # Nothing on the terminal looks like an error: TensorFlow's and absl's start-up lines
    # (`E0000 … failed call to cuInit` on a machine without a GPU) are in a file instead, and
    # one line of our own says where the jobs ran.
    terminal = done.stdout + done.stderr
    for alarming in ("error", "fail", "warning", "traceback", "cuinit", "absl"):
        assert alarming not in terminal.lower(), terminal
    assert not re.search(r"^[EWIF]\d{4} ", terminal, re.MULTILINE), terminal
    assert re.search(r"style transfer on (CPU|GPU:0 .+), VGG19 weights none", terminal)
    assert (tmp_path / "data" / "logs" / "native.log").is_file()
    database = tmp_path / "data" / "atelier.sqlite3"
    with sqlite3.connect(database) as db:
        states = db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        rows = db.execute("SELECT count(*) FROM loss_history").fetchone()[0]
    assert states == [("succeeded", 12)]
    assert rows == 6 * 3  # the fast engine optimises nothing, it has no loss history
    assert not (tmp_path / "data" / "broker").exists() or not any(
        (tmp_path / "data" / "broker").rglob("*.msg")
    )  # every message was consumed
