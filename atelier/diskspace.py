"""How much room is left where this process writes files, against `ATELIER_MIN_FREE_DISK_MB`.

A full disk is an outage, not a failure (`atelier.errors.verdict`): jobs are held and uploads
answer 507 until space is freed. Running low is reported before that happens, by `/healthz` and
`atelier doctor`, from the folder that fills: the storage folder, or, with an object store, this
process's cache and scratch folder.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from atelier.settings import Settings

MB = 1024**2


@dataclass(frozen=True)
class Space:
    """Free bytes in `folder`, and whether that is under the settings' minimum."""

    folder: Path
    free: int
    minimum: int

    @property
    def low(self) -> bool:
        return self.free < self.minimum

    def describe(self) -> str:
        """`ok: N MiB free in FOLDER`, or `low: …, under ATELIER_MIN_FREE_DISK_MB (M)`."""
        free = f"{self.free / MB:.0f} MiB free in {self.folder}"
        if self.low:
            return f"low: {free}, under ATELIER_MIN_FREE_DISK_MB ({self.minimum // MB})"
        return f"ok: {free}"


def free_space(settings: Settings) -> Space:
    """The free space of the filesystem holding the storage folder (or the nearest existing
    folder above it, before anything was stored)."""
    where = settings.resolved_storage_dir
    existing = next(path for path in (where, *where.parents) if path.exists())
    return Space(where, shutil.disk_usage(existing).free, settings.min_free_disk_mb * MB)
