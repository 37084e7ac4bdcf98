"""The bad inputs of test_badinput.py, case by case: each row names an input, how it is made,
and what each way in (the HTTP API, the CLI) must make of it. The accepted images come last, so
the last cases prove that the worker still does real work after every bad input before them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from tests.badinput import makers
from tests.conftest import TEST_DATA

TEST_CLIP = TEST_DATA / "video" / "chaplin.mp4"


class Outcome(Enum):
    REFUSED = "refused at the door"
    FAILED = "accepted, its job fails with the reason"
    SUCCEEDED = "accepted, its job succeeds"
    ACCEPTED = "accepted and stored safely"


@dataclass(frozen=True)
class Expect:
    outcome: Outcome
    code: int | None = None  # HTTP status, or the command's exit code
    phrase: str = ""  # must appear in the error message (response, job or command output)


def refused(code: int, phrase: str) -> Expect:
    return Expect(Outcome.REFUSED, code, phrase)


def failed(phrase: str) -> Expect:
    return Expect(Outcome.FAILED, None, phrase)


SUCCEEDS = Expect(Outcome.SUCCEEDED)
ACCEPTED = Expect(Outcome.ACCEPTED)


class Kind(Enum):
    IMAGE = "image upload / `atelier stylize FILE`"
    PARAMS = "grid parameters / `atelier stylize` flags"
    VIDEO = "video upload + job / `atelier video FILE`"
    TOKEN = "`atelier api` with a token / `atelier submit`"
    NAME = "names and labels"


@dataclass(frozen=True)
class Case:
    name: str
    kind: Kind
    api: Expect | None
    cli: Expect | None
    make: makers.Maker | None = None
    params: dict[str, object] = field(default_factory=dict)  # merged into the API body's params
    body: dict[str, object] = field(default_factory=dict)  # merged into the API body
    flags: tuple[str, ...] = ()  # added to the CLI command
    token: str | None = None  # the bearer token sent (TOKEN cases)
    filename: str | None = None  # the upload's file name, sent byte for byte (NAME cases)
    urls: tuple[str, ...] = ()  # fetched instead of uploading ({content}: a stored asset's sha)


def _from_clip(build: Callable[[Path], makers.Maker]) -> makers.Maker:
    return build(TEST_CLIP)


const = makers.constant
BOMB = "refused as a possible decompression bomb"
NOT_SUPPORTED = "not a supported file"  # the API's 415
NOT_AN_IMAGE = "not an image"  # the CLI's check of a local file

CASES: list[Case] = [
    # --- images refused at the door -----------------------------------------------------------
    Case("corrupt JPEG", Kind.IMAGE, refused(422, "corrupt"), refused(2, "corrupt"),
         const("corrupt.jpg", makers.corrupt_jpeg)),
    Case("truncated JPEG", Kind.IMAGE, refused(422, "truncated"), refused(2, "truncated"),
         const("cut.jpg", makers.truncated_jpeg)),
    Case("PNG decompression bomb, 20000x20000 valid 1-bit", Kind.IMAGE, refused(422, BOMB),
         refused(2, BOMB), const("bomb.png", makers.png_bomb)),
    Case("JPEG claiming 20000x20000", Kind.IMAGE, refused(422, "400 MP, limit is 64 MP"),
         refused(2, "400 MP, limit is 64 MP"),
         const("huge.jpg", lambda: makers.jpeg_claiming(20_000, 20_000))),
    Case("GIF over the pixel limit, under PIL's own bomb limit", Kind.IMAGE,
         refused(422, "9000x9000 = 81 MP, limit is 64 MP"), refused(2, "limit is 64 MP"),
         const("wide.gif", lambda: makers.gif_claiming(9000, 9000))),
    Case("0-byte .jpg", Kind.IMAGE, refused(415, NOT_SUPPORTED), refused(2, "file is empty"),
         const("empty.jpg", b"")),
    Case("text renamed .jpg", Kind.IMAGE, refused(415, NOT_SUPPORTED), refused(2, NOT_AN_IMAGE),
         const("notes.jpg", makers.TEXT)),
    Case("PostScript renamed .jpg (would start Ghostscript)", Kind.IMAGE,
         refused(415, NOT_SUPPORTED), refused(2, NOT_AN_IMAGE),
         const("drawing.jpg", makers.POSTSCRIPT)),
    Case("HEIC renamed .jpg", Kind.IMAGE, refused(415, NOT_SUPPORTED), refused(2, NOT_AN_IMAGE),
         const("phone.jpg", makers.HEIC)),
    # --- parameters refused before any job ------------------------------------------------------
    Case("negative iterations", Kind.PARAMS, refused(422, "iterations: Input should be greater"),
         refused(2, "'--iterations': Input should be greater"),
         params={"iterations": -5}, flags=("--iterations", "-5")),
    Case("huge iterations", Kind.PARAMS, refused(422, "less than or equal to 20000"),
         refused(2, "less than or equal to 20000"),
         params={"iterations": 10**9}, flags=("--iterations", str(10**9))),
    Case("size below VGG's minimum", Kind.PARAMS, refused(422, "greater than or equal to 16"),
         refused(2, "'--size': Input should be greater than or equal to 16"),
         params={"size": 8}, flags=("--size", "8")),
    Case("NaN style weight", Kind.PARAMS, refused(422, "style_weight: Input should be a finite"),
         refused(2, "'--style-weight': Input should be a finite number"),
         params={"style_weight": float("nan")}, flags=("--style-weight", "nan")),
    Case("infinite content weight", Kind.PARAMS, refused(422, "content_weight: Input should be a"
         " finite number"), refused(2, "'--content-weight': Input should be a finite number"),
         params={"content_weight": float("inf")}, flags=("--content-weight", "inf")),
    Case("NaN style blend", Kind.PARAMS, refused(422, "weights must be finite"),
         refused(2, "weights must be finite"),
         params={"style_blend": [float("nan")]}, flags=("--style-blend", "nan")),
    Case("style blend of the wrong length", Kind.PARAMS,
         refused(422, "style_blend has 2 weights for 1 styles"),
         refused(2, "style_blend has 2 weights for 1 styles"),
         params={"style_blend": [0.7, 0.3]}, flags=("--style-blend", "0.7,0.3")),
    Case("unknown style id / missing style file", Kind.PARAMS,
         refused(422, "unknown style asset(s): 000000000000"), refused(2, "does not exist"),
         body={"styles": ["0" * 64]}, flags=("--style", "/nonexistent/style.jpg")),
    Case("path traversal as a style id", Kind.PARAMS,
         refused(422, "styles.0: String should match pattern"), None,
         body={"styles": ["../../../etc/passwd"]}),
    Case("weights file path over HTTP", Kind.PARAMS, refused(422, "weights may be `imagenet`"),
         None, params={"weights": "/etc/passwd"}),
    # --- videos ---------------------------------------------------------------------------------
    Case("0-byte video", Kind.VIDEO, refused(415, NOT_SUPPORTED), refused(2, "is an empty file"),
         const("empty.mp4", b"")),
    Case("text renamed .mp4", Kind.VIDEO, refused(415, NOT_SUPPORTED),
         refused(2, "not a video Atelier can read"), const("notes.mp4", makers.TEXT)),
    Case("audio only, no video stream", Kind.VIDEO, failed("no video stream in 'tone.m4a'"),
         failed("(it holds only audio)"), makers.audio_only),
    Case("truncated mp4, index lost", Kind.VIDEO, failed("truncated or unfinished video"),
         failed("(its index is missing): 'cut.mp4'"), _from_clip(makers.truncated_mp4)),
    Case("truncated mp4, index in front", Kind.VIDEO, failed("truncated video (the file ends"),
         failed("truncated video (the file ends"), _from_clip(makers.truncated_faststart_mp4)),
    Case("oversize video", Kind.VIDEO, refused(413, "larger than 524288 bytes"),
         refused(2, "larger than the limit of 524288 bytes"),
         _from_clip(lambda clip: makers.copy_of(clip, "long.mp4"))),
    Case("unknown video id / missing file", Kind.VIDEO,
         refused(422, "unknown video asset(s): 000000000000"), refused(2, "is not a file"),
         body={"video": "0" * 64}),
    Case("an image sent as the video", Kind.VIDEO, refused(422, "are not videos"), None,
         const("still.png", lambda: makers.noise_image(11))),
    # --- tokens (a real `atelier api` process requiring one) -----------------------------------
    Case("wrong token", Kind.TOKEN, refused(403, "the bearer token is wrong"),
         refused(2, "403 the bearer token is wrong"), token="not-the-token"),
    Case("no token", Kind.TOKEN, refused(401, "needs a bearer token"),
         refused(2, "401 this API needs a bearer token")),
    # --- names and labels -----------------------------------------------------------------------
    Case("NUL in the upload label", Kind.NAME, refused(422, "NUL"), None,
         const("label.png", lambda: makers.noise_image(12)), body={"label": "a\x00b"}),
    Case("NUL in a batch label", Kind.NAME, refused(422, "NUL"), None,
         body={"label": "grid\x00"}),
    Case("NUL in a multipart file name", Kind.NAME, ACCEPTED, None,
         const("nul.png", lambda: makers.noise_image(13)), filename="a\x00b.png"),
    Case("path traversal in an asset URL", Kind.NAME, refused(404, "Not Found"), None,
         urls=("/v1/assets/..%2F..%2F..%2Fetc%2Fpasswd/content", "/v1/assets/../../pyproject.toml",
               "/static/..%2F..%2Fpyproject.toml",
               "/v1/assets/{content}/..%2F..%2F..%2Fpyproject.toml")),
    # --- accepted: unusual but valid images, and one the worker must refuse --------------------
    Case("CMYK JPEG", Kind.IMAGE, SUCCEEDS, SUCCEEDS, const("print.jpg", makers.cmyk_jpeg)),
    Case("16-bit greyscale PNG", Kind.IMAGE, SUCCEEDS, SUCCEEDS,
         const("scan.png", makers.grey16_png)),
    Case("8-bit greyscale JPEG", Kind.IMAGE, SUCCEEDS, SUCCEEDS,
         const("grey.jpg", makers.grey8_jpeg)),
    Case("greyscale PNG with alpha", Kind.IMAGE, SUCCEEDS, SUCCEEDS,
         const("cutout.png", makers.grey_alpha_png)),
    Case("animated GIF", Kind.IMAGE, SUCCEEDS, SUCCEEDS, const("loop.gif", makers.animated_gif)),
    Case("JPEG with garbage in its scan (decodable)", Kind.IMAGE, SUCCEEDS, SUCCEEDS,
         const("glitch.jpg", makers.garbled_jpeg)),
    Case("1x2000 sliver", Kind.IMAGE, failed("shortest side must be at least 16 px"),
         failed("shortest side must be at least 16 px"), const("sliver.png", makers.sliver_png)),
    Case("path traversal in the upload's file name", Kind.NAME, ACCEPTED, SUCCEEDS,
         const("evil.png", lambda: makers.noise_image(14)),
         filename="../../../../evil.png"),
]  # fmt: skip
