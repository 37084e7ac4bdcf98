"""FfmpegWriter and join_segments: exact rates and timestamps, pixel shape and audio kept,
nothing half-written left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.video.media import FaceVideo, Streams, ffmpeg, frame_times, sample_aspect
from workers.video.encode import AudioTrack, FfmpegWriter, join_segments
from workers.video.probe import probe_video


def gradient_frames(count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    xs = np.arange(width, dtype=np.uint8)[None, :, None]
    return [np.broadcast_to(xs * 3 + i * 5, (height, width, 3)).copy() for i in range(count)]


def write(
    path: Path, frames: list[np.ndarray], rate: Fraction, audio: AudioTrack | None = None
) -> Path:
    """Frames at a constant `rate`: time base 1/rate, frame i shown at i."""
    height, width = frames[0].shape[:2]
    with FfmpegWriter(path, width, height, 1 / rate, audio=audio) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame, i)
    return path


def test_rate_and_frame_count_are_kept(tmp_path: Path, streams: Callable[[Path], Streams]) -> None:
    out = write(tmp_path / "ntsc.mp4", gradient_frames(12), Fraction(30000, 1001))
    info = probe_video(out)
    assert info.frame_count == 12
    assert [info.time(i) for i in range(13)] == [i * Fraction(1001, 30000) for i in range(13)]
    assert streams(out).audio_seconds is None
    assert list(tmp_path.iterdir()) == [out]


def test_each_frame_keeps_its_time_and_pixels_their_shape(tmp_path: Path) -> None:
    """Frames at uneven times (1/1000 s ticks, a 0.4 s pause among them) come out at exactly those
    times, and pixels 128:117 wide keep that shape: a writer that numbered frames at one rate, or
    wrote square pixels, fails here."""
    shown = [0, 40, 53, 120, 160, 193, 600, 640, 680, 701, 760, 800]
    out = tmp_path / "uneven.mp4"
    with FfmpegWriter(out, 64, 48, Fraction(1, 1000), sar=Fraction(128, 117)) as writer:
        for frame, at, following in zip(gradient_frames(12), shown, [*shown[1:], 840], strict=True):
            writer.write(frame, at, following - at)
    assert frame_times(out) == pytest.approx([t / 1000 for t in shown], abs=1e-6)
    assert sample_aspect(out) == "128:117"
    assert probe_video(out).duration == pytest.approx(0.84, abs=0.04)


def test_frames_survive_encoding(tmp_path: Path, decode: Callable) -> None:
    frames = gradient_frames(5)
    decoded = decode(write(tmp_path / "g.mp4", frames, Fraction(25)))
    assert len(decoded) == 5
    assert all(np.abs(a.astype(int) - b).mean() < 2 for a, b in zip(frames, decoded, strict=True))


def test_audio_is_copied_when_mp4_can_hold_it(
    tmp_path: Path, face_video: FaceVideo, streams: Callable[[Path], Streams]
) -> None:
    audio = AudioTrack(face_video.path, "aac")
    out = write(tmp_path / "a.mp4", gradient_frames(40), Fraction(25), audio)
    assert streams(out).audio_codec == "aac"
    assert streams(out).audio_seconds == streams(face_video.path).audio_seconds


def test_audio_mp4_cannot_hold_is_converted_to_aac(
    tmp_path: Path, streams: Callable[[Path], Streams]
) -> None:
    source = tmp_path / "pcm.mov"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "pcm_s16le", str(source))
    out = write(
        tmp_path / "b.mp4", gradient_frames(25), Fraction(25), AudioTrack(source, "pcm_s16le")
    )
    measured = streams(out)
    assert measured.audio_codec == "aac"
    assert measured.audio_seconds == pytest.approx(1.0, abs=0.05)


def test_audio_range_is_cut_to_the_segment(
    tmp_path: Path, chaplin_clip: Path, streams: Callable[[Path], Streams]
) -> None:
    audio = AudioTrack(chaplin_clip, "mp3", start=0.5, duration=1.0)
    out = write(tmp_path / "c.mp4", gradient_frames(25), Fraction(25), audio)
    assert streams(out).audio_seconds == pytest.approx(1.0, abs=0.06)


def test_a_failed_run_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "never.mp4"
    with (
        pytest.raises(RuntimeError, match="boom"),
        FfmpegWriter(target, 64, 48, Fraction(1, 25)) as writer,
    ):
        writer.write(gradient_frames(1)[0], 0)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_wrong_frames_and_odd_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even sides"):
        FfmpegWriter(tmp_path / "odd.mp4", 63, 48, Fraction(1, 25))
    with (
        pytest.raises(ValueError, match="does not fit"),
        FfmpegWriter(tmp_path / "x.mp4", 64, 48, Fraction(1, 25)) as writer,
    ):
        writer.write(np.zeros((48, 66, 3), np.uint8), 0)
    assert list(tmp_path.iterdir()) == []


def test_join_concatenates_without_reencoding_and_adds_audio_once(
    tmp_path: Path, face_video: FaceVideo, decode: Callable, streams: Callable[[Path], Streams]
) -> None:
    frames = gradient_frames(40)
    parts = [
        write(tmp_path / "p0.mp4", frames[:15], Fraction(25)),
        write(tmp_path / "p1.mp4", frames[15:], Fraction(25)),
    ]
    out = join_segments(parts, face_video.path, tmp_path / "joined.mp4", keep_audio=True)
    info = probe_video(out)
    assert info.frame_count == 40
    assert [info.time(i) for i in range(41)] == [i * Fraction(1, 25) for i in range(41)]
    assert streams(out).audio_seconds == streams(face_video.path).audio_seconds
    joined = decode(out)
    originals = decode(parts[0]) + decode(parts[1])
    assert all(np.array_equal(a, b) for a, b in zip(joined, originals, strict=True))

    silent = join_segments(parts, face_video.path, tmp_path / "silent.mp4", keep_audio=False)
    assert streams(silent).audio_seconds is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "joined.mp4",
        "p0.mp4",
        "p1.mp4",
        "silent.mp4",
    ]


def test_join_needs_segments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no segments"):
        join_segments([], None, tmp_path / "x.mp4")


def test_an_ffmpeg_that_does_not_finish_is_stopped_at_its_timeout():
    from workers.video.ffmpeg import run_ffmpeg

    endless = ["-f", "lavfi", "-i", "testsrc=size=32x32:rate=25", "-f", "null", "-"]
    with pytest.raises(RuntimeError, match="did not finish within 1 s"):
        run_ffmpeg(endless, timeout=1)


def _wait_for(check: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


def test_an_ffmpeg_that_dies_before_the_end_leaves_no_file(tmp_path: Path) -> None:
    """ffmpeg killed once it has started the file: the bytes still buffered for it (a frame is
    larger than the buffer, the few bytes that end it are not) meet a broken pipe when the
    writer closes, and the unfinished file is removed all the same."""
    target = tmp_path / "killed.mp4"
    frame = gradient_frames(1)[0]
    with (
        pytest.raises(RuntimeError, match=r"could not encode killed\.mp4"),
        FfmpegWriter(target, 64, 48, Fraction(1, 25)) as writer,
    ):
        # ffmpeg reads a few seconds of input before it starts its output
        for i in range(2000):
            writer.write(frame, i)
            if any(tmp_path.iterdir()):
                break
        assert any(tmp_path.iterdir()), "ffmpeg never started the file"
        pid = int(subprocess.check_output(["pgrep", "-n", "-P", str(os.getpid()), "ffmpeg"]))
        os.kill(pid, signal.SIGKILL)
        assert _wait_for(lambda: _dead(pid))
        # leaving the block closes the file: the last frame's duration is still buffered
    assert list(tmp_path.iterdir()) == []


def _dead(pid: int) -> bool:
    """Whether process `pid` has exited (a zombie still waiting to be reaped counts)."""
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] in ("Z", "X")
    return True


def test_a_join_stopped_at_its_timeout_leaves_no_file(tmp_path: Path) -> None:
    """The second segment is a pipe nobody writes: ffmpeg has begun the output with the first
    one and waits for ever, until the timeout stops it."""
    first = write(tmp_path / "p0.mp4", gradient_frames(5), Fraction(25))
    never = tmp_path / "p1.mp4"
    os.mkfifo(never)
    with pytest.raises(RuntimeError, match="did not finish within 2 s"):
        join_segments([first, never], None, tmp_path / "joined.mp4", timeout=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p0.mp4", "p1.mp4"]
