"""Parameter grids: lists of values on some NST parameters, expanded into every combination.

A grid is contents x styles x parameter combinations. It is expanded here, the same way for the
CLI (`--style-weight 1e2,1e3`), the HTTP API (`"style_weight": [100, 1000]`) and inboxes, and
each combination is an ordinary `NSTParams`: every cell is an ordinary job with its own
fingerprint, so an identical earlier cell is reused exactly as a single job is. Output names and
sheet labels name only the axes that vary (`tubingen__starry__sw100_ss0.5.png`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from atelier.errors import InputError
from atelier.schemas import NSTParams

GRID_AXES: dict[str, str] = {
    "style_weight": "sw",
    "content_weight": "cw",
    "tv_weight": "tv",
    "style_scale": "ss",
    "size": "px",
    "iterations": "it",
}
"""The parameters that take lists, in naming order, with their short names in output names."""
MAX_AXIS_VALUES = 1000
"""Most values one grid axis may list (a grid makes at most ATELIER_MAX_GRID jobs anyway)."""


def parse_list(text: str, kind: type[float] | type[int], flag: str) -> list[Any]:
    """`"1e2,1e3"` -> [100.0, 1000.0]; duplicates dropped, order kept."""
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise InputError(
            f"{flag} takes a number or comma-separated numbers, not {text!r}"
        ) from error
    if not values:
        raise InputError(f"{flag} needs at least one value")
    return list(dict.fromkeys(values))


def _axes(values: Mapping[str, Any]) -> dict[str, list[Any]]:
    axes = {
        name: list(dict.fromkeys(values[name]))
        for name in GRID_AXES
        if isinstance(values.get(name), list | tuple)
    }
    for name, options in axes.items():
        if not options:
            raise InputError(f"{name}: a list of values needs at least one value")
    return axes


def count(values: Mapping[str, Any]) -> int:
    """How many combinations `values` makes, without making them."""
    return math.prod(len(options) for options in _axes(values).values())


def first(values: Mapping[str, Any]) -> NSTParams:
    """The grid's first combination."""
    return NSTParams.model_validate(
        {**values, **{name: options[0] for name, options in _axes(values).items()}}
    )


def validate(values: Mapping[str, Any]) -> None:
    """Raise pydantic's ValidationError (or InputError) if any value of the grid is invalid;
    each value is checked once, not each combination."""
    axes = _axes(values)
    first = {name: options[0] for name, options in axes.items()}
    NSTParams.model_validate({**values, **first})
    for name, options in axes.items():
        for option in options[1:]:
            NSTParams.model_validate({**values, **first, name: option})


def combinations(values: Mapping[str, Any], limit: int | None = None) -> list[NSTParams]:
    """Every combination of the list-valued grid axes in `values` (the others as they are),
    validated; the last axis varies fastest. More than `limit` combinations is an InputError,
    raised before any is made."""
    axes = _axes(values)
    total = count(values)
    if limit is not None and total > limit:
        raise InputError(f"{total} parameter combinations; the limit is {limit} (ATELIER_MAX_GRID)")
    combos = list(itertools.product(*axes.values())) if axes else [()]
    return [NSTParams.model_validate({**values, **dict(zip(axes, c, strict=True))}) for c in combos]


def varying(params: Sequence[Mapping[str, Any]]) -> list[str]:
    """The grid axes whose value differs between `params` (dumped NSTParams), in naming order."""
    return [name for name in GRID_AXES if len({p.get(name) for p in params}) > 1]


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def cell_label(params: Mapping[str, Any], axes: Sequence[str], sep: str = "_") -> str:
    """`sw100_ss0.5` for the varying `axes` of one cell's parameters ('' when none vary)."""
    return sep.join(f"{GRID_AXES[name]}{_number(params.get(name))}" for name in axes)


def check_size(contents: int, columns: int, combinations: int, max_grid: int) -> int:
    """The number of jobs; InputError when it is over `max_grid` (ATELIER_MAX_GRID)."""
    cells = contents * columns * combinations
    if cells > max_grid:
        raise InputError(
            f"this grid makes {cells} jobs ({contents} content(s) x {columns} style column(s) x "
            f"{combinations} parameter combination(s)); the limit is {max_grid} "
            "(ATELIER_MAX_GRID): use fewer values or split it into several batches"
        )
    return cells


def _grid_model() -> type[BaseModel]:
    """`NSTParams` with each grid axis also taking a list (the HTTP API's batch parameters)."""
    fields: dict[str, Any] = {}
    for name, info in NSTParams.model_fields.items():
        if name in GRID_AXES:
            kind = info.annotation
            described = f"{info.description or name.replace('_', ' ')} A list runs every value."
            values = Annotated[list[kind], Field(min_length=1, max_length=MAX_AXIS_VALUES)]
            fields[name] = (kind | values, Field(info.default, description=described))
        else:
            fields[name] = (info.annotation, info)
    return create_model(
        "NSTGridParams", __config__=ConfigDict(extra="forbid", frozen=True), **fields
    )


NSTGridParams = _grid_model()
"""Validates the shape of grid parameters; `combinations` validates every value."""
