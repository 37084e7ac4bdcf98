"""The scratch sweep: what killed processes left in storage's scratch area goes, whatever
retention says.

Uploads are received, and workers write their outputs, in private folders under the storage's
`tmp/` (`Storage.scratch`), removed on every exit path a process lives through. A process that is
killed (SIGKILL, a crash, a lost machine) cannot remove them: a half-received upload, a
`.partial.mp4`. The sweep removes every entry of `tmp/` that nothing has touched for
`ATELIER_SCRATCH_GRACE_SECONDS` (its newest file counts, so work still writing is left alone). It
runs when the API and each worker start, and every `ATELIER_SCRATCH_INTERVAL` seconds from the
scheduler, independent of retention (which is off by default). The scheduler's pass also removes
an object store's work files (a killed attempt's video segments) as old as that; the starts do
not, so a store that is away cannot hold up a start.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from atelier.objectstore import ObjectStorage
from atelier.settings import Settings
from atelier.storage import open_storage

log = logging.getLogger(__name__)


def newest_mtime(path: Path) -> float:
    """The latest modification time of `path` and, for a folder, of everything inside it."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for child in path.rglob("*"):
            try:
                newest = max(newest, child.lstat().st_mtime)
            except OSError:  # removed meanwhile by the process that owns it
                continue
    return newest


def sweep(tmp: Path, grace_seconds: float, now: float | None = None) -> int:
    """Remove the entries of `tmp` untouched for `grace_seconds`; returns how many went."""
    if not tmp.is_dir():
        return 0
    limit = (time.time() if now is None else now) - grace_seconds
    removed = 0
    for entry in tmp.iterdir():
        try:
            if newest_mtime(entry) >= limit:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError as error:
            log.info("scratch: cannot remove %s: %s", entry, error)
    return removed


def sweep_scratch(settings: Settings, why: str, work_files: bool = False) -> int:
    """Sweep the deployment's scratch area (see the module docstring), and with `work_files`
    an object store's work files, logging what went; `why` says which start or schedule ran
    it. Never raises: a sweep must not stop a start."""
    storage = open_storage(settings)
    grace = settings.scratch_grace_seconds
    removed = 0
    try:
        removed += sweep(storage.tmp, grace)
        if work_files and isinstance(storage, ObjectStorage):
            removed += storage.sweep_work(grace)
    except Exception as error:  # noqa: BLE001 - a disk or a store away: the next sweep
        log.warning("scratch (%s): cannot sweep %s: %s", why, storage.describe(), error)
    if removed:
        log.warning("scratch (%s): removed %d leftover(s) older than %.0f s from %s",
                    why, removed, grace, storage.describe())  # fmt: skip
    return removed
