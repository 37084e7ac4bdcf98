"""Outputs larger than the memory budget: optimised whole at a size that fits, then refined in
overlapping feathered tiles, without visible tile borders."""

from __future__ import annotations

import numpy as np

from atelier.schemas import NSTParams
from workers.nst.engine import EngineJob, StyleTransferEngine
from workers.nst.tiles import feather_windows, layout, memory_for_pixels, pixels_for_budget

BUDGET = 48 * 48  # pixels per pass: a 96 px output (72 x 96) needs six tiles


def test_layout_covers_the_image_within_the_budget_and_windows_sum_to_one():
    for height, width, budget in ((72, 96, BUDGET), (2048, 1536, 1024 * 1024), (40, 300, 1600)):
        tiles = layout(height, width, budget, 16)
        assert len({(t.height, t.width) for t in tiles}) == 1  # one shape: one compile
        assert all(t.height * t.width <= budget for t in tiles)
        covered = np.zeros((height, width))
        for tile, window in zip(tiles, feather_windows(tiles, height, width), strict=True):
            covered[tile.rows, tile.cols] += window[..., 0]
        np.testing.assert_allclose(covered, 1.0, rtol=1e-5)
    layers = (*NSTParams().style_layers, NSTParams().content_layer)
    assert pixels_for_budget(memory_for_pixels(BUDGET, layers), layers) == BUDGET
    assert pixels_for_budget(4096, layers) > 1024 * 1024 > pixels_for_budget(4096, layers) / 2


def _seam_contrast(image: np.ndarray, axis: int, seam: int) -> float:
    """Mean |difference| between the lines either side of `seam`, over the mean of the same
    measure for the lines up to 4 px around it (a border shows as a ratio well above 1)."""
    steps = np.abs(np.diff(image.astype(np.float64), axis=axis)).mean(axis=(1 - axis, 2))
    near = [steps[i] for i in range(seam - 5, seam + 4) if i != seam - 1 and 0 <= i < len(steps)]
    return float(steps[seam - 1] / np.mean(near))


def test_large_output_is_tiled_without_visible_seams(tubingen, starry):
    params = NSTParams(size=96, iterations=12, weights="none")
    layers = (*params.style_layers, params.content_layer)
    engine = StyleTransferEngine(
        "none", jit_compile=False, memory_mb=memory_for_pixels(BUDGET, layers)
    )
    assert engine.max_pixels(params) == BUDGET
    [result] = engine.run([EngineJob(tubingen, [("starry", starry)])], params)
    assert result.image.shape == (72, 96, 3)
    assert len(result.losses) == 12
    assert result.final.total < 0.7 * result.losses[0].total

    tiles = layout(72, 96, BUDGET, 16)
    assert len(tiles) > 1
    rows = {t.top for t in tiles} | {t.top + t.height for t in tiles}
    cols = {t.left for t in tiles} | {t.left + t.width for t in tiles}
    seams = [(0, r) for r in rows if 0 < r < 72] + [(1, c) for c in cols if 0 < c < 96]
    for axis, seam in seams:
        assert _seam_contrast(result.image, axis, seam) < 1.3, (axis, seam)

    # the measure does see a border: the same image with one tile pasted 12 grey levels lighter
    pasted = result.image.astype(np.float64)
    pasted[:, 48:] += 12.0
    assert _seam_contrast(pasted, 1, 48) > 2.0
