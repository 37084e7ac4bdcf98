"""Content-addressed storage in an S3-compatible bucket, with a bounded local cache.

`ATELIER_STORAGE_URL=s3://bucket/prefix` keeps every file under `prefix/objects/ab/cd/<sha256>`
in the bucket, so workers, the API and the scheduler need no shared folder. The endpoint and the
credentials come from the standard AWS variables and config files (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, `~/.aws/config`, a pod's web identity, ...), read by boto3.

Each process keeps local copies of the objects it read or wrote in `ATELIER_STORAGE_DIR` (the
`objects/` tree of `atelier.storage.Storage`, which this class extends), bounded by
`ATELIER_STORAGE_CACHE_MB`: least recently used copies go first, except those used in the last
`CACHE_GRACE_SECONDS` (another process of the same host may be about to open them). A write
stores the local copy first, then uploads it, and returns only once the object is in the bucket:
a job's result is there before its row says `succeeded`.

Every call to the store retries for up to `ATELIER_STORAGE_RETRY_SECONDS` while the store is away
(`atelier.storage_errors`), so a restart of the store costs a job time, not an attempt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from atelier.backoff import retry_while_away
from atelier.storage import _CHUNK, Storage, StoredFile
from atelier.storage_errors import is_transient_storage_error

if TYPE_CHECKING:
    from atelier.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
CACHE_GRACE_SECONDS = 60.0
# One boto3 client per process (prefork children make their own) and AWS configuration.
_clients: dict[tuple[int, tuple[tuple[str, str], ...]], Any] = {}


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending with "/"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3_url(url: str) -> S3Location:
    """`s3://bucket` or `s3://bucket/some/prefix`; ValueError says what is wrong otherwise."""
    if not url.startswith("s3://"):
        raise ValueError(f"storage URL {url!r} must start with s3:// (s3://bucket/prefix)")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not 3 <= len(bucket) <= 63 or not all(c.isalnum() or c in ".-" for c in bucket):
        raise ValueError(f"storage URL {url!r}: {bucket!r} is not an S3 bucket name")
    prefix = prefix.strip("/")
    return S3Location(bucket, f"{prefix}/" if prefix else "")


def s3_client() -> Any:
    """This process's S3 client, configured the standard AWS way (variables, config files).

    botocore's own retries (standard mode) smooth over single failed requests; an outage of
    the store is ridden out by `ObjectStorage._call`, which retries for a length of time."""
    key = (os.getpid(), tuple(sorted((k, v) for k, v in os.environ.items() if k[:4] == "AWS_")))
    if key not in _clients:
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=60,
            signature_version="s3v4",
        )
        _clients.clear()  # a forked child must not use its parent's connections
        _clients[key] = boto3.session.Session().client("s3", config=config)
    return _clients[key]


class ObjectStorage(Storage):
    """Objects in a bucket; `root` (ATELIER_STORAGE_DIR) holds the local cache and scratch."""

    remote = True

    def __init__(
        self,
        url: str,
        root: Path,
        cache_bytes: int,
        retry_seconds: float,
        cache_grace: float = CACHE_GRACE_SECONDS,
    ) -> None:
        super().__init__(root)
        self.location = parse_s3_url(url)
        self.cache_bytes = cache_bytes
        self.retry_seconds = retry_seconds
        self.cache_grace = cache_grace

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStorage:
        assert settings.storage_url is not None
        return cls(
            settings.storage_url,
            settings.resolved_storage_dir,
            settings.storage_cache_mb * 1024**2,
            settings.storage_retry_seconds,
        )

    @property
    def client(self) -> Any:
        return s3_client()

    def describe(self) -> str:
        return str(self.location)

    def key(self, sha256: str) -> str:
        self.path(sha256)  # refuses anything that is not a hash
        return f"{self.location.prefix}objects/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def _work_key(self, key: str) -> str:
        self._work(key)  # the same check as the local work area
        return f"{self.location.prefix}work/{key}"

    # -- calls to the store --------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """Run one call to the store, retrying while the store is away (see the module doc)."""
        return retry_while_away(
            call, is_transient_storage_error, self.retry_seconds, what, "object store", log
        )

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        def head() -> dict[str, Any] | None:
            try:
                return self.client.head_object(Bucket=self.location.bucket, Key=key)
            except ClientError as error:
                if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                    return None
                raise

        return self._call(f"head {key}", head)

    def _upload(self, source: Path, key: str) -> None:
        self._call(
            f"upload {key}",
            lambda: self.client.upload_file(str(source), self.location.bucket, key),
        )

    def _get(self, key: str, **extra: str) -> dict[str, Any]:
        """GET `key` (no retry here); FileNotFoundError when it is not in the bucket."""
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.location.bucket, Key=key, **extra)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"{key} is not in bucket {self.location.bucket}") from None
            raise

    def _download(self, key: str, target: Path) -> str:
        """Fetch `key` into `target` (via a temporary name); returns the bytes' sha256."""

        def fetch() -> str:
            temp = target.with_name(f".{target.name}.part-{os.getpid()}")
            digest = hashlib.sha256()
            response = self._get(key)
            try:
                with temp.open("wb") as out:
                    for chunk in response["Body"].iter_chunks(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                os.replace(temp, target)
            finally:
                temp.unlink(missing_ok=True)
            return digest.hexdigest()

        target.parent.mkdir(parents=True, exist_ok=True)
        return self._call(f"download {key}", fetch)

    # -- the Storage interface -----------------------------------------------------------------

    def exists(self, sha256: str) -> bool:
        return self._head(self.key(sha256)) is not None

    def _commit(self, temp: Path, sha256: str, size: int) -> StoredFile:
        """Keep the local copy, then upload it unless the bucket has it already."""
        stored = super()._commit(temp, sha256, size)
        key = self.key(sha256)
        if self._head(key) is None:
            self._upload(stored.path, key)
        self._trim_cache()
        return stored

    def local_path(self, sha256: str) -> Path:
        """The local copy of the object, fetched into the cache (and checked) when missing."""
        local = self.path(sha256)
        if local.is_file():
            os.utime(local)  # recently used: last out of the cache
            return local
        self._fetch(sha256, local)
        self._trim_cache()
        return local

    def copy_to(self, sha256: str, target: Path) -> None:
        if self.path(sha256).is_file():
            super().copy_to(sha256, target)
            return
        self._fetch(sha256, target)

    def _fetch(self, sha256: str, target: Path) -> None:
        """Download the object into `target`, refusing (and removing) bytes of another hash."""
        got = self._download(self.key(sha256), target)
        if got != sha256:
            target.unlink(missing_ok=True)
            raise OSError(f"object {sha256[:12]} arrived damaged (its bytes hash to {got[:12]})")

    def delete(self, sha256: str) -> bool:
        key = self.key(sha256)
        self.path(sha256).unlink(missing_ok=True)
        if self._head(key) is None:
            return False
        self._call(
            f"delete {key}",
            lambda: self.client.delete_object(Bucket=self.location.bucket, Key=key),
        )
        return True

    # -- files workers hand each other -------------------------------------------------------

    def put_work(self, key: str, produced: Path) -> None:
        self._upload(produced, self._work_key(key))
        produced.unlink(missing_ok=True)

    def get_work(self, key: str, into: Path) -> Path:
        self._download(self._work_key(key), into)
        return into

    def _work_objects(self, folder: str) -> Iterator[dict[str, Any]]:
        """The work files under `folder` (all of them for "")."""
        prefix = f"{self._work_key(folder)}/" if folder else f"{self.location.prefix}work/"
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            f"list {prefix}",
            lambda: list(paginator.paginate(Bucket=self.location.bucket, Prefix=prefix)),
        )
        for page in pages:
            yield from page.get("Contents", [])

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = {"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True}
            self._call(
                "delete work files",
                lambda b=batch: self.client.delete_objects(Bucket=self.location.bucket, Delete=b),
            )

    def drop_work(self, folder: str) -> None:
        self._delete_keys([item["Key"] for item in self._work_objects(folder)])

    def sweep_work(self, max_age_seconds: float) -> int:
        """Remove work files older than `max_age_seconds` (left by killed attempts)."""
        limit = time.time() - max_age_seconds
        old = [
            item["Key"]
            for item in self._work_objects("")
            if item["LastModified"].timestamp() < limit
        ]
        self._delete_keys(old)
        return len(old)

    # -- what the API and doctor need --------------------------------------------------------

    def open_object(self, sha256: str, byte_range: str | None = None) -> dict[str, Any]:
        """The store's answer to a GET of the object (`Body` streams), for one `Range` if given.
        FileNotFoundError when the object is not there."""
        key = self.key(sha256)
        extra = {"Range": byte_range} if byte_range else {}
        return self._call(f"get {key}", lambda: self._get(key, **extra))

    def presigned_url(self, sha256: str, media_type: str, seconds: int) -> str:
        """A URL that lets whoever holds it GET the object for `seconds`, served with
        `media_type` (signing is local: no call to the store)."""
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.location.bucket,
                "Key": self.key(sha256),
                "ResponseContentType": media_type,
            },
            ExpiresIn=seconds,
        )

    def check(self) -> str:
        """Read-only proof that the bucket answers and can be listed; raises otherwise."""
        bucket = self.location.bucket
        self.client.head_bucket(Bucket=bucket)
        listed = self.client.list_objects_v2(
            Bucket=bucket, Prefix=f"{self.location.prefix}objects/", MaxKeys=1
        )
        endpoint = self.client.meta.endpoint_url
        some = "has objects" if listed.get("KeyCount") else "no objects yet"
        return f"{self.location} at {endpoint}: reachable, {some}"

    # -- the local cache -----------------------------------------------------------------------

    def cached_bytes(self) -> int:
        return sum(entry.stat().st_size for entry in self._cached())

    def _cached(self) -> list[Path]:
        if not self.objects.is_dir():
            return []
        return [path for path in self.objects.glob("*/*/*") if path.is_file()]

    def _trim_cache(self) -> None:
        """Remove the least recently used local copies until the cache fits its bound, sparing
        copies used in the last `cache_grace` seconds."""
        entries = []
        for path in self._cached():
            try:
                info = path.stat()
            except FileNotFoundError:  # another process of this host trimmed it
                continue
            entries.append((info.st_mtime, info.st_size, path))
        total = sum(size for _, size, _ in entries)
        if total <= self.cache_bytes:
            return
        spare_after = time.time() - self.cache_grace
        for mtime, size, path in sorted(entries, key=lambda e: e[0]):
            if total <= self.cache_bytes:
                break
            if mtime >= spare_after:
                break  # the rest were used even more recently
            path.unlink(missing_ok=True)
            total -= size
