"""The fast engine with the real Magenta models: it paints, blends, obeys strength, any size.

Style closeness is measured in a fixed feature space (`tests.support.style_stats`: Gram matrices
of a seeded random network, and colour statistics), not by eye.
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest

from atelier.errors import InputError
from atelier.fast_models import MODEL_FILES, model_digests, model_dir
from tests.support.style_stats import color_distance, gram_distance
from workers.fast.engine import CONTENT_SIDE, OVERLAP, FastJob, tile_starts
from workers.nst.colors import rgb_to_ycbcr

SIZE = 64
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _strictly_decreasing(values: list[float]) -> bool:
    return all(b < a for a, b in itertools.pairwise(values))


# Each pair with a control: the same content painted in another style by the same network.
@pytest.mark.parametrize(
    ("content", "style", "other"),
    [
        ("golden_gate", "starry", "wave"),
        ("golden_gate", "scream", "wave"),
        ("tubingen", "scream", "wave"),
        ("tubingen", "wave", "scream"),
    ],
)
def test_result_is_closer_to_its_style_than_the_content(
    fast_engine, contents, styles, references, content: str, style: str, other: str
):
    """Compared within the run, never with a margin set on one CPU (the int8 network's output
    differs a little between CPUs): the result is closer to its painting than the content is,
    and closer than the content painted in another style (so it is this style that moved it)."""
    result = fast_engine.stylize(FastJob(contents[content], [(style, styles[style])]), SIZE).image
    assert result.shape == (*contents[content].shape[:2], 3) and result.dtype == np.uint8
    control = fast_engine.stylize(FastJob(contents[content], [(other, styles[other])]), SIZE).image
    reference = references[style]
    for distance in (gram_distance, color_distance):
        near = distance(result, reference)
        assert near < distance(contents[content], reference), distance.__name__
        assert near < distance(control, reference), distance.__name__


def test_blend_moves_the_result_from_one_style_to_the_other(
    fast_engine, contents, styles, references
):
    """Weight of the scream from 0 to 1: closer to the scream, farther from the wave, each
    step (both measures, as differences of distances)."""
    job = FastJob(contents["golden_gate"], [("scream", styles["scream"]), ("wave", styles["wave"])])
    grams, colours = [], []
    for weight in STRENGTHS:
        image = fast_engine.stylize(job, SIZE, blend=(weight, 1.0 - weight)).image
        grams.append(
            gram_distance(image, references["scream"]) - gram_distance(image, references["wave"])
        )
        colours.append(
            color_distance(image, references["scream"]) - color_distance(image, references["wave"])
        )
    assert _strictly_decreasing(grams), grams
    assert _strictly_decreasing(colours), colours


def test_strength_moves_the_result_from_the_content_to_the_style(
    fast_engine, contents, styles, references
):
    job = FastJob(contents["golden_gate"], [("scream", styles["scream"])], "golden_gate")
    images = [fast_engine.stylize(job, SIZE, strength=s).image for s in STRENGTHS]
    grams = [gram_distance(image, references["scream"]) for image in images]
    colours = [color_distance(image, references["scream"]) for image in images]
    assert _strictly_decreasing(grams), grams
    assert _strictly_decreasing(colours), colours


def test_style_vectors_are_computed_once_per_style(fast_engine, contents, styles):
    before = fast_engine.style_vectors_computed
    for content in contents.values():
        fast_engine.stylize(FastJob(content, [("cached-starry", styles["starry"])]), 32)
    assert fast_engine.style_vectors_computed == before + 1
    job = FastJob(contents["tubingen"], [("cached-starry", styles["starry"])], "own-tubingen")
    fast_engine.stylize(job, 32, strength=0.5)
    fast_engine.stylize(job, 32, strength=0.3)
    assert fast_engine.style_vectors_computed == before + 2  # the content's own vector, once


def test_preserve_colors_keeps_the_content_chroma(fast_engine, contents, styles):
    content = contents["golden_gate"]
    job = FastJob(content, [("scream", styles["scream"])])
    plain = fast_engine.stylize(job, SIZE).image
    kept = fast_engine.stylize(job, SIZE, preserve_colors=True).image
    chroma = rgb_to_ycbcr(content)[..., 1:]
    assert np.abs(rgb_to_ycbcr(kept)[..., 1:] - chroma).mean() < 3.0
    assert np.abs(rgb_to_ycbcr(plain)[..., 1:] - chroma).mean() > 10.0
    assert (
        np.corrcoef(rgb_to_ycbcr(kept)[..., 0].ravel(), rgb_to_ycbcr(plain)[..., 0].ravel())[0, 1]
        > 0.9
    )


def test_large_outputs_are_painted_in_feathered_tiles(fast_engine, contents, styles):
    job = FastJob(contents["tubingen"], [("starry", styles["starry"])])
    result = fast_engine.stylize(job, 480)
    assert result.image.shape == (360, 480, 3)
    assert result.tiles == 2  # two 384 px windows side by side, the height reflect-padded
    small = fast_engine.stylize(job, 48)
    assert small.image.shape == (36, 48, 3) and small.tiles == 1


def test_tiles_cover_the_image_with_overlap():
    for length in (385, 600, 1000, 2049):
        starts = tile_starts(length)
        assert starts[0] == 0 and starts[-1] + CONTENT_SIDE == length
        assert all(b - a <= CONTENT_SIDE - OVERLAP for a, b in itertools.pairwise(starts))
    assert tile_starts(300) == [0]


def test_blend_of_the_wrong_length_is_refused(fast_engine, contents, styles):
    job = FastJob(contents["tubingen"], [("starry", styles["starry"])])
    with pytest.raises(InputError, match="style_blend has 2 weights for 1"):
        fast_engine.stylize(job, 32, blend=(0.5, 0.5))


def test_model_digests_are_those_of_the_packaged_files():
    digests = model_digests()
    assert set(digests) == set(MODEL_FILES)
    for name, digest in digests.items():
        assert hashlib.sha256((model_dir() / name).read_bytes()).hexdigest() == digest
