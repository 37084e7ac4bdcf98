"""The one ffmpeg binary every video step runs: the static build that imageio-ffmpeg ships.

OpenCV's pip wheels cannot write H.264, and a system ffmpeg may be missing or differ between
machines, so probing, encoding and joining all go through the same pinned binary.

A machine that cannot start ffmpeg now (out of processes, memory or file handles) and an ffmpeg
that ran out of disk are outages (`atelier.errors.Outage`, `DiskFull`): the job is given back
without spending an attempt. Any other failure is ffmpeg's own and reported with its message.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Sequence
from functools import cache
from typing import Any

from atelier.errors import DISK_FULL_TEXTS, DiskFull, Outage

# What starting a process fails with when the machine is short of something for now.
START_OUTAGES = frozenset({errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.ENOSPC})


@cache
def ffmpeg_exe() -> str:
    """Path of the bundled ffmpeg binary (imported lazily: only video work needs it)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# Every run here copies streams or reads headers (no decoding of every frame): seconds even for
# the longest video accepted. An ffmpeg still running after this is stuck (a file that never
# ends, a filesystem that hangs) and would hold the worker for ever.
FFMPEG_TIMEOUT_SECONDS = 600.0


def run_ffmpeg(
    args: list[str], timeout: float = FFMPEG_TIMEOUT_SECONDS
) -> subprocess.CompletedProcess[str]:
    """Run ffmpeg to completion and return its output; never raises on a non-zero exit status,
    because callers read the reason from stderr and turn it into their own error. An ffmpeg
    that runs longer than `timeout` seconds is killed and RuntimeError is raised."""
    try:
        return subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", *args],
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"ffmpeg did not finish within {timeout:g} s; it was stopped") from None
    except OSError as error:
        raise _not_started(error) from error


def start_ffmpeg(command: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(command)`, a start that fails for want of resources being an outage."""
    try:
        return subprocess.Popen(command, **options)
    except OSError as error:
        raise _not_started(error) from error


def _not_started(error: OSError) -> Exception:
    if error.errno in START_OUTAGES:
        return Outage(f"ffmpeg could not start: {error}")
    return error


def ffmpeg_failed(message: str, stderr: str) -> Exception:
    """The error for an ffmpeg that exited with a failure: `DiskFull` when it says the disk or
    the quota is full, else RuntimeError, each with `message`."""
    if any(text in stderr for text in DISK_FULL_TEXTS):
        return DiskFull(message)
    return RuntimeError(message)


def stderr_tail(stderr: str, lines: int = 3) -> str:
    """The last meaningful lines of ffmpeg's stderr, joined for an error message."""
    kept = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])
