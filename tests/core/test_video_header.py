"""One parser reads ffmpeg's header report for every reader (upload, thumbnail, batch, the
worker's probe): real reports of the ffmpeg binary the project runs (tests/data/ffmpeg/)."""

from __future__ import annotations

import re

import pytest

from atelier.errors import InputError
from atelier.video_header import VideoHeader, check_frame_pixels, parse_header
from tests.conftest import TEST_DATA


def _report(name: str) -> str:
    return (TEST_DATA / "ffmpeg" / f"{name}.txt").read_text()


def test_an_mp4_with_sound():
    assert parse_header(_report("mp4_with_sound")) == VideoHeader(
        width=64, height=48, duration=1.0, video_codec="h264", video_fps=10.0, audio_codec="aac"
    )


def test_a_rotated_video_is_sized_as_played_and_the_output_streams_are_not_read():
    header = parse_header(_report("rotated_transcoded"))
    # Stored 64x48, shown turned by 90°; the output's 128x96 wrapped_avframe and its pcm_s16le
    # sound are what ffmpeg writes, not what the file holds.
    assert (header.width, header.height) == (48, 64)
    assert (header.video_codec, header.audio_codec) == ("h264", "aac")


def test_a_codec_tag_is_not_taken_for_the_frame_size():
    header = parse_header(_report("mpegts"))  # `([27][0][0][0] / 0x001B)` precedes the size
    assert (header.width, header.height, header.duration) == (64, 48, 1.02)


def test_a_cover_picture_is_no_video():
    header = parse_header(_report("mp3_cover_art"))
    assert (header.width, header.height, header.video_codec) == (None, None, None)
    assert header.audio_codec == "mp3"
    check_frame_pixels(header, 1, "song.mp3")  # no frames, nothing to refuse


def test_frames_over_the_pixel_limit_are_refused_from_the_header():
    header = parse_header(_report("mp4_with_sound"))
    check_frame_pixels(header, 64 * 48, "clip.mp4")
    with pytest.raises(InputError, match=re.escape("clip.mp4 is 64x48 = 0.00307 MP a frame")):
        check_frame_pixels(header, 64 * 48 - 1, "clip.mp4")
