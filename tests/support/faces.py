"""The labelled face set and how a run is scored on it (shared by `bench.faces` and the recall
tests).

The labelled set (tests/data/labels, see tests/data/SOURCES.md) holds face boxes for every 10th
frame of chaplin.mp4 (two men, faces 20-45 px tall, turned, under hats), for every frame of
closeup.mp4 (one face turned, tilted, zoomed, panned and partly hidden), and for every frame of
street.mp4 and bridge.mp4 (made by `tests.support.moving`: small faces walking across at 4-8 px
a frame, entering and leaving at the edges, several at once, boxes exact by construction).

- A labelled face counts as *hidden* when the output's masks cover at least 70% of its box in
  that frame (on the moving clips, of the part of its box inside the frame, for faces at least
  half inside); recall is the share of labelled faces hidden.
- A *false box* is an output mask that hides no labelled face: less than 30% of it lies on any
  labelled face and it covers less than half of any; counted per labelled frame.
- A face is *visible* (moving clips, `visible_faces`) when more than 15% of its inner box (eyes
  to chin) is unchanged in the output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from atelier.schemas import VideoParams
from tests.support.moving import inner_box
from tests.support.procs import REPO
from workers.video.detect import Box, intersection
from workers.video.filters import pad_box

DATA = REPO / "tests" / "data"
CLIPS = {
    name: DATA / "video" / f"{name}.mp4" for name in ("chaplin", "closeup", "street", "bridge")
}
MOVING = ("street", "bridge")
"""Clips whose labels are exact (made by tests.support.moving): leaks are counted on them."""
HIDDEN = 0.7
"""Share of a labelled face's box the masks must cover for the face to count as hidden."""
ON_FACE = 0.3
"""Share of an output box that must lie on a labelled face for the box not to be false..."""
OVER_FACE = 0.5
"""...or share of a labelled face the box must cover (a loose box around a face is no false one)."""
VISIBLE = 0.15
"""Share of a face's inner box (eyes to chin) left unchanged above which the face is visible."""
UNCHANGED = 30
"""Largest change (grey levels, any channel) of a pixel that counts as unchanged."""


def load_labels(clip: str) -> dict[int, list[Box]]:
    """The labelled faces of a clip: frame index -> face boxes (frames without faces included;
    on the moving clips, boxes may reach past the frame's edges)."""
    raw = json.loads((DATA / "labels" / f"{clip}.json").read_text())
    return {int(frame): [Box(*box) for box in boxes] for frame, boxes in raw.items()}


def in_frame(labels: dict[int, list[Box]], shape: tuple) -> dict[int, list[Box]]:
    """The labels clipped to the frame, keeping faces at least half inside it (recall of a
    sliver at the edge says little)."""
    height, width = shape[:2]
    kept: dict[int, list[Box]] = {}
    for index, faces in labels.items():
        kept[index] = []
        for face in faces:
            x0, y0 = max(0, face.x), max(0, face.y)
            x1, y1 = min(width, face.x + face.w), min(height, face.y + face.h)
            if x1 > x0 and y1 > y0 and (x1 - x0) * (y1 - y0) >= 0.5 * face.w * face.h:
                kept[index].append(Box(x0, y0, x1 - x0, y1 - y0))
    return kept


def masks_of(boxes: list[Box], shape: tuple, padding: float, ellipse: bool = False) -> np.ndarray:
    """The pixels the filter replaces for these boxes (as workers.video.filters draws them)."""
    height, width = shape[:2]
    mask = np.zeros((height, width), np.uint8)
    for box in boxes:
        x0, y0, x1, y1 = pad_box(box, padding, width, height)
        if ellipse:
            centre, axes = ((x0 + x1) // 2, (y0 + y1) // 2), ((x1 - x0) // 2, (y1 - y0) // 2)
            cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
        else:
            mask[y0:y1, x0:x1] = 1
    return mask.astype(bool)


def visible_faces(
    source: list[np.ndarray], output: list[np.ndarray], labels: dict[int, list[Box]]
) -> tuple[int, int]:
    """(faces visible, faces in view) over the labelled frames of a moving-face clip: a face is
    visible when more than VISIBLE of its inner box (eyes to chin, `moving.inner_box`) is
    unchanged in the output, a pixel being unchanged when no channel moved by more than
    UNCHANGED grey levels (codec noise stays below). Parts of the box outside the frame are not
    shown, so they count as hidden. Run with the `solid` filter: it changes every face pixel but
    the darkest, so a hidden face cannot pass for visible."""
    visible = seen = 0
    for index, faces in labels.items():
        before, after = source[index], output[index][: source[index].shape[0]]
        moved = np.abs(after.astype(np.int16) - before[:, : after.shape[1]]).max(axis=2)
        height, width = moved.shape
        for face in faces:
            inner = inner_box(face)
            x0, y0 = max(0, inner.x), max(0, inner.y)
            x1, y1 = min(width, inner.x + inner.w), min(height, inner.y + inner.h)
            if x1 <= x0 or y1 <= y0:
                continue
            seen += 1
            unchanged = int((moved[y0:y1, x0:x1] <= UNCHANGED).sum())
            visible += unchanged > VISIBLE * inner.w * inner.h
    return visible, seen


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video, decoded by OpenCV."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def covered(face: Box, mask: np.ndarray) -> float:
    """Share of a face's box that the mask covers."""
    region = mask[face.y : face.y + face.h, face.x : face.x + face.w]
    return float(region.mean()) if region.size else 0.0


def is_false(box: Box, faces: list[Box]) -> bool:
    """Whether an output box hides none of the labelled faces."""
    return all(
        intersection(box, face) < ON_FACE * box.w * box.h
        and intersection(box, face) < OVER_FACE * face.w * face.h
        for face in faces
    )


@dataclass(frozen=True)
class Score:
    hidden: int
    faces: int
    false_boxes: int
    frames: int

    @property
    def recall(self) -> float:
        return self.hidden / self.faces if self.faces else 1.0

    @property
    def false_per_frame(self) -> float:
        return self.false_boxes / self.frames if self.frames else 0.0


def score(
    labels: dict[int, list[Box]],
    masks: Callable[[int], np.ndarray],
    boxes: Callable[[int], list[Box]],
) -> Score:
    """Recall and false boxes over the labelled frames, given each frame's mask and boxes."""
    hidden = faces = false = 0
    for frame, faces_here in labels.items():
        mask = masks(frame)
        hidden += sum(covered(face, mask) >= HIDDEN for face in faces_here)
        faces += len(faces_here)
        false += sum(is_false(box, faces_here) for box in boxes(frame))
    return Score(hidden, faces, false, len(labels))


def score_run(clip: str, faces: list[list[Box]], shape: tuple, params: VideoParams) -> Score:
    """Score the per-frame boxes of an Atelier run of a labelled clip."""
    padded = [
        [Box(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in _padded(f, params, shape)]
        for f in faces
    ]
    return score(
        in_frame(load_labels(clip), shape),
        lambda i: masks_of(faces[i], shape, params.padding, params.mask == "ellipse"),
        lambda i: padded[i],
    )


def _padded(boxes: list[Box], params: VideoParams, shape: tuple) -> list[tuple]:
    return [pad_box(box, params.padding, shape[1], shape[0]) for box in boxes]


def frame_shape(path: Path) -> tuple[int, int]:
    capture = cv2.VideoCapture(str(path))
    shape = (
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
    )
    capture.release()
    return shape
