"""Style statistics in a fixed feature space, to measure how close an image is to a painting.

Without ImageNet VGG19 weights here, "style" is measured the way texture synthesis showed it can
be: Gram matrices of a fixed, seeded random convolutional network (three levels of 3x3 filters
with ReLU and 2x2 pooling), plus first- and second-order colour statistics. Equal seeds give equal
features, so distances are comparable across images, runs and engines.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

LEVELS = 3
CHANNELS = 24


@lru_cache(maxsize=4)
def _filters(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    filters, fan_in = [], 3
    for _ in range(LEVELS):
        weight = rng.normal(0.0, 1.0 / np.sqrt(9 * fan_in), size=(9 * fan_in, CHANNELS))
        filters.append(weight.astype(np.float32))
        fan_in = CHANNELS
    return tuple(filters)


def _conv3x3(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(0, 1))
    rows, cols = x.shape[:2]
    patches = windows.transpose(0, 1, 3, 4, 2).reshape(rows * cols, -1)
    return np.maximum(patches @ weight, 0.0).reshape(rows, cols, -1)


def features(image: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """Feature maps (N x C) of every level for an HxWx3 image in [0, 255]."""
    x = np.asarray(image, np.float32) / 255.0 - 0.5
    out = []
    for level, weight in enumerate(_filters(seed)):
        if level:
            rows, cols = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
            x = x[:rows, :cols].reshape(rows // 2, 2, cols // 2, 2, -1).mean(axis=(1, 3))
        x = _conv3x3(x, weight)
        out.append(x.reshape(-1, x.shape[-1]))
    return out


def grams(image: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    return [f.T @ f / len(f) for f in features(image, seed)]


def gram_distance(image: np.ndarray, style: np.ndarray, seed: int = 0) -> float:
    """Mean relative Frobenius distance of the Gram matrices, level by level (0: same style)."""
    pairs = zip(grams(image, seed), grams(style, seed), strict=True)
    return float(np.mean([np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in pairs]))


def color_distance(image: np.ndarray, style: np.ndarray) -> float:
    """Distance of the RGB means plus distance of the RGB covariances (colours in [0, 1])."""
    a = np.asarray(image, np.float64).reshape(-1, 3) / 255.0
    b = np.asarray(style, np.float64).reshape(-1, 3) / 255.0
    mean = np.linalg.norm(a.mean(0) - b.mean(0))
    return float(mean + np.linalg.norm(np.cov(a.T) - np.cov(b.T)))
