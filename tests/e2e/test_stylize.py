"""`atelier stylize` end to end: CLI -> Redis -> worker process -> PostgreSQL and storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from atelier.db import session_scope
from atelier.models import Job, JobState, LossRecord
from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.slow
ITERATIONS = 6


def test_grid_through_a_real_worker(deployment: Deployment, tiny_images: dict[str, Path], tmp_path):
    out = tmp_path / "out"
    done = deployment.atelier(
        "stylize", str(tiny_images["tubingen"]), str(tiny_images["golden_gate"]),
        "--style", str(tiny_images["starry"]), "--style", str(tiny_images["wave"]),
        "--out", str(out), "--size", "32", "--iterations", str(ITERATIONS),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for content in ("tubingen", "golden_gate"):
        for style in ("starry", "wave"):
            with Image.open(out / f"{content}__{style}.png") as result:
                assert max(result.size) == 32
            assert (out / f"{content}__{style}.loss.png").stat().st_size > 1000
            csv = (out / f"{content}__{style}.losses.csv").read_text().splitlines()
            assert csv[0] == "iteration,total,content,style,tv" and len(csv) == ITERATIONS + 1
    with Image.open(out / "sheet.png") as sheet:
        board = np.asarray(sheet.convert("L"), dtype=np.float32)
    # A 3x3 board: a blank corner, the styles across the top, the contents down the side, results.
    cell, gap = 160, 4
    assert board.shape == (3 * cell + 2 * gap,) * 2

    def at(r: int, c: int) -> np.ndarray:
        return board[r * (cell + gap) : r * (cell + gap) + cell, c * (cell + gap) :][:, :cell]

    spread = [[at(r, c).std() for c in range(3)] for r in range(3)]
    assert spread[0][0] < 1 and all(spread[r][c] > 5 for r in range(3) for c in range(3) if r or c)
    with session_scope(deployment.db_url) as s:
        jobs = s.scalars(select(Job).where(Job.kind == "nst")).all()
        assert [j.state for j in jobs] == [JobState.SUCCEEDED] * 4
        assert all(j.meta["random_weights"] and j.attempts == 1 for j in jobs)
        for job in jobs:
            iterations = s.scalars(
                select(LossRecord.iteration).where(LossRecord.job_id == job.id)
            ).all()
            assert sorted(iterations) == list(range(1, ITERATIONS + 1))
    assert "not real stylizations" in done.stderr


def test_identical_grid_is_reused_not_recomputed(
    deployment: Deployment, tiny_images: dict[str, Path], tmp_path
):
    args = [
        "stylize", str(tiny_images["tubingen"]), "--style", str(tiny_images["starry"]),
        "--size", "32", "--iterations", "3", "--seed", "7",
    ]  # fmt: skip
    first = deployment.atelier(*args, "--out", str(tmp_path / "a"))
    second = deployment.atelier(*args, "--out", str(tmp_path / "b"))
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "1 reused" in second.stderr
    a = (tmp_path / "a" / "tubingen__starry.png").read_bytes()
    assert (tmp_path / "b" / "tubingen__starry.png").read_bytes() == a
    with session_scope(deployment.db_url) as s:
        reused = s.scalars(select(Job).where(Job.reused_from_id.is_not(None))).all()
        assert len(reused) == 1 and reused[0].attempts == 0

    # a grid over the style weight: the default weight's cell is the run above, reused
    grid = deployment.atelier(*args, "--style-weight", "100,1000", "--out", str(tmp_path / "c"))
    assert grid.returncode == 0, grid.stderr
    assert "2 job(s), 1 reused" in grid.stderr
    assert (tmp_path / "c" / "tubingen__starry__sw100.png").read_bytes() == a
    assert (tmp_path / "c" / "tubingen__starry__sw1000.png").read_bytes() != a


def test_bad_weights_file_fails_the_job_with_instructions(
    deployment: Deployment, tiny_images: dict[str, Path], tmp_path
):
    done = deployment.atelier(
        "stylize", str(tiny_images["golden_gate"]), "--style", str(tiny_images["wave"]),
        "--size", "32", "--iterations", "2", "--weights", "/nowhere/vgg19.h5",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert done.returncode == 1
    with session_scope(deployment.db_url) as s:
        job = s.scalars(select(Job).order_by(Job.id.desc())).first()
    assert job.state == JobState.FAILED and job.attempts == 1
    assert "ATELIER_VGG_WEIGHTS" in job.error


def test_bad_parameters_are_refused_before_any_job(deployment: Deployment, tiny_images, tmp_path):
    with session_scope(deployment.db_url) as s:
        before = s.scalar(select(func.count()).select_from(Job))
    done = deployment.atelier(
        "stylize", str(tiny_images["tubingen"]), "--style", str(tiny_images["wave"]),
        "--iterations", "-3", "--style-weight", "nan", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 2
    assert "--iterations" in done.stderr and "--style-weight" in done.stderr
    with session_scope(deployment.db_url) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == before
