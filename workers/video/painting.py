"""The `painting` video filter: the fast style-transfer engine on face regions or whole frames.

One painting's style vector is computed once per run; every ROI (or frame) is then one forward
pass of the transform network (regions up to 384 px are scaled to 384, painted and scaled back;
whole frames larger than that are painted in feathered tiles, as the fast NST engine does).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from atelier.media import load_rgb
from workers.fast.engine import FastJob, shared_engine


class Painter:
    """Paints BGR images (video frames, face ROIs) with one painting's style."""

    def __init__(self, style_path: Path | str, max_pixels: int = 64_000_000) -> None:
        self.engine = shared_engine()
        style = load_rgb(Path(style_path), max_pixels)
        key = hashlib.sha256(Path(style_path).read_bytes()).hexdigest()
        self.vector = self.engine.mixed_vector(FastJob(content=style, styles=[(key, style)]))

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        height, width = bgr.shape[:2]
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
        painted, _ = self.engine.paint(rgb, self.vector, height, width)
        out = np.clip(np.rint(painted), 0, 255).astype(np.uint8)
        return cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
