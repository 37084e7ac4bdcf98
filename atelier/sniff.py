"""Tell what a file is from its first bytes, never from its name or a client's Content-Type.

An upload's name and declared type are whatever the client says; the magic numbers at the start
of the file are what decoders will actually see. This only decides *which* validation applies
(an image is then opened by `atelier.media`, a video by the worker's probe); it proves nothing
about the rest of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HEAD_BYTES = 64
"""How many leading bytes `sniff` needs to decide."""

# ISO base media brands that are still images, not videos (HEIF/AVIF share the `ftyp` box).
_IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}


SUFFIXES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "video/x-msvideo": ".avi",
}
"""The file-name suffix of every media type `sniff` names."""


@dataclass(frozen=True)
class Sniffed:
    kind: str  # "image" | "video"
    media_type: str


def sniff(head: bytes) -> Sniffed | None:
    """The kind and media type of a file starting with `head`, or None if Atelier cannot use it."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "image/gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "image/webp")
    if head[:2] == b"BM" and len(head) >= 26:
        return Sniffed("image", "image/bmp")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed("image", "image/tiff")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        return Sniffed("video", "video/quicktime" if brand == b"qt  " else "video/mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        is_webm = b"webm" in head[:HEAD_BYTES]
        return Sniffed("video", "video/webm" if is_webm else "video/x-matroska")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Sniffed("video", "video/x-msvideo")
    return None


def sniff_file(path: Path) -> Sniffed | None:
    """`sniff` on the first bytes of the file at `path`."""
    with Path(path).open("rb") as handle:
        return sniff(handle.read(HEAD_BYTES))
