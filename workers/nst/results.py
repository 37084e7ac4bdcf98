"""What a style-transfer run gives back: loss rows, progress events with previews, and each
job's result; and the groups of jobs (same shape) the engine optimises together, whose state the
results are read from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from atelier.schemas import NSTParams
from workers.nst.colors import keep_content_colors
from workers.nst.plan import EngineJob
from workers.nst.steps import Optimization


class LossRow(NamedTuple):
    """Losses of one job at one iteration, weighted (content + style + tv == total)."""

    iteration: int
    total: float
    content: float
    style: float
    tv: float


@dataclass
class EngineResult:
    image: np.ndarray  # uint8 HxWx3
    losses: list[LossRow]  # one row per iteration, all scales, iteration counted from 1
    final: LossRow  # losses of the returned image (before colour preservation and rounding)
    seconds: float  # wall time of the job's shape group (its jobs ran together)
    iterations_per_second: float  # optimiser iterations of the group per second
    device: str
    weights: str


@dataclass
class ProgressEvent:
    iteration: int  # 1..of, across all scales
    of: int
    losses: list[LossRow]  # the latest row of every job, in input order
    previews: list[np.ndarray] | None  # uint8 images in input order when preview_every hits


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


@dataclass
class Group:
    """Jobs whose contents have the same shape at the requested size."""

    indices: list[int]
    jobs: list[EngineJob]
    contents: np.ndarray  # (B, H, W, 3) at the finest scale
    image: np.ndarray | None = None  # latest result (B, h, w, 3), carried between scales
    final: np.ndarray | None = None  # (4, B) losses of the returned images
    seconds: float = 0.0
    steps: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.contents.shape[1], self.contents.shape[2]


def previews(
    groups: list[Group], runs: list[Optimization], count: int, params: NSTParams
) -> list[np.ndarray]:
    """The current image of every job, in input order, in preserved colours when asked."""
    shown: list[np.ndarray] = [np.empty(0)] * count
    for group, opt in zip(groups, runs, strict=True):
        images = opt.image().numpy()
        for k, index in enumerate(group.indices):
            image = images[k]
            if params.preserve_colors:
                image = keep_content_colors(image, opt.contents[k])
            shown[index] = to_uint8(image)
    return shown


def results(
    groups: list[Group],
    rows: list[list[LossRow]],
    params: NSTParams,
    total: int,
    made_by: tuple[str, str],
) -> list[EngineResult]:
    """Every job's result, in input order; `made_by`: the engine's (device, weights)."""
    found: list[EngineResult | None] = [None] * len(rows)
    for group in groups:
        for k, index in enumerate(group.indices):
            image = group.image[k]
            if params.preserve_colors:
                image = keep_content_colors(image, group.contents[k])
            found[index] = EngineResult(
                image=to_uint8(image),
                losses=rows[index],
                final=LossRow(total, *(float(p) for p in group.final[:, k])),
                seconds=group.seconds,
                iterations_per_second=group.steps / group.seconds if group.seconds else 0.0,
                device=made_by[0],
                weights=made_by[1],
            )
    return [result for result in found if result is not None]
