"""The benchmark images: square crops of the test photos, and the painting, at a given size.

Distinct crops keep a batch honest (no two jobs share pixels); one square shape lets the engine
stack them into one tensor.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from atelier.media import load_rgb, resize_longest, resize_to

ROOT = Path(__file__).resolve().parents[1]
IMAGE_DIRS = (ROOT / "tests" / "data", ROOT / "samples")
STYLE = "starry_night.jpg"
MAX_PIXELS = 64_000_000


def image_dir() -> Path:
    for folder in IMAGE_DIRS:
        if (folder / "style" / STYLE).is_file() and any((folder / "content").glob("*.jpg")):
            return folder
    sys.exit(f"no content/*.jpg and style/{STYLE} under {' or '.join(map(str, IMAGE_DIRS))}")


def distinct_contents(count: int, size: int) -> list[np.ndarray]:
    """`count` different size x size crops of the content photos: left, centre and right (or
    top, middle, bottom) squares of each photo, then the same mirrored and flipped. Distinct
    pixels keep the batch honest; one square shape lets the engine stack them."""
    photos = [
        load_rgb(path, MAX_PIXELS) for path in sorted((image_dir() / "content").glob("*.jpg"))
    ]
    flips = (
        lambda a: a,
        lambda a: a[:, ::-1],
        lambda a: a[::-1],
        lambda a: a[::-1, ::-1],
    )
    variants = len(photos) * 3 * len(flips)
    if count > variants:
        raise ValueError(f"at most {variants} distinct contents, {count} asked")
    crops = []
    for k in range(count):
        photo = photos[k % len(photos)]
        where, flip = (k // len(photos)) % 3, flips[k // (len(photos) * 3)]
        side = min(photo.shape[:2])
        top = (photo.shape[0] - side) * where // 2
        left = (photo.shape[1] - side) * where // 2
        square = photo[top : top + side, left : left + side]
        crops.append(resize_to(np.ascontiguousarray(flip(square)), size, size))
    return crops


def style_image(size: int) -> np.ndarray:
    return resize_longest(load_rgb(image_dir() / "style" / STYLE, MAX_PIXELS), size)
