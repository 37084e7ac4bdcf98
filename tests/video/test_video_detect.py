"""Face detectors: the Haar cascade on a real face photo, and the YuNet wrapper's refusals."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from atelier.errors import InputError
from workers.video.detect import Box, DnnDetector, HaarDetector, iou, make_detector


@pytest.fixture(scope="module")
def photo(full_face_photo: np.ndarray) -> np.ndarray:
    return full_face_photo


def test_haar_finds_the_face_in_a_photo(photo: np.ndarray) -> None:
    boxes = HaarDetector().detect(photo)
    assert len(boxes) == 1
    assert iou(boxes[0], Box(155, 105, 222, 222)) > 0.6


def test_large_frames_are_searched_shrunk_and_boxes_scaled_back(photo: np.ndarray) -> None:
    big = cv2.resize(photo, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    boxes = HaarDetector(detect_width=400).detect(big)
    assert len(boxes) == 1
    assert iou(boxes[0], Box(465, 315, 666, 666)) > 0.6


def test_profile_cascade_adds_no_duplicate_of_a_frontal_face(photo: np.ndarray) -> None:
    frontal = HaarDetector().detect(photo)
    both = HaarDetector(profile=True).detect(photo)
    assert len(both) == 1 and iou(both[0], frontal[0]) > 0.5


def test_profile_cascade_finds_faces_turned_either_way(photo: np.ndarray) -> None:
    """Turning the photo's face is not possible, but the mirrored search must find in a mirrored
    frame what the direct search finds in the frame."""
    detector = HaarDetector(profile=True)
    width = photo.shape[1]
    direct = detector.detect(photo)
    mirrored = detector.detect(cv2.flip(photo, 1))
    assert len(direct) == len(mirrored) == 1
    flipped_back = Box(width - mirrored[0].x - mirrored[0].w, *mirrored[0][1:])
    assert iou(direct[0], flipped_back) > 0.7


def test_no_faces_in_a_plain_frame() -> None:
    assert HaarDetector().detect(np.full((240, 320, 3), 128, np.uint8)) == []


def test_dnn_without_a_model_says_what_is_missing() -> None:
    with pytest.raises(InputError, match="needs a YuNet ONNX model"):
        make_detector("dnn")


def test_dnn_with_a_missing_model_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "face_detection_yunet_2023mar.onnx"
    with pytest.raises(InputError, match=re.escape(f"face detection model not found: {missing}")):
        DnnDetector(missing)


def test_dnn_with_a_broken_model_file_says_so(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx graph")
    with pytest.raises(InputError, match=r"cannot load face detection model broken\.onnx"):
        DnnDetector(broken)


def test_make_detector_kinds() -> None:
    assert isinstance(make_detector("haar"), HaarDetector)
    with pytest.raises(InputError, match="unknown face detector 'mtcnn'"):
        make_detector("mtcnn")


def test_iou() -> None:
    assert iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 5, 5)) == 0
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
