"""Request and response bodies of the HTTP API (they are its OpenAPI schema too).

Job parameters are the shared `NSTParams` / `VideoParams` models, so an HTTP body is validated by
exactly the rules a CLI flag or a worker uses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from atelier.errors import InputError
from atelier.grid import NSTGridParams, combinations, validate
from atelier.schemas import NSTParams, VideoParams

Sha256 = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{64}$"),
    Field(description="An asset's sha256 (64 lower-case hex digits)."),
]


def no_nul(value: str | None) -> str | None:
    """Refuse NUL characters in text that is stored: PostgreSQL text cannot hold them, so the
    insert would fail as a 500 after the request had been accepted."""
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL (\\x00) characters")
    return value


Label = Annotated[
    str | None,
    Field(None, max_length=255, description="Display name only."),
    AfterValidator(no_nul),
]

MAX_GRID_CELLS = 1000
"""Most content x style cells one request may create."""

SERVER_WEIGHTS = (None, "imagenet", "none")


class ErrorBody(BaseModel):
    """Every error the API returns, whatever the status code."""

    error: str = Field(description="What went wrong, in words meant for the user.")
    status: int
    details: list[dict[str, Any]] | None = Field(
        None, description="Field-by-field problems of a request that failed validation."
    )


class AssetOut(BaseModel):
    sha256: str
    kind: str = Field(description="image | video | result | preview | plot | sheet")
    media_type: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    label: str | None = None
    created_at: datetime
    content_url: str
    thumbnail_url: str


class JobOut(BaseModel):
    id: int
    kind: str
    batch_id: int | None
    state: str
    progress: float
    attempts: int
    max_attempts: int
    error: str | None
    worker: str | None
    inputs: dict[str, Any]
    params: dict[str, Any]
    meta: dict[str, Any]
    result: AssetOut | None = None
    reused_from_id: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    seconds: float | None = None


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last.")


class BatchSummary(BaseModel):
    id: int
    kind: str
    label: str | None
    source: str
    params: dict[str, Any]
    created_at: datetime
    total: int = Field(description="Number of jobs.")
    counts: dict[str, int] = Field(description="Jobs per state.")
    progress: float = Field(description="0..1; finished jobs count as done.")
    finished: bool
    reused: int = Field(description="Jobs that reused an identical earlier result.")
    sheet_url: str | None = Field(None, description="Contact sheet (NST batches).")


class BatchOut(BatchSummary):
    jobs: list[JobOut]


class BatchPage(BaseModel):
    items: list[BatchSummary]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class BatchCreate(BaseModel):
    """A content x style grid: every content image stylized with every style image, and with
    every combination of the parameters given as lists (`"style_weight": [100, 1000]`)."""

    model_config = ConfigDict(extra="forbid")

    content: list[Sha256] = Field(min_length=1, max_length=MAX_GRID_CELLS)
    styles: list[Sha256] = Field(min_length=1, max_length=MAX_GRID_CELLS)
    params: NSTGridParams = Field(default_factory=NSTGridParams)  # type: ignore[valid-type]
    label: Label = None
    force: bool = Field(False, description="Recompute even if an identical job succeeded.")

    @field_validator("params")
    @classmethod
    def _no_server_paths(cls, params: Any) -> Any:
        # A weights *path* names a file on the workers' disks: only the operator may pick one.
        if params.weights not in SERVER_WEIGHTS:
            raise ValueError(
                "weights may be `imagenet` or `none` over HTTP; weight files are set by the "
                "operator (ATELIER_VGG_WEIGHTS)"
            )
        try:
            validate(params.model_dump())
        except ValidationError as error:
            raise ValueError(
                "; ".join(
                    f"params.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
                )
            ) from error
        except InputError as error:
            raise ValueError(str(error)) from error
        return params

    def combinations(self, limit: int) -> list[NSTParams]:
        """Every parameter combination of the grid (one when no parameter is a list); more
        than `limit` is an InputError."""
        return combinations(self.params.model_dump(), limit)


class VideoCreate(BaseModel):
    """One video and the filters to put on its faces."""

    model_config = ConfigDict(extra="forbid")

    video: Sha256
    params: VideoParams = Field(default_factory=VideoParams)
    label: Label = None


class Health(BaseModel):
    status: str = Field(description="ok when every dependency answered.")
    database: str
    broker: str
