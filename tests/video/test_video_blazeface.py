"""BlazeFace: anchors as MediaPipe lays them out, decoding on a real face photo, tiles for small
faces, black bars skipped, weighted NMS."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest

from workers.video.blazeface import (
    MODELS,
    BlazeFaceDetector,
    anchors,
    content_bounds,
    tile_origins,
    weighted_nms,
)
from workers.video.detect import Box, iou, make_detector

FACE = Box(155, 105, 222, 222)  # Grace Hopper's face in the full photo (the cascade's box)


@pytest.fixture(scope="module")
def full() -> BlazeFaceDetector:
    return BlazeFaceDetector("full")


def test_anchor_grids_match_the_network_outputs() -> None:
    """48x48 cells at stride 4 (full range); 16x16x2 + 8x8x6 (short range): the outputs' rows."""
    assert len(anchors(MODELS["full"])) == 2304
    short = anchors(MODELS["short"])
    assert len(short) == 896
    assert np.allclose(short[0], [0.5 / 16, 0.5 / 16]) and np.allclose(short[1], short[0])
    assert np.allclose(short[512], [0.5 / 8, 0.5 / 8]) and np.allclose(short[517], short[512])
    assert np.allclose(anchors(MODELS["full"])[48], [0.5 / 48, 1.5 / 48])


@pytest.mark.parametrize("model", ["full", "short"])
def test_decoding_finds_the_face_of_a_photo(full_face_photo: np.ndarray, model: str) -> None:
    """Anchors, offsets, RGB order and the -1..1 scaling all have to be right for the one box
    found to sit on the face: any one wrong moves it off or drops its score."""
    found = BlazeFaceDetector(model, tile=0, box_scale=1.0).detect_scored(full_face_photo)
    assert len(found) == 1
    box, score = found[0]
    assert score > 0.85
    assert iou(box, FACE) > 0.6


def test_nothing_on_a_plain_frame_or_a_landscape(full: BlazeFaceDetector, test_data: Path) -> None:
    assert full.detect(np.full((360, 640, 3), 128, np.uint8)) == []
    assert full.detect(cv2.imread(str(test_data / "content" / "golden_gate.jpg"))) == []


def test_large_frames_are_searched_shrunk(full_face_photo: np.ndarray) -> None:
    """A 1536x1800 frame is searched at 640 px wide (bounded cost), boxes scaled back."""
    big = cv2.resize(full_face_photo, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    found = BlazeFaceDetector("full", box_scale=1.0).detect_scored(big)
    sure = [box for box, score in found if score >= 0.5]
    assert len(sure) == 1 and iou(sure[0], Box(*(3 * v for v in FACE))) > 0.6


def test_tiles_find_a_face_too_small_for_the_whole_frame(full_face_photo: np.ndarray) -> None:
    """A face 22 px tall in a 640x360 frame: 7 px once the whole frame is squeezed into the
    network's 192 px, too small; a tile shows it at its own size."""
    frame = np.full((360, 640, 3), 110, np.uint8)
    face = cv2.resize(full_face_photo[90:360, 130:400], (26, 26), interpolation=cv2.INTER_AREA)
    frame[200:226, 450:476] = face
    truth = Box(450, 200, 26, 26)
    whole_only = BlazeFaceDetector("full", tile=0).detect(frame)
    tiled = BlazeFaceDetector("full").detect(frame)
    assert not any(iou(box, truth) > 0.3 for box in whole_only)
    assert len(tiled) == 1 and iou(tiled[0], truth) > 0.4


def test_boxes_come_back_in_frame_pixels_from_tiles(full_face_photo: np.ndarray) -> None:
    frame = cv2.copyMakeBorder(full_face_photo, 0, 0, 300, 300, cv2.BORDER_CONSTANT)
    found = BlazeFaceDetector("full", box_scale=1.0).detect(frame)
    assert len(found) == 1 and iou(found[0], Box(FACE.x + 300, *FACE[1:])) > 0.7


def test_tiles_overlap_and_cover() -> None:
    assert tile_origins(100, 192, 0.25) == [0]
    starts = tile_origins(480, 192, 0.25)
    assert starts[0] == 0 and starts[-1] + 192 == 480
    assert all(b - a <= 192 * 0.75 for a, b in pairwise(starts))


def test_black_bars_are_not_searched() -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[:, 80:560] = 90
    assert content_bounds(frame) == (80, 0, 560, 360)
    assert content_bounds(np.zeros((10, 10, 3), np.uint8)) == (0, 0, 10, 10)


def test_weighted_nms_averages_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    merged, scores = weighted_nms(boxes, np.array([0.9, 0.9, 0.6], np.float32))
    assert len(merged) == 2 and list(scores) == pytest.approx([0.9, 0.6])
    assert merged[0] == pytest.approx([0.5, 0.5, 10.5, 10.5])


def test_blazeface_is_the_default_detector() -> None:
    assert isinstance(make_detector("blazeface"), BlazeFaceDetector)
