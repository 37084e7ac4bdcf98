"""Video job parameters: what --filter means on a board, and combinations refused up front."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from atelier.schemas import VideoParams
from tests.support.procs import ATELIER, atelier_env


def test_filter_is_the_first_filtered_panel_of_a_board() -> None:
    assert VideoParams(layout="2x2", filter="blur").panel_filters() == (
        "original",
        "blur",
        "cartoon",
        "sketch",
    )
    assert VideoParams(layout="1x2", filter="edges").panel_filters() == ("original", "edges")
    assert VideoParams().panel_filters() == ("pixelate",)


def test_filter_and_filters_together_are_refused() -> None:
    """Before, --filter was silently dropped when --filters listed the panels."""
    with pytest.raises(ValidationError, match="`filter` and `filters` both name the panels"):
        VideoParams(layout="2x2", filter="blur", filters=("pixelate", "cartoon", "sketch"))


def test_profile_is_refused_where_it_would_do_nothing() -> None:
    with pytest.raises(ValidationError, match="applies to the haar detector only"):
        VideoParams(profile=True)
    assert VideoParams(profile=True, detector="haar").profile


def test_stored_params_validate_again() -> None:
    """A job's parameters are stored dumped and validated again by the worker."""
    for params in (
        VideoParams(layout="2x2", filters=("blur", "cartoon", "sketch")),
        VideoParams(layout="2x2", filter="solid"),
        VideoParams(filter="blur", detector="haar"),
    ):
        again = VideoParams.model_validate(params.model_dump(mode="json"))
        assert again == params and again.panel_filters() == params.panel_filters()


def test_the_cli_refuses_filter_with_filters_before_any_job(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"never read")
    done = subprocess.run(
        [
            *(*ATELIER, "video", str(clip), "--out", str(tmp_path / "o.mp4"), "--layout", "2x2"),
            *("--filter", "blur", "--filters", "pixelate,cartoon,sketch"),
        ],
        env=atelier_env({"ATELIER_DATA_DIR": str(tmp_path / "data")}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "both name the panels" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o.mp4").exists()
