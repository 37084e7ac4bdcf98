"""Job parameter schemas shared by every producer and worker.

The same pydantic models validate a CLI flag, an HTTP body and the parameters a worker reads
back from the database, so a bad parameter is refused once, at the door, with the same words
everywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

DEFAULT_STYLE_LAYERS: tuple[str, ...] = (
    "block1_conv1",
    "block2_conv1",
    "block3_conv1",
    "block4_conv1",
    "block5_conv1",
)
VGG19_CONV_LAYERS: frozenset[str] = frozenset(
    f"block{b}_conv{c}"
    for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
    for c in range(1, n + 1)
)
MAX_STYLE_LAYERS = len(VGG19_CONV_LAYERS)
"""Most style layers (and layer weights) a job may name: every VGG19 convolution once."""
MAX_BLEND_STYLES = 16
"""Most style images one blended column may mix (`style_blend`): each is a style target to
compute, so the bound keeps a job's work bounded."""
MAX_BOARD_FILTERS = 4 * 4 - 1
"""Most filtered panels of a video board (4x4: the original and fifteen filters)."""


class _Strict(BaseModel):
    """Unknown keys are an error: a typo in a parameter must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


FAST_ENGINE_FIELDS = frozenset({"engine", "size", "style_blend", "strength", "preserve_colors"})
"""The parameters the fast engine reads; the others cannot change its result."""


class NSTParams(_Strict):
    """Options of one style-transfer job (jcjohnson/neural-style names where they exist).

    `engine` picks Gatys optimisation (VGG19) or the fast feed-forward Magenta network; the fast
    engine uses `size`, `style_blend`, `strength` and `preserve_colors` and ignores the
    optimisation options."""

    engine: Literal["gatys", "fast"] = Field(
        "gatys", description="`gatys` (optimisation, VGG19) or `fast` (Magenta network, CPU)."
    )
    strength: float = Field(
        1.0,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Fast engine: 0 keeps the content's own style, 1 takes the painting's.",
    )
    size: int = Field(256, ge=16, le=4096, description="Longest side of the output, in pixels.")
    iterations: int = Field(
        300, ge=1, le=20000, description="Optimizer steps in total, across all scales."
    )
    # Floats refuse NaN and infinity outright: NaN fails every bound check, which would be
    # reported as a misleading "should be less than or equal to ..." instead.
    # Weights and layers are jcjohnson/neural-style's defaults (see README, "NST defaults").
    content_weight: float = Field(5.0, ge=0, le=1e12, allow_inf_nan=False)
    style_weight: float = Field(100.0, ge=0, le=1e12, allow_inf_nan=False)
    tv_weight: float = Field(
        1e-3,
        ge=0,
        le=1e12,
        allow_inf_nan=False,
        description="Total-variation weight; the same smoothing at every size.",
    )
    content_layer: str = "block4_conv2"
    style_layers: tuple[str, ...] = Field(
        DEFAULT_STYLE_LAYERS, min_length=1, max_length=MAX_STYLE_LAYERS
    )
    style_layer_weights: tuple[float, ...] | None = Field(
        None,
        max_length=MAX_STYLE_LAYERS,
        description="One weight per style layer; equal weights when omitted.",
    )
    style_blend: tuple[float, ...] | None = Field(
        None,
        max_length=MAX_BLEND_STYLES,
        description="One weight per style image (at most 16 are blended); equal weights when "
        "omitted.",
    )
    style_scale: float = Field(
        1.0, gt=0, le=4, allow_inf_nan=False, description="Style image size relative to `size`."
    )
    init: Literal["content", "noise", "style", "fast"] = Field(
        "content", description="Gatys start image; `fast` starts from the fast engine's result."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    optimizer: Literal["adam", "lbfgs"] = Field(
        "lbfgs",
        description="`lbfgs` (neural-style's; fastest to the benchmark's target on the ImageNet "
        "weights, see README) or `adam`.",
    )
    learning_rate: float = Field(
        10.0,
        gt=0,
        le=1000,
        allow_inf_nan=False,
        description="Adam step in grey levels (0-255); L-BFGS: its first step.",
    )
    learning_rate_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Adam: the learning rate at each scale's last step as a fraction of its "
        "first, falling geometrically (1: constant).",
    )
    preserve_colors: bool = False
    scales: int = Field(1, ge=1, le=5, description="Coarse-to-fine schedule: number of scales.")
    average: float = Field(
        0.0,
        ge=0,
        lt=1,
        allow_inf_nan=False,
        description="Return an exponential moving average of the image with this decay per "
        "step (0: the last iterate).",
    )
    preview_every: int = Field(0, ge=0, description="Save a preview every N iterations (0: never).")
    weights: str | None = Field(
        None,
        description="`imagenet`, a path to a VGG19 .h5 file, or `none`; default from settings.",
    )

    @field_validator("content_layer")
    @classmethod
    def _known_content_layer(cls, value: str) -> str:
        if value not in VGG19_CONV_LAYERS:
            raise ValueError(
                f"unknown VGG19 layer {value!r}; use one of block1_conv1 .. block5_conv4"
            )
        return value

    @field_validator("style_layers")
    @classmethod
    def _known_style_layers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in VGG19_CONV_LAYERS]
        if unknown or not value:
            raise ValueError(f"style layers must be VGG19 conv layers, got {list(value)!r}")
        return value

    @field_validator("style_layer_weights", "style_blend")
    @classmethod
    def _finite_positive(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None and any(not math.isfinite(w) or w < 0 for w in value):
            raise ValueError("weights must be finite and non-negative")
        if value is not None and not any(w > 0 for w in value):
            raise ValueError("at least one weight must be positive")
        return value

    @field_validator("style_layer_weights")
    @classmethod
    def _one_weight_per_layer(
        cls, value: tuple[float, ...] | None, info: ValidationInfo
    ) -> tuple[float, ...] | None:
        # A field validator (not a model one) so the error names this field; `style_layers` is
        # declared first, so it is in `info.data` when it was valid.
        layers = info.data.get("style_layers")
        if value is not None and layers is not None and len(value) != len(layers):
            raise ValueError(f"needs one weight per style layer: {len(layers)}, not {len(value)}")
        return value

    def fingerprint(self, inputs: list[str]) -> str:
        """A stable key for (inputs, parameters): equal keys mean an identical result."""
        blob = json.dumps(
            {"inputs": inputs, "params": self.model_dump(mode="json")}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()


VideoFilter = Literal[
    "none",
    "blur",
    "pixelate",
    "solid",
    "cartoon",
    "sketch",
    "edges",
    "colormap",
    "watercolor",
    "painting",
]
VIDEO_FILTERS: tuple[str, ...] = get_args(VideoFilter)
ANONYMISING_FILTERS: tuple[str, ...] = ("blur", "pixelate", "solid")
"""Filters that make a face unrecognisable (a coarse blur, a mosaic of about ten cells across
the face, a black box). The others are effects: they keep a face recognisable."""
EFFECT_FILTERS: tuple[str, ...] = tuple(f for f in VIDEO_FILTERS if f not in ANONYMISING_FILTERS)
BOARD_DEFAULTS: tuple[str, ...] = (
    "cartoon",
    "sketch",
    "blur",
    "edges",
    "colormap",
    "watercolor",
    "solid",
    "none",
)
"""Board panels after the first filtered one, in order, when `filters` is not given."""
LAYOUT = r"^[1-4]x[1-4]$"
FILTER_HELP = (
    f"{', '.join(ANONYMISING_FILTERS)} anonymise (the face cannot be recognised); "
    f"{', '.join(EFFECT_FILTERS)} are effects that keep a face recognisable"
)
DEPRECATED_FILTERS = {"stylize": "watercolor"}
"""Old filter names still accepted, and the filter they now mean (`stylize` was OpenCV's
watercolour-like `cv2.stylization`, not neural style transfer)."""
SHA256 = r"^[0-9a-f]{64}$"


def _renamed(value: object) -> object:
    if isinstance(value, str):
        return DEPRECATED_FILTERS.get(value, value)
    if isinstance(value, list | tuple):
        return type(value)(DEPRECATED_FILTERS.get(v, v) if isinstance(v, str) else v for v in value)
    return value


def board_shape(layout: str) -> tuple[int, int]:
    """(rows, columns) of a layout "RxC"."""
    rows, _, cols = layout.partition("x")
    return int(rows), int(cols)


def extra_panels(layout: str) -> int:
    """How many filters a layout takes in `filters`: every panel but the original (none on 1x1,
    whose one panel is `filter`)."""
    rows, cols = board_shape(layout)
    return rows * cols - 1 if rows * cols > 1 else 0


def _panels(filter_: str | None, layout: str, filters: tuple[str, ...] | None) -> tuple[str, ...]:
    filter_ = filter_ or "pixelate"
    rows, cols = board_shape(layout)
    if rows * cols == 1:
        return (filter_,)
    others = [f for f in BOARD_DEFAULTS if f != filter_]
    defaults = (filter_, *(others * rows * cols)[: rows * cols - 2])
    return ("original", *(filters or defaults))


class VideoParams(_Strict):
    """Options of one video face-filter job."""

    filter: VideoFilter | None = Field(
        None,
        description="Filter of every face (default pixelate, which anonymises); on a board, the "
        f"filter of its first filtered panel when `filters` is not given. {FILTER_HELP}.",
    )
    layout: str = Field(
        "1x1",
        pattern=LAYOUT,
        description="`RxC`: a board of R rows by C columns of panels (1 to 4 each), the original "
        "first, then one filter a panel, left to right, top to bottom; 1x1: the filtered video "
        "alone.",
    )
    filters: tuple[VideoFilter, ...] | None = Field(
        None,
        max_length=MAX_BOARD_FILTERS,
        description="Filters of the board's panels after the original, R*C-1 of them (default: "
        f"`filter`, then {', '.join(BOARD_DEFAULTS[:3])}, ...). {FILTER_HELP}.",
    )
    detector: Literal["centerface", "blazeface", "haar", "dnn"] = "centerface"
    detect_every: int = Field(
        2,
        ge=1,
        le=300,
        description="Run the detector every N frames; the tracker interpolates between.",
    )
    mask: Literal["box", "ellipse"] = "box"
    padding: float = Field(
        0.15, ge=0, le=2, allow_inf_nan=False, description="ROI grows by this share of its size."
    )
    keep_audio: bool = True
    segment_seconds: float = Field(
        0, ge=0, le=3600, allow_inf_nan=False, description="Split into segments (0: never)."
    )
    profile: bool = Field(False, description="Haar only: also run the profile-face cascade.")
    require_faces: bool = Field(
        False,
        description="Fail the job, instead of finishing it with a warning, when no face is "
        "found in the video or a face is lost inside the picture and not found again.",
    )
    style: str | None = Field(
        None,
        pattern=SHA256,
        validate_default=True,
        description="`painting` filter: sha256 of the uploaded painting whose style it applies.",
    )
    painting_frames: bool = Field(
        False, description="`painting` filter: paint whole frames instead of face regions."
    )

    @field_validator("layout", mode="before")
    @classmethod
    def _layout_is_rows_by_columns(cls, value: object) -> object:
        if isinstance(value, str) and not re.match(LAYOUT, value):
            raise ValueError(
                f"a layout is RxC, 1 to 4 rows by 1 to 4 columns (1x2, 1x3, 2x2, 3x1, ...), "
                f"not {value!r}"
            )
        return value

    @field_validator("filter", "filters", mode="before")
    @classmethod
    def _deprecated_names(cls, value: object) -> object:
        return _renamed(value)

    @field_validator("filters")
    @classmethod
    def _panels_fit_layout(
        cls, value: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        # A field validator so the error names `filters`; `filter` and `layout` come before it.
        layout = info.data.get("layout")
        need = None if layout is None else extra_panels(layout)
        if value is not None and need is not None and len(value) != need:
            raise ValueError(f"layout {layout} takes {need} extra filter(s), not {len(value)}")
        if value is not None and info.data.get("filter") is not None:
            raise ValueError(
                f"`filter` and `filters` both name the panels of the {layout} board: "
                "list every filtered panel in `filters`, or give `filter` alone for the first "
                f"one (the others then default to {', '.join(BOARD_DEFAULTS[:2])}, ...)"
            )
        return value

    @field_validator("profile")
    @classmethod
    def _profile_needs_haar(cls, value: bool, info: ValidationInfo) -> bool:
        # On `profile` (`detector` comes before it), so the error names the option to drop.
        detector = info.data.get("detector")
        if value and detector is not None and detector != "haar":
            raise ValueError(
                "`profile` adds Haar's profile-face cascade and applies to the haar detector "
                f"only; {detector} finds turned faces without it"
            )
        return value

    @field_validator("style")
    @classmethod
    def _painting_needs_style(cls, value: str | None, info: ValidationInfo) -> str | None:
        # On `style` (validated even when left out), so the error names the field to set.
        data = info.data
        panels = _panels(data.get("filter", ""), data.get("layout", "1x1"), data.get("filters"))
        if value is None and "painting" in panels:
            raise ValueError("the painting filter needs a painting: `style` (an image asset)")
        return value

    def panel_filters(self) -> tuple[str, ...]:
        """The filter of every panel, left to right, top to bottom ("original" first on boards)."""
        return _panels(self.filter, self.layout, self.filters)

    def fingerprint(self, inputs: list[str]) -> str:
        """A stable key for (inputs, parameters): equal keys mean an identical result."""
        blob = json.dumps(
            {"inputs": inputs, "params": self.model_dump(mode="json")}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()
