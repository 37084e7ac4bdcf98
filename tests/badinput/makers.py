"""Bad (and merely unusual) input files, made on the spot in a few milliseconds each.

Every maker writes one file into a folder and returns its path. Huge images are made cheaply:
a real PNG whose rows are all zeros compresses 400 million pixels into 50 KB, and a JPEG or GIF
header can simply claim dimensions its data does not have. Videos come from the bundled ffmpeg
(a sine tone with no picture) or from cutting the test clip short.
"""

from __future__ import annotations

import io
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from workers.video.ffmpeg import ffmpeg_exe

SIDE = 40
"""Every image that should be stylized is SIDE x SIDE: one output shape, one compiled NST step."""

Maker = Callable[[Path], Path]


def _noise(mode: str = "RGB", seed: int = 0, side: int = SIDE) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).convert(mode)


def noise_image(seed: int) -> bytes:
    """A PNG of noise; different seeds give different content (so a fresh asset)."""
    out = io.BytesIO()
    _noise(seed=seed).save(out, format="PNG")
    return out.getvalue()


def _jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def corrupt_jpeg() -> bytes:
    """A JPEG whose Huffman table is overwritten: libjpeg gives up on the first scan."""
    data = bytearray(_jpeg(_noise(seed=1)))
    table = data.index(b"\xff\xc4")
    data[table + 5 : table + 21] = b"\xff" * 16
    return bytes(data)


def truncated_jpeg() -> bytes:
    """A JPEG cut 40 bytes into its scan, as an interrupted download leaves it."""
    data = _jpeg(_noise(seed=2))
    return data[: data.index(b"\xff\xda") + 40]


def garbled_jpeg() -> bytes:
    """A JPEG with noise over part of its entropy-coded data: decodable, with artefacts."""
    data = bytearray(_jpeg(_noise(seed=3)))
    start = data.index(b"\xff\xda") + 20
    rng = np.random.default_rng(3)
    data[start : start + 180] = rng.integers(0, 255, 180, dtype=np.uint8).tobytes()
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims width x height pixels."""
    data = bytearray(_jpeg(_noise(seed=4)))
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_bomb(side: int = 20_000) -> bytes:
    """A complete, valid 1-bit PNG of side x side black pixels: 50 KB that would decode to
    hundreds of megabytes."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    rows = b"".join(packer.compress(row * 500) for _ in range(side // 500)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", rows)
        + _chunk(b"IEND", b"")
    )


def gif_claiming(width: int, height: int) -> bytes:
    """A one-pixel GIF whose screen and image descriptors claim width x height."""
    out = io.BytesIO()
    Image.new("P", (1, 1)).save(out, format="GIF")
    data = bytearray(out.getvalue())
    data[6:10] = struct.pack("<HH", width, height)  # logical screen
    image = data.index(b",")  # image descriptor
    data[image + 5 : image + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def cmyk_jpeg() -> bytes:
    return _jpeg(_noise("CMYK", seed=5))


def grey16_png() -> bytes:
    """16-bit greyscale, the full range used (a scan or a medical export)."""
    ramp = np.linspace(0, 65535, SIDE * SIDE, dtype=np.uint16).reshape(SIDE, SIDE)
    out = io.BytesIO()
    Image.fromarray(ramp).save(out, format="PNG")
    return out.getvalue()


def grey8_jpeg() -> bytes:
    return _jpeg(_noise("L", seed=6))


def grey_alpha_png() -> bytes:
    """Greyscale with a transparent half (mode LA)."""
    img = _noise("L", seed=7).convert("LA")
    alpha = np.zeros((SIDE, SIDE), np.uint8)
    alpha[:, : SIDE // 2] = 255
    img.putalpha(Image.fromarray(alpha))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def animated_gif() -> bytes:
    frames = [_noise(seed=s).convert("P") for s in (8, 9, 10)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    return out.getvalue()


def sliver_png() -> bytes:
    """1 x 2000 pixels: a valid image that cannot reach VGG19's deeper layers at any size."""
    out = io.BytesIO()
    Image.new("RGB", (1, 2000), (90, 120, 200)).save(out, format="PNG")
    return out.getvalue()


TEXT = b"These are notes, not a picture.\n" * 20
POSTSCRIPT = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 40 40\nnewpath 0 0 moveto showpage\n"
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64


def _ffmpeg(*args: str) -> None:
    done = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def audio_only(folder: Path) -> Path:
    """An AAC tone in an MP4 container (.m4a): a real media file without a picture."""
    path = folder / "tone.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=0.5", "-c:a", "aac", str(path))
    return path


def truncated_mp4(source: Path) -> Maker:
    """The first half of a clip whose index (`moov`) sits at the end: the index is lost."""

    def make(folder: Path) -> Path:
        path = folder / "cut.mp4"
        data = source.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path

    return make


def truncated_faststart_mp4(source: Path) -> Maker:
    """The first half of a clip with its index in front: the index promises frames that are
    not there."""

    def make(folder: Path) -> Path:
        whole = folder / "faststart.mp4"
        _ffmpeg("-i", str(source), "-c", "copy", "-movflags", "+faststart", str(whole))
        data = whole.read_bytes()
        whole.unlink()
        path = folder / "cut-faststart.mp4"
        path.write_bytes(data[: len(data) // 2])
        return path

    return make


def copy_of(source: Path, name: str) -> Maker:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(source.read_bytes())
        return path

    return make


def constant(name: str, data: bytes | Callable[[], bytes]) -> Maker:
    """A maker writing fixed bytes, or the bytes a builder returns, under `name`."""

    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data() if callable(data) else data)
        return path

    return make
