"""The equal-time sheet on a tiny image: both sides get the engine's seconds, the tutorial's
loss is measured on the engine's objective, and the sheet and report have a row per pair."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from atelier.schemas import NSTParams
from bench.nst_sheet import ROOT, report, run_pair, sheet
from workers.nst.engine import StyleTransferEngine

pytestmark = pytest.mark.slow  # an XLA compile and a few eager steps: ~20 s on 2 cores


def test_a_pair_gives_both_images_at_equal_time_and_a_sheet_row():
    params = NSTParams(size=32, iterations=3, weights="none")
    data = ROOT / "tests" / "data"
    pair = run_pair(
        StyleTransferEngine("none"),
        data / "content" / "tubingen.jpg",
        data / "style" / "starry_night.jpg",
        params,
    )
    assert pair.engine_iterations == 3 and pair.tutorial_iterations >= 1
    assert pair.seconds > 0 and math.isfinite(pair.tutorial_loss) and pair.engine_loss > 0
    assert pair.engine_image.shape == pair.tutorial_image.shape == (24, 32, 3)
    png = Image.open(io.BytesIO(sheet([pair], 32)))
    assert png.size == (4 * 192 + 3 * 4, 2 * 192 + 4)  # content + 3 columns; header + 1 row
    text = report([pair], params)
    assert "| tubingen | starry_night |" in text and "nst-equal-time.png" in text
