"""Boards: the panels of one output frame in R rows by C columns (1x2, 2x2, 1x3, 3x1, 2x3, ...).

H.264 in yuv420p stores colour at half resolution, so both sides of an encoded frame must be even.
Panels keep the input's size unless the board would outgrow `max_width` x `max_height` (1920x1080
by default: a 2x2 board of a 1080p input would be 4K, four times the pixels to filter and encode);
then every panel is scaled down by the same factor to even sides. A board whose side is still odd
(a 1x1 or 1x2 board of an input with an odd height) gets one replicated row or column: scaling
would resample every pixel, padding touches none of the picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from atelier.schemas import board_shape


@dataclass(frozen=True)
class BoardGeometry:
    """Rows and columns of panels, the size of one panel and of the whole (even-sided) board."""

    rows: int
    cols: int
    panel_width: int
    panel_height: int

    @property
    def width(self) -> int:
        return _even(self.cols * self.panel_width)

    @property
    def height(self) -> int:
        return _even(self.rows * self.panel_height)


def _even(value: int) -> int:
    return value + value % 2


def _even_down(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def plan_board(
    layout: str, width: int, height: int, *, max_width: int = 1920, max_height: int = 1080
) -> BoardGeometry:
    """The geometry of `layout` ("RxC") for `width` x `height` input frames."""
    rows, cols = board_shape(layout)
    if rows * cols == 1:
        return BoardGeometry(1, 1, width, height)
    scale = min(1.0, max_width / (cols * width), max_height / (rows * height))
    if scale == 1.0:
        return BoardGeometry(rows, cols, width, height)
    return BoardGeometry(rows, cols, _even_down(width * scale), _even_down(height * scale))


def compose_board(panels: list[np.ndarray], geometry: BoardGeometry) -> np.ndarray:
    """Tile `panels` (left to right, top to bottom) into one frame of the geometry's size."""
    if len(panels) != geometry.rows * geometry.cols:
        raise ValueError(f"{len(panels)} panels for a {geometry.rows}x{geometry.cols} board")
    size = (geometry.panel_width, geometry.panel_height)
    fitted = [
        panel
        if panel.shape[1::-1] == size
        else cv2.resize(panel, size, interpolation=cv2.INTER_AREA)
        for panel in panels
    ]
    cols = geometry.cols
    rows = [fitted[r * cols : (r + 1) * cols] for r in range(geometry.rows)]
    lines = [row[0] if len(row) == 1 else cv2.hconcat(row) for row in rows]
    board = lines[0] if len(lines) == 1 else cv2.vconcat(lines)
    pad_bottom, pad_right = geometry.height - board.shape[0], geometry.width - board.shape[1]
    if pad_bottom or pad_right:
        board = cv2.copyMakeBorder(board, 0, pad_bottom, 0, pad_right, cv2.BORDER_REPLICATE)
    return board
