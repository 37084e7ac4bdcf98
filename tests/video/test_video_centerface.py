"""CenterFace: decoding on a real face photo, a small face in a wide frame without tiles, boxes
in the frame's pixels, suppression, and the bundled model being the default."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from atelier.schemas import VideoParams
from workers.video.centerface import MODEL, CenterFaceDetector, decode, input_size, nms
from workers.video.detect import Box, iou, make_detector

FACE = Box(155, 105, 222, 222)  # Grace Hopper's face in the full photo (the cascade's box)


@pytest.fixture(scope="module")
def plain() -> CenterFaceDetector:
    """The network's own boxes, not grown."""
    return CenterFaceDetector(box_scale=1.0)


def test_decoding_finds_the_face_of_a_photo(
    plain: CenterFaceDetector, full_face_photo: np.ndarray
) -> None:
    """Channel order, the (y, x) order of sizes and offsets, exp and the stride of 4 all have to
    be right for the one box found to sit on the face: any one wrong moves it off, warps it or
    drops its score."""
    found = plain.detect_scored(full_face_photo)
    assert len(found) == 1
    box, score = found[0]
    assert score > 0.8
    assert iou(box, FACE) > 0.6


def test_a_small_face_in_a_wide_frame_is_found_without_tiles(
    plain: CenterFaceDetector, full_face_photo: np.ndarray
) -> None:
    """An 18 px face in a 640x360 frame: the network sees the frame at its own size."""
    frame = np.full((360, 640, 3), 110, np.uint8)
    frame[200:218, 450:468] = cv2.resize(
        full_face_photo[90:360, 130:400], (18, 18), interpolation=cv2.INTER_AREA
    )
    found = plain.detect(frame)
    assert len(found) == 1 and iou(found[0], Box(450, 200, 18, 18)) > 0.4


def test_boxes_come_back_in_frame_pixels(
    plain: CenterFaceDetector, full_face_photo: np.ndarray
) -> None:
    """A 1536x1800 frame is searched at 640 px wide, an odd-sized one padded to 32 px multiples;
    either way the box is scaled back onto the face, by the same detector that saw other sizes
    before (OpenCV would otherwise reuse the shapes of the first input)."""
    big = cv2.resize(full_face_photo, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    found = plain.detect(big)
    assert len(found) == 1 and iou(found[0], Box(*(3 * v for v in FACE))) > 0.6
    shifted = cv2.copyMakeBorder(full_face_photo, 7, 0, 13, 0, cv2.BORDER_CONSTANT)
    found = plain.detect(shifted)
    assert len(found) == 1 and iou(found[0], Box(FACE.x + 13, FACE.y + 7, *FACE[2:])) > 0.6


def test_boxes_grow_about_their_centre(full_face_photo: np.ndarray) -> None:
    (box,) = CenterFaceDetector(box_scale=1.0).detect(full_face_photo)
    (grown,) = CenterFaceDetector(box_scale=1.3).detect(full_face_photo)
    assert grown.w == pytest.approx(box.w * 1.3, abs=2)
    assert grown.x + grown.w / 2 == pytest.approx(box.x + box.w / 2, abs=1)


def test_nothing_on_a_plain_frame_or_a_landscape(test_data: Path) -> None:
    detector = CenterFaceDetector()
    assert detector.detect(np.full((360, 640, 3), 128, np.uint8)) == []
    assert detector.detect(cv2.imread(str(test_data / "content" / "golden_gate.jpg"))) == []


def test_decode_reads_centres_sizes_and_offsets() -> None:
    """One hot cell at row 2, column 5: centre ((5 + 0.5 + 0.25) * 4, (2 + 0.5 - 0.5) * 4),
    height e^2 * 4, width e^1 * 4."""
    heatmap = np.zeros((8, 8), np.float32)
    heatmap[2, 5] = 0.9
    scale = np.zeros((2, 8, 8), np.float32)
    scale[:, 2, 5] = (2.0, 1.0)
    offset = np.zeros((2, 8, 8), np.float32)
    offset[:, 2, 5] = (-0.5, 0.25)
    boxes, scores = decode(heatmap, scale, offset, 0.5)
    h, w = np.exp(2) * 4, np.exp(1) * 4
    assert scores == pytest.approx([0.9])
    assert boxes[0] == pytest.approx([23 - w / 2, 8 - h / 2, 23 + w / 2, 8 + h / 2], rel=1e-5)


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    keep = nms(boxes, np.array([0.6, 0.9, 0.7], np.float32), 0.3)
    assert list(keep) == [1, 2]


def test_input_sides_are_multiples_of_32() -> None:
    assert input_size(640, 360) == (640, 384)
    assert input_size(32, 1) == (32, 32)


def test_centerface_is_the_default_and_bundled() -> None:
    assert MODEL.is_file() and (MODEL.parent / "NOTICE").is_file()
    assert VideoParams().detector == "centerface"
    assert isinstance(make_detector(VideoParams().detector), CenterFaceDetector)
