"""Quality floors on the labelled face set (tests/data/labels): the share of labelled faces the
output hides, and false boxes, scored as bench/faces.py scores them (`tests.support.faces`).
Floors, never timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from atelier.schemas import VideoParams
from tests.support.faces import CLIPS, frame_shape, load_labels, score_run
from workers.video.pipeline import process_video


def run(clip: str, tmp_path: Path, **options: object):
    params = VideoParams(filter="solid", keep_audio=False, **options)
    stats = process_video(CLIPS[clip], tmp_path / f"{clip}.mp4", params)
    return stats, score_run(clip, stats.faces, frame_shape(CLIPS[clip]), params)


def test_the_labels_are_those_the_clips_have() -> None:
    closeup, chaplin = load_labels("closeup"), load_labels("chaplin")
    assert sorted(closeup) == list(range(90)) and all(len(f) == 1 for f in closeup.values())
    assert sorted(chaplin) == list(range(0, 241, 10))
    assert sum(map(len, chaplin.values())) == 41


def test_every_face_of_the_closeup_clip_is_hidden(tmp_path: Path) -> None:
    """Turned up to 28 degrees, 44 to 104 px, panned, and with the lower face hidden behind a
    bar for 20 frames: the default hides it on at least 98% of the frames, with hardly a false
    box; the Haar cascade, the former default, does worse on the same clip (the tracker's
    searches between keyframes, on crops where the cascade sees smaller faces, make up part of
    what it misses on whole frames)."""
    _, default = run("closeup", tmp_path)
    assert default.recall >= 0.98
    assert default.false_per_frame <= 0.05
    _, haar = run("closeup", tmp_path, detector="haar")
    assert haar.recall < default.recall


def test_detecting_every_fifth_frame_keeps_the_closeup_hidden(tmp_path: Path) -> None:
    _, every5 = run("closeup", tmp_path, detect_every=5)
    assert every5.recall >= 0.95


@pytest.mark.slow
def test_chaplin_faces_small_and_turned_are_mostly_hidden(tmp_path: Path) -> None:
    """Two men, faces 20-45 px tall in 640x360, often in profile or under a hat brim. The floors
    are near what the default reaches today (bench/faces.py has the figures: Haar hides under
    half of these faces, BlazeFace about four in five, with 0.6 and 1.4 false boxes a frame)."""
    stats, default = run("chaplin", tmp_path)
    assert default.recall >= 0.9
    assert default.false_per_frame <= 0.4
    assert stats.tracked > 0
