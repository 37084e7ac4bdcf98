"""Write H.264 MP4 files with the bundled ffmpeg binary, and join segments into one file.

Frames go to ffmpeg as raw BGR bytes on its stdin (OpenCV's own writer cannot produce H.264 from
the pip wheels), each in a Matroska block with its own timestamp and duration, in the input's time
base (see `rawmkv`), and the encoder keeps them as they are (`-fps_mode passthrough`): a
variable-frame-rate video keeps every frame's time and stays in step with its audio, and a
constant rate stays exact (30000/1001, not 29.97). The pixels keep their shape (the sample aspect
ratio). The input's audio is copied, not re-encoded, when MP4 can hold its codec (no generation
loss, no cost); otherwise it becomes AAC. Every file is written under a temporary name beside its
destination and renamed only once ffmpeg has finished it, so a reader never sees half a file and a
crash leaves no file that looks complete.
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

from workers.video import rawmkv
from workers.video.ffmpeg import (
    FFMPEG_TIMEOUT_SECONDS,
    ffmpeg_exe,
    ffmpeg_failed,
    run_ffmpeg,
    start_ffmpeg,
    stderr_tail,
)
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


def _encode_command(
    partial: Path,
    time_base: Fraction,
    delay: Fraction,
    audio: AudioTrack | None,
    crf: int,
    preset: str,
) -> list[str]:
    """The ffmpeg command that reads raw frames (Matroska) on its standard input and writes
    them to `partial` in H.264 with their own timestamps, muxing `audio`."""
    audio_in = audio.input_args() if audio else []
    audio_out = ["-map", "1:a?", *audio_codec_args(audio.codec)] if audio else []
    return [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        *(["-itsoffset", f"{float(delay):.6f}"] if delay > 0 else []),
        "-f",
        "matroska",
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
        "-fps_mode",
        "passthrough",
        "-enc_time_base",
        f"{time_base.numerator}/{time_base.denominator}",
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
        str(partial),
    ]


class FfmpegWriter:
    """Encode BGR frames of one size and pixel shape `sar` to `path` (libx264, yuv420p,
    +faststart), muxing `audio`. Each frame is written with its timestamp and duration in units
    of `time_base` seconds (1/rate for frames at a constant rate, shown at 0, 1, 2, ...); the
    first frame is shown `delay` seconds after the start of the file (and of the audio), as in
    an input whose video starts after its sound.

    Use as a context manager: leaving it normally finishes the file, leaving it by an exception
    removes the unfinished file.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        time_base: Fraction,
        *,
        sar: Fraction = Fraction(1),
        delay: Fraction = Fraction(0),
        audio: AudioTrack | None = None,
        crf: int = 18,
        preset: str = "veryfast",
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even sides, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height = width, height
        self.time_base = time_base
        self.frames_written = 0
        self._partial = partial_path(self.path)
        command = _encode_command(self._partial, time_base, delay, audio, crf, preset)
        # ffmpeg's messages go to a file, not a pipe: an unread pipe fills up and stalls it.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the writer
        self._process = start_ffmpeg(command, stdin=subprocess.PIPE, stderr=self._stderr)
        self._send(rawmkv.header(width, height, sar))

    def _failure(self) -> Exception:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        message = f"ffmpeg could not encode {self.path.name}: {stderr_tail(text) or 'no message'}"
        return ffmpeg_failed(message, text)

    def _send(self, *chunks: bytes | memoryview) -> None:
        try:
            for chunk in chunks:
                self._process.stdin.write(chunk)
        except BrokenPipeError:
            self._process.wait()
            failure = self._failure()
            self.abort()
            raise failure from None

    def write(self, frame: np.ndarray, pts: int, duration: int = 1) -> None:
        """Append one frame (height x width x 3, uint8, BGR) shown at `pts` for `duration`, both
        in units of the time base; frames come in the order they are shown."""
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame {frame.shape} {frame.dtype} does not fit a {self.width}x{self.height} "
                "BGR uint8 video"
            )
        at, length = (rawmkv.nanoseconds(t * self.time_base) for t in (pts, duration))
        before, after = rawmkv.frame_parts(at, length, frame.nbytes)
        self._send(before, np.ascontiguousarray(frame).data, after)
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file and move it to its final name; returns that name."""
        # Closing sends what is still buffered, and ffmpeg may be gone: its exit status, read
        # next, then fails the file with ffmpeg's own message.
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        try:
            code = self._process.wait(FFMPEG_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.abort()
            raise RuntimeError(
                f"ffmpeg did not finish {self.path.name} within {FFMPEG_TIMEOUT_SECONDS:g} s"
            ) from None
        if code != 0:
            failure = self._failure()
            self.abort()
            raise failure
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


def _concat_entry(path: Path, duration: float | None) -> str:
    """One file of an ffmpeg concat list (quotes in the path escaped the way it expects) and,
    when known, how long it lasts."""
    quoted = str(Path(path).resolve()).replace("'", "'\\''")
    return f"file '{quoted}'\n" + (f"duration {duration:.6f}\n" if duration is not None else "")


def join_segments(
    paths: list[Path],
    audio_source: Path | None,
    out: Path,
    keep_audio: bool = True,
    durations: list[float] | None = None,
    delay: float = 0.0,
    timeout: float = FFMPEG_TIMEOUT_SECONDS,
) -> Path:
    """Concatenate video-only segments, in order, into `out` without re-encoding them (the
    concat demuxer copies the packets), and mux the audio of `audio_source` once over the whole:
    audio cut at segment bounds would click and drift. Each segment starts where the one before
    ends: `durations` (seconds, one per segment) says where, from the input's own timestamps;
    without them, each file's duration as its container states it (which, for frames at a
    varying rate, can be a frame's difference off). The first segment is shown `delay` seconds
    after the start of the sound (an input whose video starts after its audio). An ffmpeg still
    running after `timeout` seconds is stopped. Returns `out`; a failed join leaves no file."""
    if not paths:
        raise ValueError("no segments to join")
    out = Path(out)
    codec = read_audio_codec(audio_source) if keep_audio and audio_source else None
    listing = out.with_name(f".{out.stem}.{uuid4().hex[:12]}.concat.txt")
    spans = [None] * len(paths) if durations is None else durations
    listing.write_text("".join(_concat_entry(*entry) for entry in zip(paths, spans, strict=True)))
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
                *(["-itsoffset", f"{delay:.6f}"] if delay > 0 else []),
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
            ],
            timeout,
        )
        if result.returncode != 0:
            message = f"ffmpeg could not join segments: {stderr_tail(result.stderr)}"
            raise ffmpeg_failed(message, result.stderr)
        os.replace(partial, out)
    finally:
        listing.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)  # a failed or stopped join; gone once renamed
    return out
