"""Write H.264 MP4 files with the bundled ffmpeg binary, and join segments into one file.

Frames go to ffmpeg as raw BGR bytes on its stdin: OpenCV's own writer cannot produce H.264 from
the pip wheels. The frame rate is passed as a rational (30000/1001, not 29.97), so the output's
timestamps are the input's. The input's audio is copied, not re-encoded, when MP4 can hold its
codec (no generation loss, no cost); otherwise it becomes AAC. Every file is written under a
temporary name beside its destination and renamed only once ffmpeg has finished it, so a reader
never sees half a file and a crash leaves no file that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from uuid import uuid4

import numpy as np

from workers.video.ffmpeg import FFMPEG_TIMEOUT_SECONDS, ffmpeg_exe, run_ffmpeg, stderr_tail
from workers.video.probe import read_audio_codec

MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus"})


def audio_codec_args(codec: str | None) -> list[str]:
    """Copy audio MP4 can hold; re-encode anything else (PCM, Vorbis, ...) to AAC."""
    if codec in MP4_AUDIO_CODECS:
        return ["-c:a", "copy"]
    return ["-c:a", "aac", "-b:a", "192k"]


@dataclass(frozen=True)
class AudioTrack:
    """Where an output's sound comes from: the audio streams of `path`, from `start` seconds on,
    for `duration` seconds (to the end when None)."""

    path: Path
    codec: str | None
    start: float = 0.0
    duration: float | None = None

    def input_args(self) -> list[str]:
        seek = ["-ss", f"{self.start:.6f}"] if self.start > 0 else []
        length = ["-t", f"{self.duration:.6f}"] if self.duration is not None else []
        return [*seek, *length, "-i", str(self.path)]


def partial_path(path: Path) -> Path:
    """A hidden, unique temporary name beside `path`, with its extension (ffmpeg picks the
    container from it)."""
    return path.with_name(f".{path.stem}.{uuid4().hex[:12]}.partial{path.suffix}")


class FfmpegWriter:
    """Encode BGR frames of one size to `path` (libx264, yuv420p, +faststart), muxing `audio`.

    Use as a context manager: leaving it normally finishes the file, leaving it by an exception
    removes the unfinished file.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        rate: Fraction,
        *,
        audio: AudioTrack | None = None,
        crf: int = 18,
        preset: str = "veryfast",
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even sides, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height = width, height
        self.frames_written = 0
        self._partial = partial_path(self.path)
        audio_in = audio.input_args() if audio else []
        audio_out = ["-map", "1:a?", *audio_codec_args(audio.codec)] if audio else []
        command = [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-video_size",
            f"{width}x{height}",
            "-framerate",
            f"{rate.numerator}/{rate.denominator}",
            "-i",
            "pipe:0",
            *audio_in,
            "-map",
            "0:v:0",
            *audio_out,
            # swscale's fast BGR->YUV path truncates instead of rounding: every pixel would come
            # out 2-4 levels darker and faintly green.
            "-sws_flags",
            "accurate_rnd",
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-crf",
            str(crf),
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(self._partial),
        ]
        # ffmpeg's messages go to a file, not a pipe: an unread pipe fills up and stalls it.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the writer
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=self._stderr)

    def _failure(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        return f"ffmpeg could not encode {self.path.name}: {stderr_tail(text) or 'no message'}"

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (height x width x 3, uint8, BGR)."""
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame {frame.shape} {frame.dtype} does not fit a {self.width}x{self.height} "
                "BGR uint8 video"
            )
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).data)
        except BrokenPipeError:
            self._process.wait()
            message = self._failure()
            self.abort()
            raise RuntimeError(message) from None
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file and move it to its final name; returns that name."""
        self._process.stdin.close()
        try:
            code = self._process.wait(FFMPEG_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.abort()
            raise RuntimeError(
                f"ffmpeg did not finish {self.path.name} within {FFMPEG_TIMEOUT_SECONDS:g} s"
            ) from None
        if code != 0:
            message = self._failure()
            self.abort()
            raise RuntimeError(message)
        self._stderr.close()
        os.replace(self._partial, self.path)
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and delete the unfinished file."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        self._stderr.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> FfmpegWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _concat_line(path: Path) -> str:
    """One line of an ffmpeg concat list; quotes in the path are escaped the way it expects."""
    quoted = str(Path(path).resolve()).replace("'", "'\\''")
    return f"file '{quoted}'\n"


def join_segments(
    paths: list[Path], audio_source: Path | None, out: Path, keep_audio: bool = True
) -> Path:
    """Concatenate video-only segments, in order, into `out` without re-encoding them (the
    concat demuxer copies the packets), and mux the audio of `audio_source` once over the whole:
    audio cut at segment bounds would click and drift. Returns `out`."""
    if not paths:
        raise ValueError("no segments to join")
    out = Path(out)
    codec = read_audio_codec(audio_source) if keep_audio and audio_source else None
    listing = out.with_name(f".{out.stem}.{uuid4().hex[:12]}.concat.txt")
    listing.write_text("".join(_concat_line(path) for path in paths))
    partial = partial_path(out)
    audio_in = ["-i", str(audio_source)] if codec else []
    audio_out = ["-map", "1:a?", *audio_codec_args(codec)] if codec else []
    try:
        result = run_ffmpeg(
            [
                "-loglevel",
                "error",
                "-y",
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                str(listing),
                *audio_in,
                "-map",
                "0:v:0",
                "-c:v",
                "copy",
                *audio_out,
                "-movflags",
                "+faststart",
                str(partial),
            ]
        )
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise RuntimeError(f"ffmpeg could not join segments: {stderr_tail(result.stderr)}")
        os.replace(partial, out)
    finally:
        listing.unlink(missing_ok=True)
    return out
