"""Video job parameters: what --filter means on a board, and combinations refused up front."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from atelier.schemas import ANONYMISING_FILTERS, VideoParams
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


def test_boards_of_any_shape_take_one_filter_a_panel() -> None:
    """The first filtered panel defaults to an anonymising filter, the others to effects."""
    board = VideoParams(layout="2x3")
    assert board.panel_filters() == ("original", "pixelate", "cartoon", "sketch", "blur", "edges")
    assert board.panel_filters()[1] in ANONYMISING_FILTERS
    assert VideoParams(layout="3x1", filter="solid").panel_filters() == (
        "original",
        "solid",
        "cartoon",
    )
    assert VideoParams(layout="1x3", filters=("blur", "sketch")).panel_filters() == (
        "original",
        "blur",
        "sketch",
    )
    with pytest.raises(ValidationError, match="layout 1x3 takes 2 extra filter"):
        VideoParams(layout="1x3", filters=("blur",))
    with pytest.raises(ValidationError, match="1 to 4 rows by 1 to 4 columns"):
        VideoParams(layout="5x1")


def test_help_and_schema_say_which_filters_anonymise() -> None:
    schema = VideoParams.model_json_schema()["properties"]
    for text in (schema["filter"]["description"], schema["filters"]["description"]):
        assert "blur, pixelate, solid anonymise" in text
        assert "keep a face recognisable" in text
    assert set(ANONYMISING_FILTERS) == {"blur", "pixelate", "solid"}
