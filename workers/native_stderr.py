"""Keep native libraries' start-up chatter off the terminal of a command that runs jobs itself.

TensorFlow, XLA and absl write from C++ straight to file descriptor 2, before and regardless of
Python's logging and of `TF_CPP_MIN_LOG_LEVEL` (absl's "All log messages before
absl::InitializeLog()" line, oneDNN notices, and on a machine without a GPU
`E0000 … failed call to cuInit`). A user reads those as failures. While the embedded worker runs,
descriptor 2 points at a log file instead, and Python's `sys.stderr` (progress bars, messages,
Python logging) keeps writing to the terminal through a duplicate of the original descriptor.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


@contextmanager
def native_stderr_to(log: Path) -> Iterator[Path]:
    """Send what native code writes to fd 2 into `log` (appended) until the block ends."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    python_stderr = sys.stderr
    terminal = os.dup(2)
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stderr = open(  # noqa: SIM115 - lives until the block ends, closed below
        terminal,
        "w",
        buffering=1,
        encoding=getattr(python_stderr, "encoding", None) or "utf-8",
        errors="backslashreplace",
        closefd=False,
    )
    os.dup2(target, 2)
    os.close(target)
    moved = _follow(python_stderr, sys.stderr)
    try:
        yield log
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)
        os.close(terminal)
        sys.stderr = python_stderr
        for handler in moved:
            handler.setStream(python_stderr)


def _follow(old: TextIO, new: TextIO) -> list[logging.StreamHandler[TextIO]]:
    """Python log handlers writing to fd 2 (logging's and Celery's, bound when they were made)
    write to the terminal stream instead; returns them so the block can put them back."""
    moved = []
    loggers = [logging.getLogger(), *map(logging.getLogger, ("celery", "atelier", "workers"))]
    for handler in {h for logger in loggers for h in logger.handlers}:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (old, sys.__stderr__):
            handler.setStream(new)
            moved.append(handler)
    return moved
