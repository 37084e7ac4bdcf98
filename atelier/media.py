"""Open user images safely and turn them into plain RGB arrays.

Producers call `probe_image` when a file arrives, workers call `load_rgb` when they use it; both
go through the same guarded open, so a file is judged by the same rules at the door and in the
engine. The rules:

- the type comes from the content (PIL's own sniffing), never from the file name, and only the
  formats Atelier documents are opened (no EPS/PDF plugins that would start external programs);
- the pixel count is checked from the header *before* anything is decoded, so a small file that
  claims 20000x20000 pixels (a decompression bomb) is refused without allocating it;
- every decoding error (truncated or corrupt data) becomes an `InputError` whose message is
  meant for the user.

Only PIL and numpy are used: producers import this module and must stay light.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from atelier.errors import InputError

FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
"""Formats Atelier opens. The JPEG plugin also opens MPO, the multi-picture JPEG of cameras."""

_MEDIA_TYPES = {"MPO": "image/jpeg"}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError)
_WHITE = 255.0


@dataclass(frozen=True)
class ImageInfo:
    """What the header (and one full decode of the first frame) says about an image file."""

    media_type: str
    width: int
    height: int
    mode: str
    frames: int


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.3g} MP"


def _bomb_message(error: Image.DecompressionBombError, max_pixels: int) -> str:
    found = re.search(r"\((\d+) pixels\)", str(error))
    size = _megapixels(int(found.group(1))) if found else "far too large"
    return (
        f"image is {size}, limit is {_megapixels(max_pixels)}: "
        "refused as a possible decompression bomb"
    )


@contextmanager
def _open(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """Open `path` lazily (header only) and refuse it before decoding if it is too large."""
    if Path(path).stat().st_size == 0:
        raise InputError(f"file is empty, not an image: {Path(path).name}")
    Image.init()  # registers every plugin (MPO, WebP, TIFF...), not just the preloaded few
    try:
        img = Image.open(path, formats=FORMATS)
    except UnidentifiedImageError as error:
        raise InputError(
            f"not an image (or not a supported format: JPEG, PNG, GIF, WebP, BMP, TIFF): "
            f"{Path(path).name}"
        ) from error
    except Image.DecompressionBombError as error:
        raise InputError(_bomb_message(error, max_pixels)) from error
    except _DECODE_ERRORS as error:
        raise InputError(f"image file is corrupt: {error}") from error
    with img:
        width, height = img.size
        if width * height > max_pixels:
            raise InputError(
                f"image is {width}x{height} = {_megapixels(width * height)}, "
                f"limit is {_megapixels(max_pixels)}"
            )
        yield img


def _decode(img: Image.Image) -> None:
    """Decode the current frame completely, so truncated data fails here and not later."""
    try:
        img.load()
    except _DECODE_ERRORS as error:
        raise InputError(f"image file is corrupt or truncated: {error}") from error


def probe_image(path: Path, max_pixels: int) -> ImageInfo:
    """Validate an image file and describe it; raises InputError with a user-facing message.

    The first frame is decoded (JPEG at 1/8 scale, which still reads every byte), so a
    truncated upload is refused at the door instead of failing a job later.
    """
    with _open(path, max_pixels) as img:
        width, height = img.size
        media_type = _MEDIA_TYPES.get(img.format or "", Image.MIME.get(img.format or "", ""))
        mode = img.mode
        frames = int(getattr(img, "n_frames", 1))
        img.draft(img.mode, (max(1, width // 8), max(1, height // 8)))
        _decode(img)
    return ImageInfo(media_type=media_type, width=width, height=height, mode=mode, frames=frames)


def load_rgb(
    path: Path, max_pixels: int, longest: int | None = None, shortest: int = 0
) -> np.ndarray:
    """The image as float32 HxWx3 RGB in [0, 255], upright, first frame, alpha on white.

    Covers the modes users actually send: greyscale (8- and 16-bit), RGBA/LA (composited on
    white, as a viewer shows them), palette with transparency, CMYK; EXIF orientation is
    applied so a phone photo is the right way up.

    With `longest`, the image is decoded only as large as the caller needs: at least `longest`
    pixels on its longest side and `shortest` on its shortest (its full size if smaller). A JPEG
    is decoded at 1/2, 1/4 or 1/8 scale (draft mode); other formats are reduced by an integer
    factor before the float conversion. So a small file declaring a huge image costs the memory
    of the size the job uses, not of the size it declares.
    """
    with _open(path, max_pixels) as img:
        scale = 1.0 if longest is None else _scale_needed(img.size, longest, shortest)
        if scale < 1.0:  # only JPEG decoders act on a draft request
            width, height = img.size
            img.draft(img.mode, (math.ceil(width * scale), math.ceil(height * scale)))
        _decode(img)
        try:
            upright = ImageOps.exif_transpose(img)
            if longest is not None:
                upright = _reduced(upright, _scale_needed(upright.size, longest, shortest))
            return _to_rgb(upright)
        except _DECODE_ERRORS as error:
            raise InputError(f"cannot convert image to RGB: {error}") from error


def _scale_needed(size: tuple[int, int], longest: int, shortest: int) -> float:
    """The smallest scale (at most 1) that keeps both sides as large as the caller needs."""
    return min(1.0, max(longest / max(size), shortest / min(size)))


def _reduced(img: Image.Image, scale: float) -> Image.Image:
    """`img` shrunk by the largest integer factor that keeps it at `scale` or more."""
    factor = math.floor(1.0 / scale)
    if factor < 2:
        return img
    try:
        return img.reduce(factor)
    except ValueError:  # modes PIL cannot reduce (palette, 16-bit): keep the full size
        return img


def _to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit greyscale: scale the full 16-bit range down instead of clipping at 255.
        grey = np.asarray(img, dtype=np.float32) * (255.0 / 65535.0)
        return _grey_to_rgb(grey)
    if mode == "F":
        return _grey_to_rgb(np.asarray(img, dtype=np.float32))
    has_alpha = "A" in mode or "a" in mode or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        rgb = rgba[..., :3] * alpha + _WHITE * (1.0 - alpha)
        return np.ascontiguousarray(rgb, dtype=np.float32)
    return np.asarray(img.convert("RGB"), dtype=np.float32).copy()


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    grey = np.clip(grey, 0.0, 255.0)
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2), dtype=np.float32)


def resize_to(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a float HxWxC array to exactly `height` x `width` (Lanczos, per channel in float,
    so no precision is lost to 8-bit rounding)."""
    if img.shape[0] == height and img.shape[1] == width:
        return np.array(img, dtype=np.float32)
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(img[..., c], dtype=np.float32), mode="F").resize(
                (width, height), Image.Resampling.LANCZOS
            ),
            dtype=np.float32,
        )
        for c in range(img.shape[2])
    ]
    return np.stack(channels, axis=2)


def fit_longest(height: int, width: int, size: int) -> tuple[int, int]:
    """The (height, width) that keeps the aspect ratio with the longest side equal to `size`."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_longest(img: np.ndarray, size: int) -> np.ndarray:
    """Resize so the longest side is `size` pixels, keeping the aspect ratio."""
    return resize_to(img, *fit_longest(img.shape[0], img.shape[1], size))
