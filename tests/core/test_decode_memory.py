"""Images decode at the size a job needs: a small file declaring a huge image costs little.

Measured by what the code controls, the same on every machine (resident memory differs by
allocator): every image Pillow makes while loading fits in one block of its memory arena (a
full-size decode of these files needs several), and the peak of the arrays made (numpy reports
its allocations to `tracemalloc`) stays far below the float32 copy of the full image.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from atelier.media import load_rgb

BLOCK = 16 * 2**20  # Pillow's default arena block, set explicitly so the count means one thing


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    """While the block runs: images Pillow made, arena blocks they took, and the peak MB of
    Python-tracked allocations (the arrays)."""
    got: dict[str, float] = {}
    block = Image.core.get_block_size()
    Image.core.set_block_size(BLOCK)
    before = Image.core.get_stats()
    tracemalloc.start()
    try:
        yield got
    finally:
        got["peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        after = Image.core.get_stats()
        Image.core.set_block_size(block)
        got["images"] = after["new_count"] - before["new_count"]
        got["blocks"] = after["allocated_blocks"] - before["allocated_blocks"]


def test_a_tiny_jpeg_declaring_7999_squared_decodes_small_for_a_32px_job(tmp_path: Path):
    path = tmp_path / "huge.jpg"
    Image.new("L", (7999, 7999), 128).save(path, quality=10)  # a flat grey: a small file
    assert path.stat().st_size < 1_000_000
    with measured() as got:
        image = load_rgb(path, 64_000_000, 32)
    # Full size, the greyscale decode alone is 64 MB (4 blocks) and the float32 RGB 768 MB;
    # at 1/8 scale (draft mode) it is 1 MB.
    assert got["blocks"] == got["images"], got
    assert got["peak_mb"] < 16, got
    assert 32 <= max(image.shape[:2]) <= 1000 and image.shape[2] == 3 and image.dtype == np.float32


def test_other_formats_are_reduced_before_the_float_conversion(tmp_path: Path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (4000, 1000), (10, 200, 30)).save(path)
    with measured() as got:
        image = load_rgb(path, 64_000_000, 1000)
    # The decoded 12 MB fit in a block; the 48 MB float32 copy of the full image is never made.
    assert got["blocks"] == got["images"], got
    assert got["peak_mb"] < 16, got
    assert image.shape == (250, 1000, 3)
