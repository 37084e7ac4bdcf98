"""Start real Atelier processes (workers, beat, Flower) and stop them cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ATELIER = [sys.executable, "-m", "api.cli"]


def atelier_env(base: Mapping[str, str]) -> dict[str, str]:
    """The test's ATELIER_* settings over a clean copy of this environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    env.update(base)
    env["PYTHONPATH"] = str(REPO)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


@contextmanager
def atelier_process(
    args: list[str],
    env: Mapping[str, str],
    log: Path,
    ready: str | None,
    timeout: float = 60,
    prefix: Sequence[str] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `atelier ARGS` until the block ends; wait for `ready` to appear in its log first.
    `prefix` is a command that runs it (one that sets up a namespace and then execs it)."""
    handle = log.open("ab")
    proc = subprocess.Popen(
        [*prefix, *ATELIER, *args],
        env=atelier_env(env),
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        if ready is not None:
            wait_for_log(log, ready, timeout, proc)
        yield proc
    finally:
        stop(proc)
        handle.close()


def wait_for_log(log: Path, text: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        time.sleep(0.1)
    raise TimeoutError(f"{text!r} not in log after {timeout} s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    stop_all([proc], grace)


def stop_all(procs: Sequence[subprocess.Popen[bytes]], grace: float = 15) -> None:
    """`stop` several at once: a worker takes seconds to stop, so ask them all first, then
    wait for each (SIGKILL whichever lingers past `grace`)."""
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
