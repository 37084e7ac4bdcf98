"""Content-addressed file storage with atomic writes.

Files are named by the sha256 of their bytes, so an upload is kept once however often it is sent,
and no path is ever built from a user-supplied name. Every write goes to a temporary file in the
same folder tree and is renamed into place only when complete: a reader never sees half a file.

`Storage` is a local folder (the embedded default, or a volume every machine mounts).
`atelier.objectstore.ObjectStorage` keeps the files in an S3-compatible bucket instead, with the
same methods; `open_storage` picks one from the settings. Code that reads a file asks for
`local_path(sha)`, which is the file itself here and a copy fetched into a bounded local cache
there; workers hand each other files (a video's segments) through `put_work` / `get_work`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from atelier.errors import InputError

if TYPE_CHECKING:
    from atelier.settings import Settings

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A work file's key: `folder/name`, letters, digits, dots, dashes and underscores only.
_WORK_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)?$")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    path: Path
    size: int


class Storage:
    """A folder of immutable objects under `objects/ab/cd/<sha256>` plus a scratch area."""

    remote = False  # files live elsewhere and `local_path` may fetch them

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"

    def path(self, sha256: str) -> Path:
        """Where the object with this hash lives; refuses anything that is not a hash."""
        if not _SHA256.match(sha256):
            raise InputError(f"not a sha256 digest: {sha256[:80]!r}")
        return self.objects / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def local_path(self, sha256: str) -> Path:
        """A local file with the object's bytes, to read (here: the object itself)."""
        return self.path(sha256)

    def copy_to(self, sha256: str, target: Path) -> None:
        """Write the object's bytes to `target` (an export)."""
        shutil.copyfile(self.local_path(sha256), target)

    def describe(self) -> str:
        return str(self.root)

    @contextmanager
    def _temp(self) -> Iterator[tuple[BinaryIO, Path]]:
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="put-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle, path
        finally:
            path.unlink(missing_ok=True)

    def _commit(self, temp: Path, sha256: str, size: int) -> StoredFile:
        final = self.path(sha256)
        if final.is_file():
            return StoredFile(sha256, final, size)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(temp, 0o644)
        os.replace(temp, final)
        return StoredFile(sha256, final, size)

    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> StoredFile:
        """Store a stream, hashing as it goes; refuses (and keeps nothing) past `max_bytes`."""
        digest = hashlib.sha256()
        size = 0
        with self._temp() as (handle, temp):
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise InputError(f"file is larger than the limit of {max_bytes} bytes")
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            return self._commit(temp, digest.hexdigest(), size)

    def put_bytes(self, data: bytes) -> StoredFile:
        """Store bytes made by Atelier itself (results, plots, sheets)."""
        sha256 = hashlib.sha256(data).hexdigest()
        with self._temp() as (handle, temp):
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            return self._commit(temp, sha256, len(data))

    def put_file(self, source: Path, max_bytes: int | None = None) -> StoredFile:
        """Store a copy of a local file."""
        with Path(source).open("rb") as stream:
            return self.put_stream(stream, max_bytes)

    def adopt(self, produced: Path) -> StoredFile:
        """Move a file a worker produced in `scratch()` into the store without copying it."""
        digest = hashlib.sha256()
        size = 0
        with Path(produced).open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return self._commit(Path(produced), digest.hexdigest(), size)

    @contextmanager
    def scratch(self, prefix: str) -> Iterator[Path]:
        """A private working folder on the store's filesystem (so `adopt` is a rename)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=self.tmp, prefix=f"{prefix}-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _work(self, key: str) -> Path:
        if not _WORK_KEY.match(key) or ".." in key:
            raise ValueError(f"not a work file key: {key!r}")
        return self.tmp / key

    def put_work(self, key: str, produced: Path) -> None:
        """Hand a file a worker produced to the workers of the same job (`folder/name`): here
        it moves into the shared scratch area, which every worker of a deployment mounts."""
        target = self._work(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(produced, target)

    def get_work(self, key: str, into: Path) -> Path:
        """The file `put_work` stored under `key`; here read in place (`into` is not used)."""
        found = self._work(key)
        if not found.is_file():
            raise FileNotFoundError(f"work file {key} is not in {self.tmp}")
        return found

    def drop_work(self, folder: str) -> None:
        """Remove every work file under `folder` (the job's attempt is over)."""
        shutil.rmtree(self._work(folder), ignore_errors=True)

    def delete(self, sha256: str) -> bool:
        """Remove an object (retention); True when something was removed."""
        path = self.path(sha256)
        if path.is_file():
            path.unlink()
            return True
        return False


def open_storage(settings: Settings) -> Storage:
    """The storage the settings describe: the bucket of `storage_url`, or the local folder."""
    if settings.storage_url:
        from atelier.objectstore import ObjectStorage

        return ObjectStorage.from_settings(settings)
    return Storage(settings.resolved_storage_dir)
