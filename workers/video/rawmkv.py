"""Frame the raw BGR frames the encoder's ffmpeg reads as a Matroska stream: each frame with its
own timestamp and duration.

Raw video on a pipe (`-f rawvideo`) has no timestamps: ffmpeg numbers its frames at one constant
rate, which re-times a variable-frame-rate video and lets its copied audio drift away. A Matroska
block carries a timestamp and a duration, and ffmpeg's Matroska reader takes uncompressed frames
(`V_UNCOMPRESSED` with the pixel format's FourCC), so the frames keep the input's times. Only the
few elements ffmpeg needs are written: one video track, then one cluster per frame (a block's own
timestamp is only a 16-bit offset from its cluster's), in nanoseconds.
"""

from __future__ import annotations

from fractions import Fraction

_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
NANOSECONDS = 1_000_000_000


def _size(length: int) -> bytes:
    """An EBML size, always in 8 bytes (a marker byte and 7 of length): simple, and wide enough
    for any frame."""
    return b"\x01" + length.to_bytes(7, "big")


def _element(ident: bytes, payload: bytes) -> bytes:
    return ident + _size(len(payload)) + payload


def _uint(ident: bytes, value: int) -> bytes:
    return _element(ident, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def header(width: int, height: int, sar: Fraction = Fraction(1)) -> bytes:
    """The start of the stream: EBML header, an open-ended segment, its timestamp scale (1 ns) and
    one uncompressed BGR24 video track of `width` x `height` pixels of shape `sar` (width over
    height), given as the display size ffmpeg derives the sample aspect ratio from."""
    ebml = _element(
        b"\x1a\x45\xdf\xa3",
        _uint(b"\x42\x86", 1)  # EBMLVersion
        + _uint(b"\x42\xf7", 1)  # EBMLReadVersion
        + _uint(b"\x42\xf2", 4)  # EBMLMaxIDLength
        + _uint(b"\x42\xf3", 8)  # EBMLMaxSizeLength
        + _element(b"\x42\x82", b"matroska")  # DocType
        + _uint(b"\x42\x87", 4)  # DocTypeVersion
        + _uint(b"\x42\x85", 2),  # DocTypeReadVersion
    )
    info = _element(
        b"\x15\x49\xa9\x66",
        _uint(b"\x2a\xd7\xb1", 1)  # TimestampScale: 1 ns per tick
        + _element(b"\x4d\x80", b"atelier")  # MuxingApp
        + _element(b"\x57\x41", b"atelier"),  # WritingApp
    )
    video = _element(
        b"\xe0",
        _uint(b"\xb0", width)  # PixelWidth
        + _uint(b"\xba", height)  # PixelHeight
        + _uint(b"\x54\xb0", width * sar.numerator)  # DisplayWidth
        + _uint(b"\x54\xba", height * sar.denominator)  # DisplayHeight
        + _element(b"\x2e\xb5\x24", b"BGR\x18"),  # UncompressedFourCC: packed BGR, 24 bits
    )
    track = _element(
        b"\xae",
        _uint(b"\xd7", 1)  # TrackNumber
        + _uint(b"\x73\xc5", 1)  # TrackUID
        + _uint(b"\x83", 1)  # TrackType: video
        + _uint(b"\x9c", 0)  # FlagLacing
        + _element(b"\x86", b"V_UNCOMPRESSED")  # CodecID
        + video,
    )
    tracks = _element(b"\x16\x54\xae\x6b", track)
    return ebml + b"\x18\x53\x80\x67" + _UNKNOWN_SIZE + info + tracks


def nanoseconds(seconds: Fraction) -> int:
    """A time in whole nanoseconds, rounded to the nearest (ffmpeg rounds the same way when it
    turns them back into the encoder's time base, so a time base coarser than 1 ns survives
    exactly)."""
    return round(seconds * NANOSECONDS)


def frame_parts(at: int, duration: int, size: int) -> tuple[bytes, bytes]:
    """What goes before and after `size` bytes of one frame shown at `at` ns for `duration` ns:
    a cluster at that time holding a block group (a block of track 1 at offset 0, then the
    block's duration, which is how the last frame keeps its own)."""
    block_head = b"\x81\x00\x00\x00"  # track 1 (EBML varint), offset 0, no flags
    block = b"\xa1" + _size(len(block_head) + size) + block_head
    after = _uint(b"\x9b", max(duration, 1))  # BlockDuration
    group = b"\xa0" + _size(len(block) + size + len(after))
    timestamp = _uint(b"\xe7", at)
    content = len(timestamp) + len(group) + len(block) + size + len(after)
    return b"\x1f\x43\xb6\x75" + _size(content) + timestamp + group + block, after
