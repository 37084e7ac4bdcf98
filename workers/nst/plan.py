"""Job planning for the style-transfer engine, with no TensorFlow: which scales a batch runs,
what a job's images become at each, and whether a job can run at all.

The engine plans with these before it builds anything, and the NST task checks each job with
`check_job` while it loads them, so a bad input fails alone and validating a job never loads
TensorFlow. The schedule itself is described in `workers.nst.engine`'s docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from atelier.errors import InputError
from atelier.media import fit_longest, resize_to
from atelier.schemas import NSTParams
from atelier.vgg19 import min_side
from workers.nst.tiles import Tile


@dataclass
class EngineJob:
    """One content image (float32 HxWx3, 0-255) and its style images, each with a cache key
    (the style file's sha256)."""

    content: np.ndarray
    styles: list[tuple[str, np.ndarray]]


@dataclass(frozen=True)
class Scale:
    divisor: int
    iterations: int


def needed_side(params: NSTParams) -> int:
    """The shortest image side that reaches every layer `params` uses."""
    return min_side((*params.style_layers, params.content_layer))


def schedule(
    params: NSTParams,
    shapes: list[tuple[int, int]],
    need: int,
    max_pixels: int | None = None,
) -> list[Scale]:
    """Coarse-to-fine scales sharing `params.iterations` steps (see the engine's docstring)."""
    divisors = [
        2**level
        for level in range(params.scales - 1, 0, -1)
        if all(min(scaled(shape, 2**level)) >= need for shape in shapes)
    ] + [1]
    if max_pixels is not None and not any(_fits(shapes, d, max_pixels) for d in divisors):
        divisor = divisors[0] * 2
        while all(min(scaled(shape, divisor)) >= need for shape in shapes):
            if _fits(shapes, divisor, max_pixels):
                divisors.insert(0, divisor)
                break
            divisor *= 2
    divisors = divisors[-params.iterations :]
    coarse = max(1, params.iterations // (len(divisors) + 1)) if len(divisors) > 1 else 0
    finest = params.iterations - coarse * (len(divisors) - 1)
    return [Scale(d, coarse) for d in divisors[:-1]] + [Scale(1, finest)]


def _fits(shapes: list[tuple[int, int]], divisor: int, max_pixels: int) -> bool:
    return all(math.prod(scaled(shape, divisor)) <= max_pixels for shape in shapes)


def scaled(shape: tuple[int, int], divisor: int) -> tuple[int, int]:
    """(height, width) of an image of `shape` at the scale `divisor`."""
    return max(1, round(shape[0] / divisor)), max(1, round(shape[1] / divisor))


def style_size(rows: int, cols: int, longest: int, need: int) -> tuple[int, int]:
    """The style image's (height, width) with its longest side `longest`, enlarged if its
    shortest side would be too small for the network (coarse scales, small style_scale)."""
    height, width = fit_longest(rows, cols, longest)
    if min(height, width) < need:
        factor = need / min(rows, cols)
        height, width = max(need, math.ceil(rows * factor)), max(need, math.ceil(cols * factor))
    if max(height, width) > 8 * max(longest, need):
        raise InputError(f"the style image ({cols}x{rows}) is too elongated to use")
    return height, width


def style_at(image: np.ndarray, longest: int, need: int) -> np.ndarray:
    """The style image at `style_size`."""
    height, width = style_size(*image.shape[:2], longest, need)
    return resize_to(image.astype(np.float32), height, width)


def check_job(job: EngineJob, params: NSTParams) -> None:
    """Raise InputError if `job` cannot run with `params`, at any scale it would use alone.

    A batch runs a subset of those scales (see `schedule`), so a job that passes runs in any
    batch: callers check each job first and fail the bad ones alone.
    """
    if not job.styles:
        raise InputError("a style transfer job needs at least one style image")
    if params.style_blend is not None and len(params.style_blend) != len(job.styles):
        raise InputError(
            f"style_blend has {len(params.style_blend)} weights for {len(job.styles)} style images"
        )
    need = needed_side(params)
    height, width = fit_longest(*job.content.shape[:2], params.size)
    if min(height, width) < need:
        raise InputError(
            f"the content image becomes {width}x{height} at size {params.size}; its "
            f"shortest side must be at least {need} px to reach the chosen VGG layers "
            "(raise `size` or use a less elongated image)"
        )
    for scale in schedule(params, [(height, width)], need):
        longest = max(scaled((height, width), scale.divisor))
        for _, image in job.styles:
            style_size(*image.shape[:2], max(1, round(longest * params.style_scale)), need)


def partition(height: int, width: int, max_pixels: int, need: int) -> list[Tile]:
    """Non-overlapping tiles of about `max_pixels` (sides at least `need`) covering HxW."""
    side = max(need, math.isqrt(max_pixels))
    rows = max(1, min(height // need, math.ceil(height / side)))
    cols = max(1, min(width // need, math.ceil(width / side)))
    tops = [round(i * height / rows) for i in range(rows + 1)]
    lefts = [round(j * width / cols) for j in range(cols + 1)]
    return [
        Tile(tops[i], lefts[j], tops[i + 1] - tops[i], lefts[j + 1] - lefts[j])
        for i in range(rows)
        for j in range(cols)
    ]
