"""The `painting` face filter (fast style transfer, real Magenta models) and the filter rename."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from atelier.schemas import VideoParams
from tests.conftest import TEST_DATA
from tests.video.media import FaceVideo
from tests.video.test_video_pipeline import CODEC_TOLERANCE, Decode, roi_masks
from workers.video.detect import Box
from workers.video.filters import apply_filter, pad_box
from workers.video.painting import Painter
from workers.video.pipeline import process_video

STARRY = TEST_DATA / "style" / "starry_night.jpg"
SHA = "ab" * 32


@pytest.fixture(scope="module")
def painter() -> Painter:
    return Painter(STARRY)


def test_painting_changes_the_face_regions_and_nothing_else(
    painter: Painter, face_photo: np.ndarray
):
    frame = np.ascontiguousarray(face_photo)
    faces = [Box(30, 25, 60, 60), Box(5, 110, 24, 24)]
    before = frame.copy()
    out = apply_filter(frame, faces, "painting", padding=0.2, painter=painter)
    assert np.array_equal(frame, before)
    _, away = roi_masks(frame.shape, faces, 0.2, margin=0)
    assert np.array_equal(out[away], frame[away])
    for box in faces:
        x0, y0, x1, y1 = pad_box(box, 0.2, frame.shape[1], frame.shape[0])
        assert np.abs(out[y0:y1, x0:x1].astype(int) - frame[y0:y1, x0:x1]).mean() > 15, box


def test_painting_without_a_painter_is_refused(face_photo: np.ndarray):
    with pytest.raises(ValueError, match="needs a painter"):
        apply_filter(face_photo, [Box(0, 0, 10, 10)], "painting")


def test_a_board_panel_paints_faces_and_whole_frames_with_the_flag(
    face_video: FaceVideo, tmp_path: Path, decode: Decode
):
    params = VideoParams(
        layout="2x2", filters=("blur", "painting", "painting"), style=SHA, keep_audio=False
    )
    stats = process_video(
        face_video.path, tmp_path / "board.mp4", params, end_frame=4, style_path=STARRY
    )
    source = decode(face_video.path)[:4]
    boards = decode(tmp_path / "board.mp4")
    frames = VideoParams(layout="1x1", filter="painting", style=SHA, painting_frames=True)
    whole = process_video(
        face_video.path, tmp_path / "whole.mp4", frames, end_frame=4, style_path=STARRY
    )
    painted = decode(tmp_path / "whole.mp4")
    assert stats.frames == whole.frames == 4
    for boxes, before, board, full in zip(stats.faces, source, boards, painted, strict=True):
        assert boxes, "the synthetic face is found in every frame"
        faces_panel = board[240:, :320].astype(int)  # bottom left: painting on faces
        inside, away = roi_masks(before.shape, boxes, params.padding, margin=8)
        assert np.abs(faces_panel - before)[away].mean() < CODEC_TOLERANCE
        assert np.abs(faces_panel - before)[inside].mean() > 5 * CODEC_TOLERANCE
        assert np.abs(full.astype(int) - before)[away].mean() > 5 * CODEC_TOLERANCE


def test_painting_needs_a_style_and_stylize_is_watercolor():
    with pytest.raises(ValidationError, match="painting filter needs a painting"):
        VideoParams(filter="painting")
    with pytest.raises(ValidationError, match="painting filter needs a painting"):
        VideoParams(layout="1x2", filters=("painting",))
    assert VideoParams(filter="stylize").filter == "watercolor"
    assert VideoParams(layout="1x2", filters=("stylize",)).filters == ("watercolor",)
    with pytest.raises(ValidationError):
        VideoParams(filter="painting", style="not-a-sha")
