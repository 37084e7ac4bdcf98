"""All configuration in one place, read from `ATELIER_*` environment variables (and `.env`).

Every component (CLI, API, worker, beat, Flower) builds its view of the world from one `Settings`
object, so a deployment is described by a single env file.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from atelier.db import PoolSize
from atelier.weights import WEIGHTS_URL


class Settings(BaseSettings):
    """Atelier's settings. Unset broker means the embedded, server-less default."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path("data"), description="Where the embedded defaults keep their files."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default SQLite in data_dir."
    )
    broker_url: str | None = Field(
        None, description="Celery broker; unset: embedded filesystem broker."
    )
    result_backend: str | None = Field(
        None, description="Celery result backend; default follows broker."
    )
    storage_dir: Path | None = Field(
        None,
        description="Content-addressed files; default data_dir/storage. With storage_url set:"
        " this process's bounded cache of objects and its scratch files.",
    )
    storage_url: str | None = Field(
        None,
        description="`s3://bucket/prefix`: files live in that S3-compatible bucket (endpoint and"
        " credentials from the standard AWS variables and config); unset: storage_dir.",
    )
    storage_cache_mb: int = Field(
        2048, ge=0, description="Local copies of objects kept, least recently used out first."
    )
    storage_retry_seconds: float = Field(
        60.0, ge=0, description="How long object-store calls retry while the store is away."
    )
    min_free_disk_mb: int = Field(
        200,
        ge=0,
        description="Free space in the storage folder (with storage_url: the cache and scratch"
        " folder) under which `atelier doctor` fails and /healthz reports `disk: low`.",
    )
    storage_redirect_seconds: int = Field(
        0,
        ge=0,
        le=7 * 24 * 3600,
        description="With storage_url: the API answers downloads with a redirect to a presigned"
        " URL valid this long, instead of streaming them (0: stream).",
    )
    db_pool_size: int = Field(
        10, ge=1, le=1000, description="Database connections each process keeps open."
    )
    db_max_overflow: int = Field(
        10, ge=0, le=1000, description="Extra connections a process may open under load."
    )
    db_pool_timeout: float = Field(
        10.0, gt=0, description="Seconds a request waits for a free connection before a 503."
    )

    vgg_weights: str = Field(
        "imagenet",
        description="`imagenet` (Keras download/cache), a path to a .h5 file, or `none`.",
    )
    vgg_weights_url: str = Field(
        WEIGHTS_URL,
        description="Where `atelier weights fetch` downloads the VGG19 file first (a mirror).",
    )
    face_model: Path | None = Field(
        None, description="YuNet ONNX file for the `dnn` face detector."
    )

    api_token: str | None = Field(None, description="Bearer token the HTTP API requires, if set.")
    api_token_file: Path | None = Field(
        None,
        description="Where the token is kept when ATELIER_API_TOKEN is unset: read from this file "
        "if it exists; `atelier api` writes a random one there if it does not.",
    )
    session_seconds: int = Field(
        12 * 3600, ge=60, description="How long a gallery login lasts before it must be repeated."
    )
    auth_failures_per_minute: int = Field(
        10,
        ge=1,
        description="Wrong tokens (header, cookie or login form) one client may send in a minute "
        "before it is refused with 429 for the rest of that minute.",
    )
    max_streams_per_client: int = Field(
        32, ge=1, description="Event streams one client address may hold open at once."
    )
    flower_user: str = "admin"
    flower_password: str | None = None
    flower_port: int = Field(5555, ge=1, le=65535, description="Port `atelier flower` listens on.")

    max_upload_bytes: int = Field(512 * 1024**2, gt=0)
    max_request_bytes: int = Field(
        1024**2,
        gt=0,
        description="Largest request body other than an upload (JSON, forms), refused as it "
        "streams in.",
    )
    max_pixels: int = Field(64_000_000, gt=0, description="Largest image accepted, in pixels.")
    max_video_seconds: float = Field(1800.0, gt=0)
    max_video_pixels: int = Field(
        4096 * 2160, gt=0, description="Largest video frame accepted, in pixels."
    )
    worker_max_memory_mb: int = Field(
        0, ge=0, description="A prefork child above this resident memory is replaced (0: never)."
    )
    max_batch: int = Field(4, ge=1, le=64, description="NST jobs of one size optimized together.")
    max_grid: int = Field(
        1000, ge=1, description="Most NST jobs one grid (contents x styles x parameters) may make."
    )
    nst_memory_mb: float = Field(
        4096.0,
        gt=0,
        description="Activation memory one NST pass may use; larger images are tiled.",
    )

    visibility_timeout: int = Field(
        6 * 3600, ge=10, description="Seconds before Redis redelivers an unacknowledged task."
    )
    lease_seconds: int = Field(
        120, ge=5, description="A running job without heartbeat this long is stale."
    )
    heartbeat_seconds: float = Field(5.0, gt=0, description="How often a worker renews its lease.")
    max_attempts: int = Field(3, ge=1, le=100)
    time_limit_scale: float = Field(
        1.0,
        ge=0,
        description="Scales the time limits derived from each job's size (0: no time limits).",
    )
    db_retry_seconds: float = Field(
        60.0, ge=0, description="How long job writes retry while the database is unreachable."
    )

    reaper_interval: float = Field(30.0, gt=0, description="Seconds between reaper passes.")
    requeue_grace_seconds: int = Field(
        60, ge=0, description="A queued job with no message in the broker this long is re-sent."
    )
    inboxes: str | None = Field(
        None, description="Watched folders: JSON, or the path of a .json or .toml file."
    )
    inbox_interval: float = Field(10.0, gt=0, description="Seconds between inbox scans.")
    retention_days: float = Field(
        0.0, ge=0, description="Files older than this are removed (0: kept forever)."
    )
    retention_interval: float = Field(3600.0, gt=0, description="Seconds between retention runs.")
    scratch_grace_seconds: float = Field(
        86400.0,
        gt=0,
        description="Scratch files (partial uploads and outputs) untouched this long are removed.",
    )
    scratch_interval: float = Field(
        3600.0, gt=0, description="Seconds between scratch sweeps (also run on start)."
    )

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from atelier.objectstore import parse_s3_url

        parse_s3_url(value.strip())  # raises ValueError with what is wrong
        return value.strip()

    @field_validator("vgg_weights")
    @classmethod
    def _weights_spec(cls, value: str) -> str:
        return value.strip() or "imagenet"

    @model_validator(mode="after")
    def _token_from_file(self) -> Settings:
        """ATELIER_API_TOKEN wins; without it, the token file's content when the file exists."""
        if not self.api_token and self.api_token_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.api_token = self.api_token_file.expanduser().read_text().strip() or None
        return self

    @property
    def pool(self) -> PoolSize:
        """The database pool every process of this deployment opens (PostgreSQL)."""
        return PoolSize(self.db_pool_size, self.db_max_overflow, self.db_pool_timeout)

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: jobs run on a filesystem broker, in-process."""
        return not self.broker_url

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'atelier.sqlite3'}"

    @property
    def resolved_storage_dir(self) -> Path:
        return (self.storage_dir or self.resolved_data_dir / "storage").expanduser().resolve()

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://localhost/"

    @property
    def broker_folder(self) -> Path:
        """The embedded broker's message folder."""
        return self.resolved_data_dir / "broker"

    @property
    def resolved_result_backend(self) -> str:
        if self.result_backend:
            return self.result_backend
        if self.embedded:
            return f"file://{self.resolved_data_dir / 'results'}"
        return self.resolved_broker_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
