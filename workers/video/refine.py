"""Detection on demand: look at the frames between two keyframes when motion asks for it.

Keyframes (every `every`-th frame) are searched whole. When keyframe b's faces are known, they are
matched with those of the keyframe a before it (`match_boxes`). The interval between them is
*quiet* when every face of a has a partner on b, every face of b has one on a, and each pair moved
less than `quiet` of its size: linear interpolation then follows the face, and the frames between
are not searched. Otherwise each face that moved fast, was lost, or appeared unexplained is a
*concern*, and the detector is run on every frame between a and b, on crops around the concerns
only (a region that can hold the face anywhere it can walk in the interval, at up to `search` of
its size a frame), or on the whole frame when the crops would cover most of it. Quiet faces
outside the crops get their interpolated boxes on those frames, so every searched frame has a
complete list of faces, as a keyframe has.

The work for an interval depends only on the frames from a to b, so a segment that decodes from a
keyframe gives the detections of the whole-video run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from workers.video.detect import Box, FaceDetector, iou

CROP_SIDES = (128, 192, 256, 384, 512)
"""Crop sizes (squares): a few fixed sizes, so a network that must be built per input size (OpenCV
DNN) is built a few times per video, not once per crop."""
WHOLE_FRAME_SHARE = 0.5
"""When the crops of a frame would cover more than this share of it, the whole frame is searched."""


class Detection(NamedTuple):
    """A face box with the detector's score; `seen` is False for a box interpolated onto a searched
    frame for a quiet face outside its crops (the detector did not look there)."""

    box: Box
    score: float
    seen: bool = True


@dataclass(frozen=True)
class Refined:
    """The detections of the frames between two keyframes, and how many detector runs each of
    those frames cost (its crops)."""

    frames: dict[int, list[Detection]]
    runs: int


def size_of(box: Box) -> float:
    return (box.w + box.h) / 2 or 1.0


def hull(a: Box, b: Box) -> Box:
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    x1, y1 = max(a.x + a.w, b.x + b.w), max(a.y + a.h, b.y + b.h)
    return Box(x0, y0, x1 - x0, y1 - y0)


def widen(box: Box, margin: float) -> Box:
    """The box grown by `margin` px on every side."""
    m = round(margin)
    return Box(box.x - m, box.y - m, box.w + 2 * m, box.h + 2 * m)


def moved(a: Box, b: Box) -> float:
    """How far the box moved: the largest shift of one of its edges, in px."""
    return float(
        max(abs(a.x - b.x), abs(a.y - b.y), abs(a.x + a.w - b.x - b.w), abs(a.y + a.h - b.y - b.h))
    )


def interpolate_box(a: Box, b: Box, t: float) -> Box:
    """The box at fraction `t` (0..1) of the way from `a` to `b`."""
    return Box(*(round(p + (q - p) * t) for p, q in zip(a, b, strict=True)))


def merge_regions(regions: list[Box]) -> list[Box]:
    """Overlapping regions joined into their hull until none overlap."""
    merged = list(regions)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                if a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h:
                    merged[i] = hull(a, b)
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def crop_for(region: Box, width: int, height: int) -> Box:
    """The square of the smallest of CROP_SIDES holding `region` (or the region itself when it
    is larger), centred on it and moved inside the frame, clipped to the frame."""
    need = max(region.w, region.h)
    side = next((s for s in CROP_SIDES if s >= need), need)
    cx, cy = region.x + region.w / 2, region.y + region.h / 2
    w, h = min(side, width), min(side, height)
    x = int(min(max(0, round(cx - w / 2)), width - w))
    y = int(min(max(0, round(cy - h / 2)), height - h))
    return Box(x, y, w, h)


def detect_in(detector: FaceDetector, frame: np.ndarray, crop: Box) -> list[Detection]:
    """The detector's faces inside `crop` of the frame, in frame pixels; a face cut by the
    crop's edge (where that edge is not the frame's) is left out: its box would be cut too."""
    x, y, w, h = crop
    height, width = frame.shape[:2]
    found = detector.detect_scored(frame[y : y + h, x : x + w])
    kept = []
    for b, score in found:
        if (
            (b.x <= 1 and x > 0)
            or (b.y <= 1 and y > 0)
            or (b.x + b.w >= w - 1 and x + w < width)
            or (b.y + b.h >= h - 1 and y + h < height)
        ):
            continue
        kept.append(Detection(Box(b.x + x, b.y + y, b.w, b.h), score))
    return kept


def inside(crop: Box, box: Box) -> bool:
    """Whether the whole box lies inside the crop."""
    return (
        crop.x <= box.x
        and crop.y <= box.y
        and box.x + box.w <= crop.x + crop.w
        and box.y + box.h <= crop.y + crop.h
    )


def distinct(found: list[Detection], threshold: float = 0.3) -> list[Detection]:
    """One detection per face: of boxes overlapping by `threshold` IoU or more, the detector's
    own before an interpolated one, then the surer."""
    kept: list[Detection] = []
    for d in sorted(found, key=lambda d: (d.seen, d.score), reverse=True):
        if all(iou(d.box, k.box) < threshold for k in kept):
            kept.append(d)
    return kept


def refine(
    detector: FaceDetector,
    first: tuple[int, Sequence[Detection]],
    last: tuple[int, Sequence[Detection]],
    between: Sequence[tuple[int, np.ndarray]],
    *,
    quiet: float,
    search: float,
) -> Refined:
    """Search the frames `between` keyframes `first` and `last` (index, detections) where motion
    asks for it (see the module docstring)."""
    from workers.video.links import match_boxes

    (a, found_a), (b, found_b) = first, last
    if not between:
        return Refined({}, 0)
    span = b - a
    pairs = match_boxes([d.box for d in found_a], [d.box for d in found_b])
    regions: list[Box] = []
    steady: list[tuple[Detection, Detection]] = []
    for i, j in pairs:
        da, db = found_a[i], found_b[j]
        size = (size_of(da.box) + size_of(db.box)) / 2
        if moved(da.box, db.box) > quiet * size:
            regions.append(widen(hull(da.box, db.box), size / 2))
        else:
            steady.append((da, db))
    paired_a, paired_b = {i for i, _ in pairs}, {j for _, j in pairs}
    alone = [d for i, d in enumerate(found_a) if i not in paired_a]
    alone += [d for j, d in enumerate(found_b) if j not in paired_b]
    for d in alone:
        size = size_of(d.box)
        regions.append(widen(d.box, size / 2 + search * size * span))
    if not regions:
        return Refined({}, 0)
    height, width = between[0][1].shape[:2]
    crops = [crop_for(region, width, height) for region in merge_regions(regions)]
    if sum(c.w * c.h for c in crops) > WHOLE_FRAME_SHARE * width * height:
        crops = [Box(0, 0, width, height)]
    frames: dict[int, list[Detection]] = {}
    for t, frame in between:
        found = [d for crop in crops for d in detect_in(detector, frame, crop)]
        fraction = (t - a) / span
        for da, db in steady:
            box = interpolate_box(da.box, db.box, fraction)
            if not any(inside(crop, box) for crop in crops):
                found.append(Detection(box, min(da.score, db.score), seen=False))
        frames[t] = distinct(found)
    return Refined(frames, len(crops))
