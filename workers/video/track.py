"""Run the detector on every Nth frame and fill the frames between by interpolation.

Why linear interpolation between keyframes rather than carrying the last boxes forward or running
a visual tracker: a face moves smoothly over a fraction of a second, so the box halfway between two
detections is nearly where the face is, while a carried-forward box lags behind a moving face by up
to N-1 frames and uncovers it, and a correlation tracker costs about as much per frame as the
cascade it is meant to save. Interpolation needs the *next* keyframe before it can fill a gap, so
the frames of a gap wait in a buffer: at most N frames are held at once, whatever the video length.

Keyframes are the frames whose index is a multiple of N, plus the first and the last frame of the
stream. Indexes are those of the source video, so a segment that starts on a keyframe and runs on
to the keyframe after its last frame sees exactly the detections the whole-video run sees.

Boxes are paired between keyframes by overlap, else by nearness of their centres. A box without a
partner (a face entering, leaving, or missed by one detection) is kept unchanged over the whole gap:
for a privacy filter an extra blurred patch is a far smaller harm than an uncovered face.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from workers.video.detect import Box, FaceDetector, iou


def match_boxes(before: list[Box], after: list[Box]) -> list[tuple[int, int]]:
    """Pairs (i, j) of boxes that are probably the same face, best pairs first: overlapping
    boxes by overlap, then boxes whose centres lie within about one face size of each other."""
    candidates = []
    for i, a in enumerate(before):
        for j, b in enumerate(after):
            size = (a.w + a.h + b.w + b.h) / 4 or 1.0
            distance = np.hypot(a.x + a.w / 2 - b.x - b.w / 2, a.y + a.h / 2 - b.y - b.h / 2)
            overlap = iou(a, b)
            if overlap > 0 or distance < size:
                candidates.append((-overlap, distance / size, i, j))
    pairs: list[tuple[int, int]] = []
    used_before: set[int] = set()
    used_after: set[int] = set()
    for _, _, i, j in sorted(candidates):
        if i not in used_before and j not in used_after:
            pairs.append((i, j))
            used_before.add(i)
            used_after.add(j)
    return pairs


def interpolate_boxes(before: list[Box], after: list[Box], t: float) -> list[Box]:
    """The boxes at fraction `t` (0..1) of the way from one keyframe's boxes to the next's."""
    pairs = match_boxes(before, after)
    boxes = [
        Box(*(round(p + (q - p) * t) for p, q in zip(before[i], after[j], strict=True)))
        for i, j in pairs
    ]
    paired_before = {i for i, _ in pairs}
    paired_after = {j for _, j in pairs}
    boxes += [box for i, box in enumerate(before) if i not in paired_before]
    boxes += [box for j, box in enumerate(after) if j not in paired_after]
    return sorted(boxes)


def _close_gap(
    keyframe: tuple[int, list[Box]],
    gap: list[tuple[int, np.ndarray]],
    index: int,
    boxes: list[Box],
) -> Iterator[tuple[int, np.ndarray, list[Box]]]:
    """Yield the frames waiting since `keyframe` with boxes interpolated towards `boxes`, the
    detections of frame `index`, and empty the gap."""
    start, start_boxes = keyframe
    for between, held in gap:
        yield (
            between,
            held,
            interpolate_boxes(start_boxes, boxes, (between - start) / (index - start)),
        )
    gap.clear()


def track_faces(
    frames: Iterable[tuple[int, np.ndarray]], detector: FaceDetector, every: int
) -> Iterator[tuple[int, np.ndarray, list[Box]]]:
    """Yield (index, frame, boxes) for each (index, frame) of `frames`, in order, detecting on
    keyframes only (see the module docstring). Indexes must increase by one. At most `every`
    frames are held at once: the gap since the last keyframe and the frame being detected."""
    if every < 1:
        raise ValueError("detect every must be at least 1")
    keyframe: tuple[int, list[Box]] | None = None
    gap: list[tuple[int, np.ndarray]] = []
    for index, frame in frames:
        if keyframe is not None and index % every != 0:
            gap.append((index, frame))
            continue
        boxes = detector.detect(frame)
        if keyframe is not None:
            yield from _close_gap(keyframe, gap, index, boxes)
        yield index, frame, boxes
        keyframe = (index, boxes)
    if keyframe is not None and gap:
        index, frame = gap.pop()
        boxes = detector.detect(frame)
        yield from _close_gap(keyframe, gap, index, boxes)
        yield index, frame, boxes
