"""Request bodies of the HTTP API, its error body and its health answer (they are its OpenAPI
schema too, with the read model's shapes in `atelier.read` that the routes return).

Job parameters are the shared `NSTParams` / `VideoParams` models, so an HTTP body is validated by
exactly the rules a CLI flag or a worker uses. Over HTTP they are also strict about JSON types: a
number must be a JSON number and a flag a JSON boolean (`"iterations": "10"`, `true` for a number
or `"force": "yes"` are refused, naming the field), so a client's bug is not silently reinterpreted.
"""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import InitErrorDetails

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


_JSON_KINDS: dict[type, tuple[str, tuple[type, ...]]] = {
    bool: ("bool_type", (bool,)),
    int: ("int_type", (int,)),
    float: ("float_type", (int, float)),
}


def _kind(annotation: Any) -> tuple[type | None, bool]:
    """The scalar type a field holds (bool, int or float; None for anything else) and whether
    it is a sequence of them, through `X | None`."""
    if get_origin(annotation) is Annotated:  # a bounded list: what it holds counts
        return _kind(get_args(annotation)[0])
    args = [a for a in get_args(annotation) if a is not type(None)]
    args = [get_args(a)[0] if get_origin(a) is Annotated else a for a in args]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        return _kind(args[0])
    if get_origin(annotation) in (Union, UnionType) and len(args) == 2 and args[1] == list[args[0]]:
        return _kind(list[args[0]])  # a grid axis: one value or a list of them
    if get_origin(annotation) in (tuple, list) and args and args[0] in _JSON_KINDS:
        return args[0], True
    return (annotation if annotation in _JSON_KINDS else None), False


def _wrong_kind(kind: type, value: Any) -> bool:
    return isinstance(value, bool) != (kind is bool) or not isinstance(value, _JSON_KINDS[kind][1])


def strict_json(model: type[BaseModel]) -> BeforeValidator:
    """Refuse a JSON object whose numbers or flags are of another JSON type than the field's
    (FastAPI hands bodies to pydantic as Python objects, which lax mode would coerce: "10" to
    10, true to 1, "yes" to True); the errors name the fields as pydantic's own would."""

    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        errors: list[InitErrorDetails] = []
        for name, given in value.items():
            field = model.model_fields.get(name)
            kind, many = _kind(field.annotation) if field else (None, False)
            if kind is None or given is None:
                continue
            items = list(enumerate(given)) if many and isinstance(given, list) else [((), given)]
            for loc, item in items:
                if _wrong_kind(kind, item):
                    where = (name, loc) if loc != () else (name,)
                    errors.append({"type": _JSON_KINDS[kind][0], "loc": where, "input": item})
        if errors:
            raise ValidationError.from_exception_data(model.__name__, errors)
        return value

    return BeforeValidator(check)


MAX_IMAGES = 1000
"""Most content (or style) images one request may list; how many jobs the grid they make may
have is `ATELIER_MAX_GRID`'s to say."""

SERVER_WEIGHTS = (None, "imagenet", "none")


class ErrorBody(BaseModel):
    """Every error the API returns, whatever the status code."""

    error: str = Field(description="What went wrong, in words meant for the user.")
    status: int
    details: list[dict[str, Any]] | None = Field(
        None, description="Field-by-field problems of a request that failed validation."
    )


class BatchCreate(BaseModel):
    """A content x style grid: every content image stylized with every style image, and with
    every combination of the parameters given as lists (`"style_weight": [100, 1000]`)."""

    model_config = ConfigDict(extra="forbid")

    content: list[Sha256] = Field(min_length=1, max_length=MAX_IMAGES)
    styles: list[Sha256] = Field(min_length=1, max_length=MAX_IMAGES)
    params: Annotated[NSTGridParams, strict_json(NSTGridParams)] = Field(  # type: ignore[valid-type]
        default_factory=NSTGridParams
    )
    label: Label = None
    force: StrictBool = Field(False, description="Recompute even if an identical job succeeded.")

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
    params: Annotated[VideoParams, strict_json(VideoParams)] = Field(default_factory=VideoParams)
    label: Label = None


class Health(BaseModel):
    status: str = Field(
        description="ok when every dependency answered and there is room to store; `low disk`"
        " when free space is under ATELIER_MIN_FREE_DISK_MB; unavailable otherwise."
    )
    database: str
    broker: str
    disk: str = Field(description="`ok: N MiB free in FOLDER`, or `low: …` under the minimum.")
