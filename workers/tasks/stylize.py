"""What the two style-transfer tasks (Gatys, `nst.py`; fast, `fast.py`) share: a message's jobs
grouped by their parameters, each job's inputs loaded so that a bad one fails alone, and result
images stored as PNG files that say what made them."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, TypeVar

from atelier import jobs
from atelier.errors import InputError
from atelier.schemas import NSTParams
from workers.tasks.runner import JobContext

W = TypeVar("W")


def by_params(contexts: list[JobContext]) -> list[tuple[NSTParams, list[JobContext]]]:
    """The jobs grouped by equal parameters (a group runs together), in first-seen order."""
    groups: dict[str, tuple[NSTParams, list[JobContext]]] = {}
    for ctx in contexts:
        params = NSTParams.model_validate(ctx.job.params)
        groups.setdefault(params.model_dump_json(), (params, []))[1].append(ctx)
    return list(groups.values())


def load_each(
    contexts: list[JobContext], load: Callable[[JobContext], W]
) -> tuple[list[JobContext], list[W]]:
    """Each job's work from `load(ctx)`; a job whose input is bad (an InputError, a missing
    file) fails alone with the reason. The jobs that loaded, and their work, in order."""
    live: list[JobContext] = []
    work: list[W] = []
    for ctx in contexts:
        try:
            work.append(load(ctx))
            live.append(ctx)
        except (InputError, FileNotFoundError) as error:
            reason = str(error) if isinstance(error, InputError) else "input file is missing"
            jobs.fail(ctx.lease, reason)
    return live, work


def png(image: Any, text: dict[str, str]) -> bytes:
    """A uint8 HxWx3 image as PNG, with `text` (what made it) in its metadata."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "Atelier")
    for key, value in text.items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def succeed(
    ctx: JobContext, image: Any, text: dict[str, str], meta: dict[str, Any], seconds: float
) -> None:
    """Store the result image completely (`png`), then mark the job done with `meta` and the
    image's size."""
    height, width = image.shape[:2]
    asset_id = ctx.store_result(png(image, text), width, height)
    jobs.succeed(ctx.lease, asset_id, {**meta, "width": width, "height": height}, seconds)
