"""The labelled face set and how a run is scored on it (shared by `bench.faces` and the recall
tests).

The labelled set (tests/data/labels, see tests/data/SOURCES.md) holds face boxes for every 10th
frame of chaplin.mp4 (two men, faces 20-45 px tall, turned, under hats) and for every frame of
closeup.mp4 (one face turned, tilted, zoomed, panned and partly hidden). A labelled face counts
as *hidden* when the output's masks cover at least 70% of its box in that frame; recall is the
share of labelled faces hidden. A *false box* is an output mask that hides no labelled face:
less than 30% of it lies on any labelled face and it covers less than half of any; counted per
labelled frame.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from atelier.schemas import VideoParams
from tests.support.procs import REPO
from workers.video.detect import Box
from workers.video.filters import pad_box

DATA = REPO / "tests" / "data"
CLIPS = {"chaplin": DATA / "video" / "chaplin.mp4", "closeup": DATA / "video" / "closeup.mp4"}
HIDDEN = 0.7
"""Share of a labelled face's box the masks must cover for the face to count as hidden."""
ON_FACE = 0.3
"""Share of an output box that must lie on a labelled face for the box not to be false..."""
OVER_FACE = 0.5
"""...or share of a labelled face the box must cover (a loose box around a face is no false one)."""


def load_labels(clip: str) -> dict[int, list[Box]]:
    """The labelled faces of a clip: frame index -> face boxes (frames without faces included)."""
    raw = json.loads((DATA / "labels" / f"{clip}.json").read_text())
    return {int(frame): [Box(*box) for box in boxes] for frame, boxes in raw.items()}


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


def covered(face: Box, mask: np.ndarray) -> float:
    """Share of a face's box that the mask covers."""
    region = mask[face.y : face.y + face.h, face.x : face.x + face.w]
    return float(region.mean()) if region.size else 0.0


def intersection(a: Box, b: Box) -> int:
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    return ix * iy


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
        load_labels(clip),
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
