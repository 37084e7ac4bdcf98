"""Job parameter options, defined once and shared by `stylize`, `video` and `submit`.

Each option is a `ParamOption` naming the schema field it sets; `with_params(NST, VIDEO)` adds
the options of those groups to a command's signature and hands the command a `GivenParams`
with what the user typed. Validation goes through the job's pydantic schema, and every problem
is reported against the flag the user typed (or `--param NAME` for `submit -p NAME=...`).

To add an option: add a `ParamOption` to its group (the schema field must exist); every command
that takes the group gets it.
"""

from __future__ import annotations

import functools
import inspect
import json
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from atelier.errors import InputError
from atelier.grid import NSTGridParams, parse_list, validate
from atelier.schemas import FILTER_HELP, VIDEO_FILTERS, NSTParams, VideoParams

Model = TypeVar("Model", bound=BaseModel)
Command = TypeVar("Command", bound=Callable[..., Any])


def split_list(text: str) -> tuple[str, ...]:
    """`a, b,c` → ("a", "b", "c"): list parameters are written comma-separated."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def grid_axis(kind: type[int] | type[float]) -> Callable[[str], Any]:
    """The parser of a grid axis (see atelier.grid): `1e2,1e3` → [100.0, 1000.0], every
    combination is run; `100` → 100.0, a single value. Raises InputError."""

    def parse(text: str) -> Any:
        values = parse_list(text, kind, "")  # the message's flag: added by ParamOption.value
        return values if len(values) > 1 else values[0]

    return parse


@dataclass(frozen=True)
class ParamOption:
    """One command-line option that sets one field of a job's parameter schema."""

    field: str
    help: str
    kind: type = str  # the type Click parses: str, int, float or bool
    flags: tuple[str, ...] = ()  # default: --field-name
    parse: Callable[[Any], Any] | None = None  # applied to the parsed value, e.g. split_list

    @property
    def names(self) -> tuple[str, ...]:
        return self.flags or (f"--{self.field.replace('_', '-')}",)

    @property
    def flag(self) -> str:
        """The long flag, as error messages name it."""
        return next(n.split("/")[0] for n in self.names if n.startswith("--"))

    def parameter(self, panel: str) -> inspect.Parameter:
        option = typer.Option(
            *self.names, help=self.help, rich_help_panel=panel, show_default=False
        )
        return inspect.Parameter(
            self.field,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[self.kind | None, option],
        )

    def value(self, raw: Any) -> Any:
        """The schema value of what Click parsed; None (and an unset on-only flag) is unset."""
        if raw is None or (raw is False and self.kind is bool and "/" not in self.names[0]):
            return None
        if self.parse is None:
            return raw
        try:
            return self.parse(raw)
        except InputError as error:
            raise typer.BadParameter(str(error).strip(), param_hint=f"'{self.flag}'") from error


@dataclass(frozen=True)
class ParamGroup:
    """The options of one job schema, shown under one heading of --help."""

    name: str
    model: type[BaseModel]
    panel: str
    options: tuple[ParamOption, ...]

    def flag_of(self, name: str) -> str | None:
        return next((o.flag for o in self.options if o.field == name), None)


NST = ParamGroup(
    "nst",
    NSTParams,
    "Style transfer options",
    (
        ParamOption(
            "size", "Longest side of the output (default 256). Grid: 256,512.", parse=grid_axis(int)
        ),
        ParamOption(
            "iterations",
            "Optimizer steps in total, over all scales (default 300). Grid: a list.",
            parse=grid_axis(int),
        ),
        ParamOption(
            "content_weight",
            "Content loss weight (5). Grid: a list, e.g. 1,5,25.",
            parse=grid_axis(float),
        ),
        ParamOption(
            "style_weight",
            "Style loss weight (100). Grid: a list, e.g. 1e2,1e3.",
            parse=grid_axis(float),
        ),
        ParamOption(
            "tv_weight", "Total-variation weight (1e-3). Grid: a list.", parse=grid_axis(float)
        ),
        ParamOption("optimizer", "lbfgs (default) or adam."),
        ParamOption("learning_rate", "Adam step in grey levels (10); L-BFGS: first step.", float),
        ParamOption(
            "learning_rate_decay",
            "Adam: the step at each scale's end as a fraction of its start, falling "
            "geometrically (1).",
            float,
        ),
        ParamOption(
            "init", "Start from content (default), noise, style or fast (the fast result)."
        ),
        ParamOption("seed", "Random seed (0).", int),
        ParamOption("preserve_colors", "Keep the content's colours.", bool, ("--preserve-colors",)),
        ParamOption("style_blend", "Blend all styles into one, e.g. 0.7,0.3.", parse=split_list),
        ParamOption(
            "style_scale",
            "Style size relative to --size (1). Grid: a list.",
            parse=grid_axis(float),
        ),
        ParamOption("scales", "Coarse-to-fine scales (1).", int),
        ParamOption(
            "average",
            "Return the moving average of the iterates, this decay per step (0).",
            float,
        ),
        ParamOption("preview_every", "Save a preview every N steps.", int),
        ParamOption("weights", "imagenet, a VGG19 .h5 path, or none (default: settings)."),
        ParamOption(
            "engine", "gatys (default: optimisation, VGG19) or fast (Magenta network, CPU)."
        ),
        ParamOption("strength", "Fast engine: 0 (content's style) to 1 (default).", float),
    ),
)

VIDEO = ParamGroup(
    "video",
    VideoParams,
    "Video options",
    (
        ParamOption(
            "filter",
            f"Face filter: {', '.join(VIDEO_FILTERS)} (default pixelate; stylize: old name of"
            f" watercolor). {FILTER_HELP}. On a board: its first filtered panel; not together"
            " with --filters.",
            flags=("--filter", "-f"),
        ),
        ParamOption(
            "layout",
            "RxC board: R rows by C columns of panels, 1 to 4 each (1x2, 1x3, 2x2, 3x1, 2x3, ...),"
            " the original first, then one filter a panel; 1x1 (default): the filtered video.",
        ),
        ParamOption(
            "filters",
            "Board panels after the original, R*C-1 of them, e.g. blur,cartoon,sketch for 2x2"
            " (default: --filter, then cartoon, sketch, blur, ...).",
            parse=split_list,
        ),
        ParamOption(
            "detector",
            "centerface (default: the CenterFace network on the whole frame, shrunk to at most"
            " 640 px wide; faces from about 16 px at that width, turned, tilted and under hat"
            " brims too, one network run per frame), blazeface (MediaPipe's BlazeFace on the"
            " frame and on 192 px tiles of it: several runs per frame, misses more turned faces"
            " and boxes more non-faces), haar (OpenCV cascade: upright frontal faces of 10%+ of"
            " the frame height only) or dnn (YuNet; needs ATELIER_FACE_MODEL).",
        ),
        ParamOption(
            "detect_every",
            "Search whole frames every N frames (2): the most frames skipped while faces keep"
            " still. Where a face moves fast, is lost or appears between two such frames, the"
            " frames between are searched too (around those faces); masks in between grow with"
            " the face's speed. Larger N: faster in quiet scenes.",
            int,
        ),
        ParamOption("mask", "box (default) or ellipse."),
        ParamOption("padding", "Grow each face box by this share.", float),
        ParamOption(
            "keep_audio",
            "Copy the input's audio (default) or not.",
            bool,
            ("--keep-audio/--no-audio",),
        ),
        ParamOption("segment_seconds", "Split into segments of S seconds run in parallel.", float),
        ParamOption(
            "profile", "Haar only: also run the profile-face cascade.", bool, ("--profile",)
        ),
        ParamOption(
            "painting_frames", "Paint whole frames, not only faces.", bool, ("--painting-frames",)
        ),
        ParamOption(
            "require_faces",
            "Fail the job, instead of finishing it with a warning, when no face is found or a"
            " face is lost inside the picture and not found again.",
            bool,
            ("--require-faces",),
        ),
    ),
)


def _is_list_field(model: type[BaseModel], name: str) -> bool:
    """True for tuple-typed fields (possibly optional): those take comma-separated values."""
    info = model.model_fields.get(name)
    if info is None:
        return False
    annotation = info.annotation
    candidates = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    return any(typing.get_origin(c) is tuple for c in candidates)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


@dataclass
class GivenParams:
    """The parameter options a user typed, by group, ready to validate with the group's schema."""

    values: dict[str, dict[str, Any]]
    groups: dict[str, ParamGroup]
    # `submit -p key=value` pairs: field → value, with where it came from for messages.
    extra: dict[str, Any] = field(default_factory=dict)
    # Fields a command sets from an option of its own (e.g. `video --style FILE` sets `style`
    # to the file's sha256): field → that option, for messages.
    flags: dict[str, str] = field(default_factory=dict)

    def given(self, group: ParamGroup) -> list[str]:
        """Flags of `group` the user typed (e.g. to refuse NST options for a video)."""
        return [group.flag_of(name) or name for name in self.values.get(group.name, {})]

    def with_pairs(self, pairs: Sequence[str], model: type[BaseModel]) -> GivenParams:
        """Add `key=value` pairs: values read as JSON when they parse, list fields split on
        commas (`filters=blur,cartoon,sketch` and `filters=["blur","cartoon","sketch"]` agree)."""
        extra = dict(self.extra)
        for item in pairs:
            key, sep, raw = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or not key:
                raise typer.BadParameter(f"takes key=value, not {item!r}", param_hint="'--param'")
            try:
                value: Any = json.loads(raw)
            except ValueError:
                value = raw
            if _is_list_field(model, key):
                if isinstance(value, str):
                    value = split_list(value)
                elif not isinstance(value, list):
                    value = (value,)
            extra[key] = value
        return replace(self, extra=extra)

    def with_values(
        self, group: ParamGroup, values: dict[str, Any], flags: dict[str, str]
    ) -> GivenParams:
        """Add values a command computed from its own options, named by `flags` in errors."""
        merged = {**self.values, group.name: {**self.values.get(group.name, {}), **values}}
        return replace(self, values=merged, flags={**self.flags, **flags})

    def build_grid(self, group: ParamGroup) -> BaseModel:
        """Validate a group whose list values are grid axes (NST; see atelier.grid): each value
        once with the group's schema, so problems name the option typed, then the whole as an
        `NSTGridParams`, the shape the HTTP API takes. `atelier.grid.combinations` expands it."""
        values = {**self.values.get(group.name, {}), **self.extra}
        try:
            validate(values)
            return NSTGridParams.model_validate(values)
        except ValidationError as error:
            raise _bad_parameter(error, group, set(self.extra), self.flags) from error
        except InputError as error:
            raise typer.BadParameter(str(error), param_hint="'--param'") from error

    def build(self, group: ParamGroup) -> Any:
        """Validate with the group's schema: unset options take the schema's defaults, and every
        problem names the option the user typed."""
        values = {**self.values.get(group.name, {}), **self.extra}
        try:
            return group.model.model_validate(values)
        except ValidationError as error:
            raise _bad_parameter(error, group, set(self.extra), self.flags) from error


def _bad_parameter(
    error: ValidationError, group: ParamGroup, pairs: set[str], flags: dict[str, str]
) -> Exception:
    hints: list[str] = []
    problems: list[str] = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else ""
        flag = (flags.get(name) or group.flag_of(name)) if name not in pairs else None
        hint = flag or (f"--param {name}" if name else "--param")
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = f"no such parameter; known: {', '.join(group.model.model_fields)}"
        if len(item["loc"]) > 1:
            message = f"item {item['loc'][1]}: {message}"
        hints.append(hint)
        problems.append(message)
    if len(problems) == 1:
        return typer.BadParameter(problems[0], param_hint=f"'{hints[0]}'")
    listed = "; ".join(f"{h}: {p}" for h, p in zip(hints, problems, strict=True))
    return typer.BadParameter(listed, param_hint=list(dict.fromkeys(hints)))


def with_params(*groups: ParamGroup) -> Callable[[Command], Command]:
    """Add the options of `groups` to a Typer command; it receives them as `given: GivenParams`."""

    def decorate(func: Command) -> Command:
        signature = inspect.signature(func)
        hints = typing.get_type_hints(func, include_extras=True)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in signature.parameters.values()
            if p.name != "given"
        ]
        added = [o.parameter(g.panel) for g in groups for o in g.options]
        clash = {p.name for p in own} & {p.name for p in added}
        if clash or len({p.name for p in added}) != len(added):
            raise TypeError(f"{func.__name__}: option names clash: {sorted(clash)}")

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {
                g.name: {
                    o.field: v
                    for o in g.options
                    if (v := o.value(kwargs.pop(o.field, None))) is not None
                }
                for g in groups
            }
            given = GivenParams(values, {g.name: g for g in groups})
            return func(*args, given=given, **kwargs)

        command.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
        return command  # type: ignore[return-value]

    return decorate
