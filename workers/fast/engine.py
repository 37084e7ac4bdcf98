"""The fast engine: arbitrary-style transfer in one forward pass (Ghiasi et al. 2017).

A style image becomes a 100-number style vector (`MagentaNetworks.predict`); the transform network
paints a content image with that vector. What this module adds around the two networks:

- **Style vectors are cached** per style (its file's sha256), like the Gatys engine's Gram targets:
  every content of a grid, and later messages on the same worker, reuse them
  (`style_vectors_computed` counts the predictions).
- **Blend** mixes the style vectors with the normalised `style_blend` weights; **strength** moves
  from the content's own style vector (the content image run through the style network) to the
  style's: `v = (1 - strength) * v_content + strength * v_style`, as Magenta's demo does.
- **Any content size.** The transform network takes 384x384 inputs. Up to 384 px the content is
  scaled so its longest side is 384, reflect-padded to a square, painted, cropped and scaled to the
  requested size. Larger outputs are painted in 384x384 tiles at full resolution that overlap by
  `OVERLAP` px and are feathered together (linear ramps), which keeps the network's brush strokes
  at their trained scale and the detail of the content; `method="resize"` (paint at 384, then
  upsample) is kept for comparison (bench/fast.py measures both; the README has the figures).
- `preserve_colors` keeps the content's chroma, as the Gatys engine does (`workers/nst/colors`).
- Batches: a message's contents are painted one after the other (the converted graphs take one
  image per call); the style vectors are shared.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from atelier.cache import LRU
from atelier.errors import InputError
from atelier.media import fit_longest
from workers.fast.network import CONTENT_SIDE, STYLE_SIDE, MagentaNetworks
from workers.nst.colors import keep_content_colors

OVERLAP = 96
"""Pixels shared by neighbouring tiles, blended with linear ramps."""
Method = Literal["tile", "resize"]


@dataclass
class FastJob:
    """One content image (float32 HxWx3, 0-255) and its style images, each with a cache key (the
    style file's sha256); `content_key` caches the content's own style vector (strength < 1)."""

    content: np.ndarray
    styles: list[tuple[str, np.ndarray]]
    content_key: str | None = None


@dataclass
class FastResult:
    image: np.ndarray  # uint8 HxWx3
    seconds: float  # wall time of this job: style vectors (unless cached) and painting
    tiles: int  # transform calls made


@dataclass
class Timings:
    """Seconds spent in each network since the engine was made (bench/fast.py reports them)."""

    predict: float = 0.0
    transform: float = 0.0
    calls: dict[str, int] = field(default_factory=lambda: {"predict": 0, "transform": 0})


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)


def style_input(image: np.ndarray) -> np.ndarray:
    """The style network's input: the central square of `image` (0-255) at 256x256, in [0, 1]."""
    rows, cols = image.shape[:2]
    side = min(rows, cols)
    top, left = (rows - side) // 2, (cols - side) // 2
    square = np.ascontiguousarray(image[top : top + side, left : left + side], np.float32)
    return np.clip(_resize(square, STYLE_SIDE, STYLE_SIDE) / 255.0, 0.0, 1.0)


def _pad_to(image: np.ndarray, side: int) -> np.ndarray:
    """Reflect-pad an image smaller than `side` on either axis to at least `side` x `side`."""
    rows, cols = image.shape[:2]
    pad_rows, pad_cols = max(0, side - rows), max(0, side - cols)
    if not (pad_rows or pad_cols):
        return image
    mode = "reflect" if min(rows, cols) > 1 else "edge"
    return np.pad(image, ((0, pad_rows), (0, pad_cols), (0, 0)), mode=mode)


def tile_starts(length: int, side: int = CONTENT_SIDE, overlap: int = OVERLAP) -> list[int]:
    """Evenly spread tile offsets covering [0, length) with at least `overlap` px shared."""
    if length <= side:
        return [0]
    count = int(np.ceil((length - overlap) / (side - overlap)))
    return [round(i * (length - side) / (count - 1)) for i in range(count)]


def _ramp(side: int, overlap: int) -> np.ndarray:
    """A 1-D feather weight: rises over `overlap` px at both ends, 1 in the middle, never 0."""
    positions = np.arange(side, dtype=np.float32) + 0.5
    return np.minimum(1.0, np.minimum(positions, side - positions) / overlap)


class FastStyleEngine:
    """The networks and the style-vector cache of one worker process."""

    def __init__(self, style_cache_size: int = 64, threads: int = 0) -> None:
        self.networks = MagentaNetworks(threads)
        self.digests = self.networks.digests
        self.style_vectors_computed = 0
        self.timings = Timings()
        self._vectors: LRU[np.ndarray] = LRU(style_cache_size)

    # -- style vectors -----------------------------------------------------------------------

    def style_vector(self, key: str | None, image: np.ndarray) -> np.ndarray:
        """The image's style vector, from the cache when `key` was seen."""

        def compute() -> np.ndarray:
            started = time.perf_counter()
            vector = self.networks.predict(style_input(image))
            self.timings.predict += time.perf_counter() - started
            self.timings.calls["predict"] += 1
            self.style_vectors_computed += 1
            return vector

        return compute() if key is None else self._vectors.get_or_make(key, compute)

    def mixed_vector(
        self,
        job: FastJob,
        blend: Sequence[float] | None = None,
        strength: float = 1.0,
    ) -> np.ndarray:
        """The blended style vector of the job's styles, moved from the content's own vector
        by `strength` (1: the style's alone; 0: the content's, i.e. a repainted content)."""
        if not job.styles:
            raise InputError("a style transfer job needs at least one style image")
        weights = np.asarray(blend if blend is not None else [1.0] * len(job.styles), np.float64)
        if len(weights) != len(job.styles):
            raise InputError(
                f"style_blend has {len(weights)} weights for {len(job.styles)} style images"
            )
        vectors = np.stack([self.style_vector(key, image) for key, image in job.styles])
        style = (weights / weights.sum()) @ vectors.astype(np.float64)
        if strength < 1.0:
            own = self.style_vector(job.content_key, job.content).astype(np.float64)
            style = (1.0 - strength) * own + strength * style
        return style.astype(np.float32)

    # -- painting ----------------------------------------------------------------------------

    def paint(
        self,
        content: np.ndarray,
        vector: np.ndarray,
        height: int,
        width: int,
        method: Method = "tile",
    ) -> tuple[np.ndarray, int]:
        """`content` (HxWx3, 0-255) painted with `vector` at `height` x `width`; float 0-255,
        and the number of transform calls it took."""
        if method == "tile" and max(height, width) > CONTENT_SIDE:
            work = _resize(content.astype(np.float32), height, width) / 255.0
        else:
            rows, cols = fit_longest(height, width, CONTENT_SIDE)
            work = _resize(content.astype(np.float32), rows, cols) / 255.0
        rows, cols = work.shape[:2]
        padded = _pad_to(np.clip(work, 0.0, 1.0), CONTENT_SIDE)
        total = np.zeros(padded.shape, np.float32)
        weight = np.zeros(padded.shape[:2], np.float32)
        ramp_y = _ramp(CONTENT_SIDE, OVERLAP) if padded.shape[0] > CONTENT_SIDE else None
        ramp_x = _ramp(CONTENT_SIDE, OVERLAP) if padded.shape[1] > CONTENT_SIDE else None
        feather = np.outer(
            ramp_y if ramp_y is not None else np.ones(CONTENT_SIDE, np.float32),
            ramp_x if ramp_x is not None else np.ones(CONTENT_SIDE, np.float32),
        )
        calls = 0
        for top in tile_starts(padded.shape[0]):
            for left in tile_starts(padded.shape[1]):
                tile = padded[top : top + CONTENT_SIDE, left : left + CONTENT_SIDE]
                started = time.perf_counter()
                painted = self.networks.transform(tile, vector)
                self.timings.transform += time.perf_counter() - started
                self.timings.calls["transform"] += 1
                calls += 1
                total[top : top + CONTENT_SIDE, left : left + CONTENT_SIDE] += (
                    painted * feather[..., None]
                )
                weight[top : top + CONTENT_SIDE, left : left + CONTENT_SIDE] += feather
        image = (total / weight[..., None])[:rows, :cols] * 255.0
        return np.clip(_resize(image, height, width), 0.0, 255.0), calls

    def stylize(
        self,
        job: FastJob,
        size: int,
        blend: Sequence[float] | None = None,
        strength: float = 1.0,
        preserve_colors: bool = False,
        method: Method = "tile",
    ) -> FastResult:
        """One job at `size` (longest side), as a uint8 image."""
        started = time.perf_counter()
        if job.content.ndim != 3 or job.content.shape[2] != 3:
            raise ValueError(f"content must be HxWx3, got shape {job.content.shape}")
        height, width = fit_longest(*job.content.shape[:2], size)
        vector = self.mixed_vector(job, blend, strength)
        image, calls = self.paint(job.content, vector, height, width, method)
        if preserve_colors:
            image = keep_content_colors(
                image, _resize(job.content.astype(np.float32), height, width)
            )
        result = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        return FastResult(result, time.perf_counter() - started, calls)


_SHARED: FastStyleEngine | None = None


def shared_engine_loaded() -> bool:
    """Whether this process has loaded the networks already (the first load takes seconds)."""
    return _SHARED is not None


def shared_engine() -> FastStyleEngine:
    """The process's engine (models loaded once, style vectors cached across messages)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = FastStyleEngine()
    return _SHARED
