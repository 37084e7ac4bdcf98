"""track_faces: detection on keyframes only, interpolation between them, bounded buffering."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from workers.video.detect import Box
from workers.video.track import interpolate_boxes, match_boxes, track_faces


class ScriptedDetector:
    """A FaceDetector whose answer for each frame is given in advance; frames carry their own
    index in their first pixel, so the detector knows which frame it was shown."""

    def __init__(self, script: dict[int, list[Box]]) -> None:
        self.script = script
        self.seen: list[int] = []

    def detect(self, frame_bgr: np.ndarray) -> list[Box]:
        index = int(frame_bgr[0, 0, 0])
        self.seen.append(index)
        return list(self.script.get(index, []))


def frames(indexes: range) -> Iterator[tuple[int, np.ndarray]]:
    for index in indexes:
        yield index, np.full((4, 4, 3), index, np.uint8)


def moving_face(index: int) -> Box:
    """A face moving 4 px right and 2 px down per frame."""
    return Box(10 + 4 * index, 20 + 2 * index, 40, 40)


def test_every_frame_is_detected_when_every_is_one() -> None:
    script = {i: [moving_face(i)] for i in range(7)}
    detector = ScriptedDetector(script)
    out = list(track_faces(frames(range(7)), detector, 1))
    assert detector.seen == list(range(7))
    assert [boxes for _, _, boxes in out] == [script[i] for i in range(7)]


def test_frames_between_keyframes_are_interpolated() -> None:
    script = {i: [moving_face(i)] for i in range(0, 13, 4)}
    detector = ScriptedDetector(script)
    out = list(track_faces(frames(range(13)), detector, 4))
    assert detector.seen == [0, 4, 8, 12]
    assert [index for index, _, _ in out] == list(range(13))
    assert all(boxes == [moving_face(index)] for index, _, boxes in out)
    assert all(int(frame[0, 0, 0]) == index for index, frame, _ in out)


def test_the_last_frame_is_a_keyframe() -> None:
    """Frames after the last multiple of `every` are interpolated towards a detection on the
    stream's last frame, not left without a partner."""
    script = {0: [moving_face(0)], 5: [moving_face(5)], 8: [moving_face(8)]}
    detector = ScriptedDetector(script)
    out = list(track_faces(frames(range(9)), detector, 5))
    assert detector.seen == [0, 5, 8]
    assert [boxes for _, _, boxes in out] == [[moving_face(i)] for i in range(9)]


def test_a_stream_starting_off_keyframe_detects_its_first_frame() -> None:
    detector = ScriptedDetector({3: [moving_face(3)], 5: [moving_face(5)]})
    out = list(track_faces(frames(range(3, 6)), detector, 5))
    assert detector.seen == [3, 5]
    assert out[1][2] == [moving_face(4)]


def test_at_most_every_frames_are_held() -> None:
    every = 6
    pulled = 0

    def counting() -> Iterator[tuple[int, np.ndarray]]:
        nonlocal pulled
        for item in frames(range(40)):
            pulled += 1
            yield item

    detector = ScriptedDetector({})
    yielded = 0
    for _ in track_faces(counting(), detector, every):
        yielded += 1
        assert pulled - yielded < every
    assert yielded == 40


def test_a_face_without_partner_is_kept_over_the_gap() -> None:
    """A face found at one keyframe only (appearing, leaving, or missed once) stays covered
    across the whole gap: for a privacy filter an extra patch is the lesser harm."""
    lone = Box(200, 10, 30, 30)
    script = {0: [moving_face(0), lone], 4: [moving_face(4)]}
    out = list(track_faces(frames(range(5)), ScriptedDetector(script), 4))
    for index, _, boxes in out[1:4]:
        assert sorted(boxes) == sorted([moving_face(index), lone])
    assert out[4][2] == [moving_face(4)]


def test_matching_prefers_overlap_and_refuses_far_boxes() -> None:
    a = [Box(0, 0, 20, 20), Box(100, 100, 20, 20)]
    b = [Box(104, 102, 20, 20), Box(2, 1, 20, 20), Box(300, 300, 20, 20)]
    assert sorted(match_boxes(a, b)) == [(0, 1), (1, 0)]
    assert match_boxes([Box(0, 0, 20, 20)], [Box(60, 0, 20, 20)]) == []


def test_interpolation_ends_at_the_keyframes() -> None:
    a, b = [Box(0, 0, 20, 20)], [Box(10, 4, 30, 20)]
    assert interpolate_boxes(a, b, 0.0) == a
    assert interpolate_boxes(a, b, 1.0) == b
    assert interpolate_boxes(a, b, 0.5) == [Box(5, 2, 25, 20)]


def test_detect_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(track_faces(frames(range(3)), ScriptedDetector({}), 0))
