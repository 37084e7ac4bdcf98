"""Filters applied to the face regions of a frame, and to nothing else.

Each face box grows by `padding` (detectors box the eyes-to-mouth area; hair, ears and chin
identify a person too), is clipped to the frame, and becomes a region of interest (ROI). A filter
turns the ROI's pixels into new ones; a mask decides which of them replace the frame's: the whole
rectangle (`box`) or the ellipse inscribed in it (`ellipse`, closer to a face's outline). Every
filtered ROI is computed from the untouched frame, so overlapping faces do not filter each other's
output twice, and the frame passed in is never modified.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from workers.video.detect import Box

ORIGINAL = "original"
OUTLINE_COLOR = (0, 255, 0)


def pad_box(box: Box, padding: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The ROI (x0, y0, x1, y1) of a face box grown by `padding` of its size around its centre,
    clipped to a `width` x `height` frame (possibly empty at a frame edge)."""
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    half_w, half_h = box.w * (1 + padding) / 2, box.h * (1 + padding) / 2
    x0, y0 = max(0, round(cx - half_w)), max(0, round(cy - half_h))
    x1, y1 = min(width, round(cx + half_w)), min(height, round(cy + half_h))
    return x0, y0, max(x0, x1), max(y0, y1)


def _blur(roi: np.ndarray) -> np.ndarray:
    """A Gaussian blur whose reach is about a quarter of the ROI, whatever its size: done on a
    copy shrunk to 32 px, so a large face costs no more than a small one."""
    height, width = roi.shape[:2]
    scale = 32 / max(height, width)
    small = cv2.resize(
        roi,
        (max(1, round(width * scale)), max(1, round(height * scale))),
        interpolation=cv2.INTER_AREA,
    )
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=4, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _pixelate(roi: np.ndarray) -> np.ndarray:
    """A mosaic of about 10 cells across the ROI's longer side."""
    height, width = roi.shape[:2]
    cell = max(1, -(-max(height, width) // 10))
    small = cv2.resize(
        roi,
        (max(1, round(width / cell)), max(1, round(height / cell))),
        interpolation=cv2.INTER_AREA,
    )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def _solid(roi: np.ndarray) -> np.ndarray:
    return np.zeros_like(roi)


def _cartoon(roi: np.ndarray) -> np.ndarray:
    """Flat colours (edge-preserving bilateral smoothing) under dark outlines (adaptive
    threshold of the median-smoothed grey image)."""
    color = cv2.bilateralFilter(roi, 9, 75, 75)
    gray = cv2.medianBlur(cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY), 5)
    edges = cv2.adaptiveThreshold(
        gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, blockSize=9, C=2
    )
    return cv2.bitwise_and(color, color, mask=edges)


def _sketch(roi: np.ndarray) -> np.ndarray:
    """A pencil drawing by colour dodge: the grey image divided by its blurred negative, which
    whitens flat areas and leaves strokes where the brightness changes."""
    gray = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY)
    sigma = max(1.0, max(roi.shape[:2]) / 30)
    blurred = cv2.GaussianBlur(255 - gray, (0, 0), sigmaX=sigma)
    return cv2.cvtColor(cv2.divide(gray, 255 - blurred, scale=256), cv2.COLOR_GRAY2BGR)


def _edges(roi: np.ndarray) -> np.ndarray:
    """White Canny edges on black."""
    gray = cv2.GaussianBlur(cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY), (3, 3), 0)
    return cv2.cvtColor(cv2.Canny(gray, 50, 150), cv2.COLOR_GRAY2BGR)


def _colormap(roi: np.ndarray) -> np.ndarray:
    """Brightness mapped to false colours."""
    return cv2.applyColorMap(cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY), cv2.COLORMAP_JET)


def _watercolor(roi: np.ndarray) -> np.ndarray:
    """OpenCV's watercolour-like non-photorealistic rendering (`cv2.stylization`; the filter was
    called `stylize` before, a name the schema still accepts)."""
    return cv2.stylization(roi, sigma_s=60, sigma_r=0.45)


ROI_FILTERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "blur": _blur,
    "pixelate": _pixelate,
    "solid": _solid,
    "cartoon": _cartoon,
    "sketch": _sketch,
    "edges": _edges,
    "colormap": _colormap,
    "watercolor": _watercolor,
}
FILTER_NAMES: tuple[str, ...] = (ORIGINAL, "none", *ROI_FILTERS)
PAINTING = "painting"
"""The fast style-transfer filter: it needs a `painter` (see `workers.video.painting`)."""
Painter = Callable[[np.ndarray], np.ndarray]


def _outline(roi: np.ndarray, mask: str) -> np.ndarray:
    """The ROI with its outline drawn on it, inside its bounds."""
    out = roi.copy()
    height, width = roi.shape[:2]
    if mask == "ellipse":
        center, axes = (width // 2, height // 2), (max(1, width // 2 - 1), max(1, height // 2 - 1))
        cv2.ellipse(out, center, axes, 0, 0, 360, OUTLINE_COLOR, 2)
    else:
        cv2.rectangle(out, (0, 0), (width - 1, height - 1), OUTLINE_COLOR, 2)
    return out


def _ellipse_mask(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (width // 2, height // 2), 0, 0, 360, 255, -1)
    return mask.astype(bool)


def apply_filter(
    frame: np.ndarray,
    boxes: list[Box],
    name: str,
    *,
    mask: str = "box",
    padding: float = 0.15,
    painter: Painter | None = None,
) -> np.ndarray:
    """A copy of `frame` with filter `name` applied inside each face's ROI. `original` returns
    the frame itself (board panels show it untouched); `none` only draws each ROI's outline;
    `painting` paints each ROI with `painter` (BGR in, BGR out, same size)."""
    if name == PAINTING and painter is None:
        raise ValueError("the painting filter needs a painter (a style image)")
    if name not in FILTER_NAMES and name != PAINTING:
        raise ValueError(f"unknown filter {name!r}")
    if mask not in ("box", "ellipse"):
        raise ValueError(f"unknown mask {mask!r}")
    if name == ORIGINAL:
        return frame
    out = frame.copy()
    height, width = frame.shape[:2]
    for box in boxes:
        x0, y0, x1, y1 = pad_box(box, padding, width, height)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        roi = frame[y0:y1, x0:x1]
        if name == "none":
            out[y0:y1, x0:x1] = _outline(roi, mask)
            continue
        filtered = painter(roi) if name == PAINTING and painter else ROI_FILTERS[name](roi)
        if mask == "ellipse":
            inside = _ellipse_mask(y1 - y0, x1 - x0)
            out[y0:y1, x0:x1][inside] = filtered[inside]
        else:
            out[y0:y1, x0:x1] = filtered
    return out
