"""Images the API draws on request: thumbnails, loss plots and contact sheets, with small caches.

Stored files never change (they are named by their hash), so a thumbnail is cached by hash and
size; plots and sheets are cached by what they show (row count, job states), so a gallery that
polls while jobs run redraws only what moved.
"""

from __future__ import annotations

import io
import subprocess
import threading
from collections.abc import Hashable, Sequence
from pathlib import Path

from PIL import Image

from api.http.errors import ApiError
from atelier.cache import LRU
from atelier.errors import InputError
from atelier.reports import loss_plot_png
from atelier.settings import Settings
from atelier.video_header import check_frame_pixels, header_report, parse_header

_PLOT_LOCK = threading.Lock()  # matplotlib's pyplot keeps global state: one figure at a time
_thumbs = LRU[bytes](512)
_plots = LRU[bytes](256)
_sheets = LRU[bytes](32)


def _video_frame(path: Path, size: int, max_pixels: int) -> Image.Image:
    """The first frame of a video, decoded by the ffmpeg binary (no OpenCV in producers) and
    scaled there to fit `size`; refused (422) from the header when frames are over
    `max_pixels`."""
    import imageio_ffmpeg

    try:
        check_frame_pixels(parse_header(header_report(path)), max_pixels, "the video")
    except InputError as error:
        raise ApiError(422, f"no thumbnail: {error}") from error
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-v",
        "error",
        "-i",
        str(path),
        "-frames:v",
        "1",
        "-vf",
        f"scale={size}:{size}:force_original_aspect_ratio=decrease",
        "-f",
        "image2pipe",
        "-vcodec",
        "png",
        "-",
    ]
    try:
        done = subprocess.run(command, capture_output=True, timeout=30, check=True)
        return Image.open(io.BytesIO(done.stdout))
    except (subprocess.SubprocessError, OSError) as error:
        raise ApiError(404, "no thumbnail: the video's first frame cannot be decoded") from error


def _thumbnail(path: Path, media_type: str, size: int, max_video_pixels: int) -> bytes:
    if media_type.startswith("video/"):
        image = _video_frame(path, size, max_video_pixels)
    else:
        try:
            image = Image.open(path)
            image.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced scale
        except OSError as error:
            raise ApiError(404, "no thumbnail: the image cannot be decoded") from error
    with image:
        image = image.convert("RGB")
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=85)
        return out.getvalue()


def thumbnail_jpeg(
    path: Path, sha256: str, media_type: str, size: int, max_video_pixels: int
) -> bytes:
    return _thumbs.get_or_make(
        (sha256, size), lambda: _thumbnail(path, media_type, size, max_video_pixels)
    )


def loss_plot(job_id: int, rows: Sequence[Sequence[float]], title: str) -> bytes:
    def draw() -> bytes:
        with _PLOT_LOCK:
            return loss_plot_png(rows, title)

    last = tuple(rows[-1]) if rows else ()
    return _plots.get_or_make((job_id, len(rows), last, title), draw)


def batch_sheet(settings: Settings, batch_id: int, state: Hashable) -> bytes:
    """The contact sheet of an NST batch, redrawn only when a job's state or result changed."""
    from atelier.export import batch_sheet_png

    return _sheets.get_or_make(
        (str(settings.resolved_storage_dir), batch_id, state),
        lambda: batch_sheet_png(settings, batch_id),
    )
