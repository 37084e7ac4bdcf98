"""Time limits for job messages, derived from the work each one carries.

NST and video messages get them when they are sent (a video's from the size and duration its
header declares, recorded when it was stored); a segmented video's `segment` and `join` messages
when the worker that probed the video sends them. Celery enforces them on a prefork worker (the
`atelier worker` default): at the soft limit the task gets `SoftTimeLimitExceeded` and fails its
jobs with a message; at the hard limit, a little later, the worker kills the process and starts a
new one, so work that is stuck (in C code, or waiting on something that never answers) cannot hold
a worker for ever, and the worker fails the jobs the killed process held
(`workers.tasks.requests`). The soft limit can be lost when it lands while TensorFlow traces a
step (AutoGraph swallows the exception); the hard limit still holds. A solo pool cannot interrupt
its only process and ignores both.

The estimates are upper bounds for a slow CPU, several times what this project measured on a
2-core machine, times `ATELIER_TIME_LIMIT_SCALE` (0: no limits): a limit is there to stop hung
work, never honest work on a busy machine.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from atelier.models import Asset, Job, JobKind
from atelier.schemas import NSTParams, VideoParams

START_SECONDS = 300.0  # import TensorFlow, build VGG19, compile the step for a new shape
NST_SECONDS_PER_MEGAPIXEL_STEP = 60.0  # per image; a 256 px step is about 1.2 s measured
VIDEO_SECONDS_PER_MEGAPIXEL_FRAME = 4.0  # per panel: detect, filter, encode
# A header declares a duration, not a frame count: frames are bounded by the duration at this
# rate. A faster video (a 240 fps slow-motion clip) gets a quarter of the margin, still several
# times the measured cost.
VIDEO_FPS_BOUND = 60.0
HARD_AFTER_SOFT = 1.25  # the hard limit, as a multiple of the soft one
HARD_GRACE_SECONDS = 30.0  # ... plus this, to let the soft limit's failure be written


def nst_seconds(params: NSTParams, jobs: int) -> float:
    """An upper bound for optimizing `jobs` images of `params` together."""
    megapixels = params.size * params.size / 1e6  # the longest side, squared: a bound
    steps = params.iterations * params.scales
    return START_SECONDS + jobs * steps * megapixels * NST_SECONDS_PER_MEGAPIXEL_STEP


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


def message_seconds(session: Session, rows: Sequence[Job]) -> float | None:
    """The bound for one message's jobs, or None where there is no estimate before the work
    starts: a ping, or a video whose stored header declared no size or duration (the worker's
    probe refuses most of those)."""
    if not rows:
        return None
    if rows[0].kind == JobKind.NST:
        return nst_seconds(NSTParams.model_validate(rows[0].params), len(rows))
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
