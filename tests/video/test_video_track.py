"""track_faces: keyframe detection, interpolation, bridged gaps, hysteresis, confirmation,
smoothing, and boxes that depend only on nearby detections (so segments match whole runs)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from workers.video.detect import Box
from workers.video.track import (
    TrackOptions,
    interpolate_box,
    match_boxes,
    track_faces,
)

# Smoothing, growing and detection on demand off unless a test is about them: exact boxes are
# easier to state.
PLAIN = TrackOptions(
    hold=6, max_gap=12, window=6, support=3, confirm=0.5, smooth=0, grow=0, quiet=1000
)


class ScriptedDetector:
    """A detector whose scored answer for each frame is given in advance; frames carry their own
    index in their first pixel, so the detector knows which frame it was shown."""

    def __init__(self, script: dict[int, list[tuple[Box, float]]]) -> None:
        self.script = script
        self.seen: list[int] = []

    def detect_scored(self, frame_bgr: np.ndarray) -> list[tuple[Box, float]]:
        index = int(frame_bgr[0, 0, 0])
        self.seen.append(index)
        return list(self.script.get(index, []))


def frames(indexes: range) -> Iterator[tuple[int, np.ndarray]]:
    for index in indexes:
        yield index, np.full((4, 4, 3), index, np.int32)


def moving_face(index: int) -> Box:
    """A face moving 4 px right and 2 px down per frame."""
    return Box(10 + 4 * index, 20 + 2 * index, 40, 40)


def sure(box: Box) -> list[tuple[Box, float]]:
    return [(box, 0.9)]


def run(script: dict, indexes: range, every: int, options: TrackOptions = PLAIN) -> list:
    detector = ScriptedDetector(script)
    out = list(track_faces(frames(indexes), detector, every, options))
    return out, detector.seen


def test_every_frame_is_detected_when_every_is_one() -> None:
    script = {i: sure(moving_face(i)) for i in range(7)}
    out, seen = run(script, range(7), 1)
    assert seen == list(range(7))
    assert [f.boxes for f in out] == [[moving_face(i)] for i in range(7)]
    assert not any(f.bridged for f in out)


def test_frames_between_keyframes_are_interpolated() -> None:
    script = {i: sure(moving_face(i)) for i in range(0, 13, 4)}
    out, seen = run(script, range(13), 4)
    assert seen == [0, 4, 8, 12]
    assert [f.index for f in out] == list(range(13))
    assert all(f.boxes == [moving_face(f.index)] for f in out)
    assert all(int(f.frame[0, 0, 0]) == f.index for f in out)


def test_the_last_frame_is_a_keyframe() -> None:
    script = {0: sure(moving_face(0)), 5: sure(moving_face(5)), 8: sure(moving_face(8))}
    out, seen = run(script, range(9), 5)
    assert seen == [0, 5, 8]
    assert [f.boxes for f in out] == [[moving_face(i)] for i in range(9)]


def test_a_missed_detection_is_bridged_by_interpolation() -> None:
    """The detector misses the face on frames 4-7: the box moves on between 3 and 8 as the face
    does, and those frames count as tracked through a gap."""
    script = {i: sure(moving_face(i)) for i in range(12) if not 4 <= i <= 7}
    out, _ = run(script, range(12), 1)
    assert [f.boxes for f in out] == [[moving_face(i)] for i in range(12)]
    assert [f.index for f in out if f.bridged] == [4, 5, 6, 7]


def test_a_lost_face_is_held_then_dropped() -> None:
    """Hysteresis: a face last found on frame 5 stays covered `hold` frames, then is let go;
    while held, its box spans where it was last found and where its speed would take it."""
    script = {i: sure(moving_face(i)) for i in range(6)}
    out, _ = run(script, range(20), 1)
    held = [f.index for f in out if f.boxes]
    assert held == list(range(6 + PLAIN.hold))
    for f in out[6 : 6 + PLAIN.hold]:
        last, walked = moving_face(5), moving_face(f.index)
        assert f.boxes == [
            Box(last.x, last.y, walked.x + walked.w - last.x, walked.y + walked.h - last.y)
        ]


def test_a_face_is_covered_before_it_is_first_found() -> None:
    """Look-ahead: a face found from frame 10 on is covered from frame 10 - hold."""
    script = {i: sure(moving_face(10)) for i in range(10, 20)}
    out, _ = run(script, range(20), 1)
    assert [f.index for f in out if f.boxes] == list(range(10 - PLAIN.hold, 20))


def test_weak_detections_need_company() -> None:
    """A weak detection alone is dropped (most false hits flicker); the same weak score on a
    face found on consecutive frames is kept."""
    lone = {8: [(Box(100, 100, 20, 20), 0.4)]}
    out, _ = run(lone, range(20), 1)
    assert not any(f.boxes for f in out)
    steady = {i: [(Box(100, 100, 20, 20), 0.4)] for i in range(8, 11)}
    out, _ = run(steady, range(20), 1)
    assert out[9].boxes == [Box(100, 100, 20, 20)]


def test_smoothing_steadies_a_jittering_box() -> None:
    jitter = [0, 3, -3, 3, -3, 3, -3, 0]
    script = {i: sure(Box(50 + d, 50, 30 + d, 30)) for i, d in enumerate(jitter)}
    smooth = TrackOptions(hold=6, max_gap=12, window=6, smooth=2)
    out, _ = run(script, range(len(jitter)), 1, smooth)
    xs = [f.boxes[0].x for f in out]
    assert max(xs[2:-2]) - min(xs[2:-2]) <= 2 < max(jitter) - min(jitter)


def test_boxes_depend_only_on_detections_within_reach() -> None:
    """A stream cut `reach` frames before and after a range gives that range the boxes of the
    uncut stream: what segments rely on."""
    rng = np.random.default_rng(3)
    script = {
        i: [(moving_face(i), float(rng.uniform(0.35, 0.9)))]
        for i in range(0, 300, 5)
        if rng.uniform() > 0.3
    }
    options = TrackOptions(hold=10, max_gap=20, window=10)
    every = 5
    whole, _ = run(script, range(300), every, options)
    reach = options.reach(every)
    start, end = 120, 150
    first = max(0, start - reach) // every * every
    last = -(-(end - 1 + reach) // every) * every
    cut, _ = run(script, range(first, last + 1), every, options)
    assert first > 0 and last < 299
    by_index = {f.index: f.boxes for f in cut}
    expected = [f.boxes for f in whole[start:end]]
    assert [by_index[i] for i in range(start, end)] == expected
    assert sum(map(bool, expected)) > 20


def test_at_most_reach_frames_are_held() -> None:
    every = 3
    pulled = 0

    def counting() -> Iterator[tuple[int, np.ndarray]]:
        nonlocal pulled
        for item in frames(range(200)):
            pulled += 1
            yield item

    yielded = 0
    for _ in track_faces(counting(), ScriptedDetector({}), every, PLAIN):
        yielded += 1
        assert pulled - yielded <= PLAIN.reach(every)
    assert yielded == 200


def test_matching_prefers_overlap_and_refuses_far_boxes() -> None:
    a = [Box(0, 0, 20, 20), Box(100, 100, 20, 20)]
    b = [Box(104, 102, 20, 20), Box(2, 1, 20, 20), Box(300, 300, 20, 20)]
    assert sorted(match_boxes(a, b)) == [(0, 1), (1, 0)]
    assert match_boxes([Box(0, 0, 20, 20)], [Box(60, 0, 20, 20)]) == []


def test_interpolation_ends_at_the_keyframes() -> None:
    a, b = Box(0, 0, 20, 20), Box(10, 4, 30, 20)
    assert interpolate_box(a, b, 0.0) == a
    assert interpolate_box(a, b, 1.0) == b
    assert interpolate_box(a, b, 0.5) == Box(5, 2, 25, 20)


def test_detect_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(track_faces(frames(range(3)), ScriptedDetector({}), 0))
