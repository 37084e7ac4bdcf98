"""What `status`, `results` and `losses` print: whole columns, and JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from api.cli.main import app
from atelier.batches import create_nst_batch, ingest_image
from atelier.db import migrate, session_scope
from atelier.models import Asset, Job, JobState, LossRecord
from atelier.schemas import NSTParams
from atelier.settings import get_settings

runner = CliRunner()
LABEL = "a batch label long enough to be cut " * 4
ERROR = "the input image is far too small for the layers asked for, " * 3


@pytest.fixture
def batch(atelier_env: dict[str, str], tmp_path: Path) -> dict[str, int]:
    """A 1 x 2 batch with a long label: job 1 failed with a long message, job 2 has losses."""
    settings = get_settings()
    migrate(settings.resolved_database_url)
    shas = []
    for seed in range(3):
        path = tmp_path / f"image{seed}.png"
        pixels = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        with session_scope(settings.resolved_database_url) as session:
            shas.append(ingest_image(session, settings, path).sha256)
    plan = create_nst_batch(settings, shas[:1], shas[1:], NSTParams(size=32), label=LABEL)
    failed, other = plan.job_ids
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(Job, failed)
        assert job is not None
        job.state, job.error = JobState.FAILED, ERROR
        for i in (1, 2):
            row = LossRecord(job_id=other, iteration=i, total=10 / i, content=1, style=2, tv=3)
            session.add(row)
    return {"batch": plan.batch_id, "failed": failed, "other": other}


def _run(*args: str, columns: int | None = None) -> str:
    env = {"COLUMNS": str(columns)} if columns else {}
    done = runner.invoke(app, list(args), env=env)
    assert done.exit_code in (0, 1), done.output
    return done.stdout


@pytest.mark.parametrize("columns", [None, 300])  # into a pipe; a wide terminal
def test_status_shows_whole_columns(batch: dict[str, int], columns: int | None):
    listing = _run("status", columns=columns)
    assert any(LABEL.strip() in line for line in listing.splitlines()), listing
    jobs = _run("status", "--batch", str(batch["batch"]), columns=columns)
    assert any(ERROR.strip() in line for line in jobs.splitlines()), jobs


def test_status_results_and_losses_as_json(batch: dict[str, int], tmp_path: Path):
    page = json.loads(_run("status", "--json"))
    assert page["total"] == 1 and page["items"][0]["label"] == LABEL
    one = json.loads(_run("status", "--batch", str(batch["batch"]), "--json"))
    assert [j["id"] for j in one["jobs"]] == [batch["failed"], batch["other"]]
    assert one["jobs"][0]["error"] == ERROR
    job = json.loads(_run("status", "--job", str(batch["other"]), "--json"))
    assert job["id"] == batch["other"] and job["state"] == "queued"

    losses = json.loads(_run("losses", str(batch["other"]), "--json"))
    assert losses == [
        {"iteration": 1, "total": 10.0, "content": 1.0, "style": 2.0, "tv": 3.0},
        {"iteration": 2, "total": 5.0, "content": 1.0, "style": 2.0, "tv": 3.0},
    ]

    args = ["results", str(batch["batch"]), "--out", str(tmp_path / "r"), "--json"]
    done = runner.invoke(app, args)
    assert done.exit_code == 1  # a job failed
    written = json.loads(done.stdout)
    assert written["batch"] == batch["batch"] and written["finished"] is False
    assert [(j["job"], j["state"], j["file"]) for j in written["jobs"]] == [
        (batch["failed"], "failed", None),
        (batch["other"], "queued", None),
    ]
    assert written["jobs"][0]["error"] == ERROR
    assert Path(written["sheet"]).is_file()


def test_a_fast_job_has_no_loss_files_and_losses_says_why(batch: dict[str, int], tmp_path: Path):
    settings = get_settings()
    with session_scope(settings.resolved_database_url) as session:
        gatys = session.get(Job, batch["other"])
        assert gatys is not None
        content, style = gatys.inputs["content"], gatys.inputs["styles"][0]
    plan = create_nst_batch(settings, [content], [style], NSTParams(engine="fast", size=32))
    (fast,) = plan.job_ids
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(Job, fast)
        assert job is not None
        job.state = JobState.SUCCEEDED
        job.result_asset_id = session.scalars(select(Asset.id).where(Asset.sha256 == content)).one()
    out = tmp_path / "results"
    done = runner.invoke(app, ["results", str(plan.batch_id), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert sorted(p.suffix for p in out.iterdir()) == [".json", ".png", ".png"]  # image, sheet
    csv, plot = tmp_path / "fast.csv", tmp_path / "fast.png"
    said = runner.invoke(app, ["losses", str(fast), "--csv", str(csv), "--plot", str(plot)])
    assert said.exit_code == 1
    reason = f"job {fast} uses the fast engine, which optimises nothing: it has no loss history"
    assert reason in " ".join(said.output.split())
    assert not csv.exists() and not plot.exists()
