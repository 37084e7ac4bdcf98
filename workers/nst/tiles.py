"""Images larger than the memory budget: how many pixels fit, and overlapping feathered tiles.

The engine optimises an image whole while it fits the budget. A scale that does not fit is
optimised as one image still (one Adam or L-BFGS state over all its pixels, a few bytes per
pixel), but its loss and gradient are computed tile by tile, so the network only ever holds one
tile's activations. Each tile's gradient is multiplied by a feather window before it is added in:
windows ramp linearly from the tile's inner edges and are normalised to sum to one at every
pixel, so a pixel near a tile's edge (whose features saw the tile's zero padding) takes its
gradient mostly from the neighbouring tile, where it lies further inside. No tile border is ever
a hard cut, and the image is one optimisation, so there is no seam to hide afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from atelier.vgg19 import ACTIVATION_COPIES, BYTES_PER_FLOAT, floats_per_pixel
from atelier.vgg19 import pixels_for_budget as pixels_for_budget  # what the engine plans with


@dataclass(frozen=True)
class Tile:
    top: int
    left: int
    height: int
    width: int

    @property
    def rows(self) -> slice:
        return slice(self.top, self.top + self.height)

    @property
    def cols(self) -> slice:
        return slice(self.left, self.left + self.width)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spaced tile starts covering `length`, neighbours overlapping by at least
    `overlap`."""
    if tile >= length:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    count = max(count, 2)
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_shape(height: int, width: int, max_pixels: int, need: int) -> tuple[int, int]:
    """The tile size: as square as the image allows, at most `max_pixels`, sides at least
    `need`... unless the budget is smaller than need², which then wins over the budget."""
    side = max(need, math.isqrt(max_pixels))
    tile_h = min(height, side)
    tile_w = min(width, max(need, max_pixels // tile_h))
    if tile_w == width and tile_h < height:  # a wide budget on a narrow image: taller tiles
        tile_h = min(height, max(need, max_pixels // tile_w))
    return tile_h, tile_w


def layout(height: int, width: int, max_pixels: int, need: int) -> list[Tile]:
    """Overlapping tiles of one shape covering an HxW image; overlap a quarter of a tile side
    (at least `need` px, the deepest layer's stride)."""
    tile_h, tile_w = tile_shape(height, width, max_pixels, need)
    overlap_h = min(tile_h - 1, max(need, tile_h // 4))
    overlap_w = min(tile_w - 1, max(need, tile_w // 4))
    return [
        Tile(top, left, tile_h, tile_w)
        for top in _starts(height, tile_h, overlap_h)
        for left in _starts(width, tile_w, overlap_w)
    ]


def _ramp(length: int, ramp: int, start_open: bool, end_open: bool) -> np.ndarray:
    """1 inside, falling linearly to near 0 at an edge that another tile continues."""
    weights = np.ones(length, np.float32)
    position = np.arange(length, dtype=np.float32)
    if start_open:
        weights = np.minimum(weights, (position + 0.5) / ramp)
    if end_open:
        weights = np.minimum(weights, (length - position - 0.5) / ramp)
    return weights


def feather_windows(tiles: list[Tile], height: int, width: int) -> list[np.ndarray]:
    """Per tile an (h, w, 1) window; at every pixel the windows of the tiles covering it sum
    to 1."""
    raw = []
    for tile in tiles:
        ramp_h = max(1, tile.height // 4)
        ramp_w = max(1, tile.width // 4)
        rows = _ramp(tile.height, ramp_h, tile.top > 0, tile.top + tile.height < height)
        cols = _ramp(tile.width, ramp_w, tile.left > 0, tile.left + tile.width < width)
        raw.append(rows[:, None] * cols[None, :])
    total = np.zeros((height, width), np.float32)
    for tile, window in zip(tiles, raw, strict=True):
        total[tile.rows, tile.cols] += window
    return [
        (window / total[tile.rows, tile.cols])[..., None]
        for tile, window in zip(tiles, raw, strict=True)
    ]


def memory_for_pixels(pixels: int, layers: tuple[str, ...]) -> float:
    """The `memory_mb` whose budget is `pixels` (the inverse of `pixels_for_budget`)."""
    return (pixels + 0.5) * floats_per_pixel(layers) * BYTES_PER_FLOAT * ACTIVATION_COPIES / 2**20
