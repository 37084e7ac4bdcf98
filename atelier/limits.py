"""Time limits for job messages, derived from the work each one carries.

NST and video messages get them when they are sent (a video's from the size and duration its
header declares, recorded when it was stored); a segmented video's `segment` and `join` messages
when the worker that probed the video sends them. Celery enforces them on a prefork worker (the
`atelier worker` default): at the soft limit the task gets `SoftTimeLimitExceeded` and fails its
jobs with a message; at the hard limit, a little later, the worker kills the process and starts a
new one, so work that is stuck (in C code, or waiting on something that never answers) cannot hold
a worker for ever, and the worker fails the jobs the killed process held
(`workers.tasks.hard_limits`). The soft limit can be lost when it lands while TensorFlow traces a
step (AutoGraph swallows the exception); the hard limit still holds. A solo pool cannot interrupt
its only process and ignores both.

The estimates are upper bounds for a slow CPU, several times what this project measured on a
2-core machine, times `ATELIER_TIME_LIMIT_SCALE` (0: no limits): a limit is there to stop hung
work, never honest work on a busy machine.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from atelier.models import Asset, Job, JobKind
from atelier.schemas import NSTParams, VideoParams
from atelier.vgg19 import block_of, channels_of, deepest, forward_flops, pixels_for_budget

START_SECONDS = 300.0  # import TensorFlow, build VGG19, compile the step for a new shape
COMPILE_SECONDS = 60.0  # each further shape a job is optimised at: a coarser scale, tiles
NST_SECONDS_PER_MEGAPIXEL_STEP = 60.0  # per image at the default layers; 256 px: 1.2 s measured
EVALUATIONS_PER_STEP = {"adam": 1.0, "lbfgs": 2.0}
"""Loss-and-gradient evaluations an optimiser step may cost: Adam one; L-BFGS one per line-search
trial, measured at about 1.2 Adam steps per iteration on the ImageNet weights, bounded here at 2
(a trial halves the step; a search that fails restarts from a steepest-descent step)."""
TILE_OVERHEAD = 2.0
"""Work of an image computed in tiles, relative to computing it whole: neighbouring tiles overlap
by a quarter of a side (at most (4/3)^2 of the pixels), plus the whole image first optimised at a
reduction that fits (at most a quarter of the pixels for a third of the steps)."""
VIDEO_SECONDS_PER_MEGAPIXEL_FRAME = 4.0  # per panel: detect, filter, encode
# A header declares a duration, not a frame count: frames are bounded by the duration at this
# rate. A faster video (a 240 fps slow-motion clip) gets a quarter of the margin, still several
# times the measured cost.
VIDEO_FPS_BOUND = 60.0
HARD_AFTER_SOFT = 1.25  # the hard limit, as a multiple of the soft one
HARD_GRACE_SECONDS = 30.0  # ... plus this, to let the soft limit's failure be written
DEFAULT_NST_MEMORY_MB = 4096.0
"""The activation memory a worker's NST pass may use (ATELIER_NST_MEMORY_MB's default): the
producer does not know the workers' setting, and a smaller one only tiles sooner."""


def step_cost(params: NSTParams) -> float:
    """The work of one optimiser step per pixel, relative to the default layers: the
    convolutions up to the deepest layer used, forward and back, and one Gram matrix per style
    layer (a C x C product over the layer's pixels, forward and back)."""

    def flops(content_layer: str, style_layers: tuple[str, ...]) -> float:
        side = 1024  # the layers' areas per input pixel, exactly (five 2x poolings divide it)
        convolutions = 2 * forward_flops(side, side, deepest((content_layer, *style_layers)))
        grams = sum(
            4 * channels_of(name) ** 2 * side * side / 4 ** (block_of(name) - 1)
            for name in style_layers
        )
        return (convolutions + grams) / (side * side)

    default = NSTParams()
    return flops(params.content_layer, params.style_layers) / flops(
        default.content_layer, default.style_layers
    )


def megapixel_steps(params: NSTParams) -> float:
    """Steps times megapixels over the coarse-to-fine schedule: each coarser scale takes
    `iterations // (scales + 1)` steps at half the side of the next, the full size the rest."""
    megapixels = params.size * params.size / 1e6  # the longest side, squared: a bound
    coarse = params.iterations // (params.scales + 1) if params.scales > 1 else 0
    total = (params.iterations - coarse * (params.scales - 1)) * megapixels
    return total + sum(coarse * megapixels / 4**level for level in range(1, params.scales))


def nst_seconds(
    params: NSTParams, jobs: int, styles: int = 1, memory_mb: float = DEFAULT_NST_MEMORY_MB
) -> float:
    """An upper bound for optimizing `jobs` images of `params` together, each against `styles`
    style images (a blend), on a worker whose passes may hold `memory_mb` of activations.

    It counts the work asked for: the steps at every scale, the evaluations a step of the
    optimizer may take, the layers they run through, the tiles of an image too large for one
    pass, and the style targets (one pass per style image at `size x style_scale`)."""
    layers = (params.content_layer, *params.style_layers)
    tiled = params.size * params.size > pixels_for_budget(memory_mb, layers)
    per_step = step_cost(params) * NST_SECONDS_PER_MEGAPIXEL_STEP
    evaluations = EVALUATIONS_PER_STEP[params.optimizer]
    steps = megapixel_steps(params) * per_step * evaluations * (TILE_OVERHEAD if tiled else 1.0)
    style_megapixels = (params.size * params.style_scale) ** 2 / 1e6
    targets = styles * style_megapixels * per_step
    shapes = params.scales + (1 if tiled else 0)
    return START_SECONDS + (shapes - 1) * COMPILE_SECONDS + jobs * (steps + targets)


def video_seconds(frames: int, width: int, height: int, panels: int) -> float:
    """An upper bound for filtering `frames` frames of one video."""
    per_frame = width * height / 1e6 * panels * VIDEO_SECONDS_PER_MEGAPIXEL_FRAME
    return START_SECONDS + frames * per_frame


def limits(seconds: float, scale: float) -> dict[str, float]:
    """Celery's `soft_time_limit` and `time_limit` options for work of about `seconds`; no
    options when `scale` is 0."""
    if scale <= 0:
        return {}
    soft = seconds * scale
    return {"soft_time_limit": soft, "time_limit": soft * HARD_AFTER_SOFT + HARD_GRACE_SECONDS}


def _by_params(rows: Sequence[Job]) -> list[list[Job]]:
    """Rows grouped by parameter set and style count, in a stable order."""
    groups: dict[str, list[Job]] = {}
    for row in sorted(rows, key=lambda job: job.id):
        styles = len(row.inputs.get("styles") or [None])
        groups.setdefault(json.dumps([row.params, styles], sort_keys=True), []).append(row)
    return list(groups.values())


def _nst_group_seconds(rows: Sequence[Job]) -> float:
    styles = len(rows[0].inputs.get("styles") or [None])
    return nst_seconds(NSTParams.model_validate(rows[0].params), len(rows), styles)


def message_seconds(session: Session, rows: Sequence[Job]) -> float | None:
    """The bound for one message's jobs, or None where there is no estimate before the work
    starts: a ping, or a video whose stored header declared no size or duration (the worker's
    probe refuses most of those). Producers and the reaper send one parameter set per message;
    jobs of several sets are bounded by the sum of each set's bound, as the worker runs them one
    set after the other."""
    if not rows:
        return None
    if rows[0].kind == JobKind.NST:
        return sum(_nst_group_seconds(group) for group in _by_params(rows))
    if rows[0].kind == JobKind.VIDEO:
        video = session.scalars(
            select(Asset).where(Asset.sha256 == rows[0].inputs.get("video"))
        ).first()
        if video is None or not (video.width and video.height and video.duration):
            return None
        frames = round(video.duration * VIDEO_FPS_BOUND) + 1
        panels = len(VideoParams.model_validate(rows[0].params).panel_filters())
        return video_seconds(frames, video.width, video.height, panels)
    return None
