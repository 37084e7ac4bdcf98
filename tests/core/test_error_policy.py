"""The one error policy (`atelier.errors.verdict`), fed real errors: a real full disk
(`/dev/full`), a database and a broker that refuse connections, ffmpeg writing to a full disk.
Input errors fail the job; outages give it back without spending an attempt; anything else
spends one."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection
from sqlalchemy import create_engine, text

from atelier.errors import (
    DiskFull,
    InputError,
    Verdict,
    WeightsUnavailable,
    outage,
    verdict,
)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _raised(call) -> BaseException:
    with pytest.raises(Exception) as caught:
        call()
    return caught.value


def _write_to_full_disk() -> None:
    with Path("/dev/full").open("wb") as full:
        full.write(b"x" * 4096)
        full.flush()


def _unreachable_database() -> None:
    url = f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/none?connect_timeout=2"
    with create_engine(url).connect() as connection:
        connection.execute(text("SELECT 1"))


def _unreachable_broker() -> None:
    with Connection(f"redis://127.0.0.1:{_closed_port()}/0") as connection:
        connection.ensure_connection(max_retries=1)


def test_a_full_disk_is_an_outage_even_when_a_library_re_raises_it():
    full = _raised(_write_to_full_disk)
    assert (verdict(full), outage(full)) == (Verdict.GIVE_BACK, "disk")

    def wrapped() -> None:
        try:
            _write_to_full_disk()
        except OSError as error:
            raise RuntimeError("could not save the result") from error

    assert (verdict(_raised(wrapped)), outage(_raised(wrapped))) == (Verdict.GIVE_BACK, "disk")


def test_a_database_or_broker_that_is_away_is_an_outage():
    assert outage(_raised(_unreachable_database)) == "database"
    assert outage(_raised(_unreachable_broker)) == "broker"
    assert verdict(_raised(_unreachable_database)) is Verdict.GIVE_BACK


def test_input_errors_fail_and_anything_else_spends_an_attempt():
    assert verdict(InputError("not an image")) is Verdict.FAIL
    assert verdict(WeightsUnavailable("no weights")) is Verdict.FAIL
    bug = _raised(lambda: [][1])
    assert (verdict(bug), outage(bug)) == (Verdict.SPEND, None)
    other_io = _raised(lambda: Path("/nonexistent/file").read_bytes())
    assert verdict(other_io) is Verdict.SPEND  # a missing file is not an outage


def test_ffmpeg_writing_to_a_full_disk_says_so(tmp_path: Path):
    from workers.video.ffmpeg import ffmpeg_failed, run_ffmpeg

    args = ["-f", "lavfi", "-i", "testsrc=size=32x32:duration=1", "-f", "rawvideo", "-y"]
    result = run_ffmpeg([*args, "/dev/full"])
    assert result.returncode != 0
    full = ffmpeg_failed("ffmpeg could not encode", result.stderr)
    assert isinstance(full, DiskFull) and verdict(full) is Verdict.GIVE_BACK
    fine = run_ffmpeg([*args, str(tmp_path / "out.raw")])
    assert fine.returncode == 0
    broken = run_ffmpeg(["-i", str(tmp_path / "missing.mp4"), str(tmp_path / "x.mp4")])
    assert verdict(ffmpeg_failed("ffmpeg could not read", broken.stderr)) is Verdict.SPEND


def test_a_full_object_store_is_a_full_disk():
    """What botocore raises for a store (or a bucket's quota) that answers it is full."""
    from botocore.exceptions import ClientError

    full = ClientError(
        {"Error": {"Code": "XMinioStorageFull"}, "ResponseMetadata": {"HTTPStatusCode": 507}},
        "PutObject",
    )
    quota = ClientError({"Error": {"Code": "QuotaExceeded"}}, "PutObject")
    refused = ClientError({"Error": {"Code": "AccessDenied"}}, "PutObject")
    assert [outage(error) for error in (full, quota, refused)] == ["disk", "disk", None]
    assert verdict(refused) is Verdict.SPEND


def test_ffmpeg_that_cannot_start_for_want_of_file_handles_is_an_outage():
    """A real failure to start: a child process allowed no more open files (RLIMIT_NOFILE) than
    it has, so the pipes to ffmpeg cannot be made."""
    script = (
        "import os, resource\n"
        "from atelier.errors import outage, verdict\n"
        "from workers.video.ffmpeg import ffmpeg_exe, run_ffmpeg\n"
        "ffmpeg_exe()\n"  # found before the limit
        "held = len(os.listdir('/proc/self/fd'))\n"
        "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (held, hard))\n"
        "try:\n"
        "    run_ffmpeg(['-version'])\n"
        "except Exception as error:\n"
        "    print(outage(error), verdict(error).value)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.stdout.split() == ["tool", "give", "back"], done.stdout + done.stderr
