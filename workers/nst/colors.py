"""Luminance-only style transfer (`preserve_colors`), after Gatys et al. 2016.

The optimisation runs as usual; the result then keeps only its luminance (Y) and takes the
chroma (Cb, Cr) of the content image. Recombining in full-range BT.601 YCbCr (the JPEG
transform) is exact and linear, so the output's chroma equals the content's except where the
recombined colour falls outside the RGB cube and is clipped.
"""

from __future__ import annotations

import numpy as np

_RGB_TO_YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ],
    dtype=np.float64,
)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)
_OFFSET = np.array([0.0, 128.0, 128.0])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 RGB in [0, 255] -> Y, Cb, Cr in [0, 255]."""
    return (rgb.astype(np.float64) @ _RGB_TO_YCBCR.T + _OFFSET).astype(np.float32)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of `rgb_to_ycbcr` (not clipped)."""
    return ((ycbcr.astype(np.float64) - _OFFSET) @ _YCBCR_TO_RGB.T).astype(np.float32)


def keep_content_colors(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The stylised image's luminance with the content's chroma, RGB clipped to [0, 255]."""
    mixed = rgb_to_ycbcr(content)
    mixed[..., 0] = rgb_to_ycbcr(stylized)[..., 0]
    return np.clip(ycbcr_to_rgb(mixed), 0.0, 255.0)
