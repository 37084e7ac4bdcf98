"""The style-transfer engine on random VGG19 weights: does the optimisation do what it claims?"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from atelier.errors import InputError, JobCancelled
from atelier.media import resize_longest, resize_to
from atelier.schemas import NSTParams
from tests.nst.conftest import SIZE
from workers.nst.colors import rgb_to_ycbcr
from workers.nst.engine import EngineJob, ProgressEvent, StyleTransferEngine


def params(**changes) -> NSTParams:
    """Adam unless a test says otherwise: these tests are about the engine, and Adam's step is
    one compiled function per shape (L-BFGS, the default, is tested on its own)."""
    return NSTParams(size=SIZE, **{"iterations": 10, "optimizer": "adam", **changes})


def test_total_loss_falls(engine, tubingen, starry):
    [result] = engine.run([EngineJob(tubingen, [("starry", starry)])], params(iterations=30))
    assert result.image.shape == (36, 48, 3)
    assert result.image.dtype == np.uint8
    assert len(result.losses) == 30
    assert [row.iteration for row in result.losses] == list(range(1, 31))
    first, last = result.losses[0], result.losses[-1]
    assert last.total < 0.5 * first.total
    assert last.total == pytest.approx(last.content + last.style + last.tv, rel=1e-4)
    assert result.device == "CPU"
    assert result.weights == "none"


def test_higher_style_weight_ends_with_lower_style_loss(engine, tubingen, starry):
    final = {}
    for weight in (1e2, 1e5):
        [result] = engine.run(
            [EngineJob(tubingen, [("starry", starry)])],
            params(iterations=20, style_weight=weight),
        )
        final[weight] = result.losses[-1].style / weight  # rows are weighted
    assert final[1e5] < final[1e2]


def test_preserve_colors_keeps_content_chroma(engine, tubingen, starry):
    job = EngineJob(tubingen, [("starry", starry)])
    [kept] = engine.run([job], params(preserve_colors=True))
    [free] = engine.run([job], params(preserve_colors=False))
    content = resize_longest(tubingen, SIZE)
    chroma = rgb_to_ycbcr(content)[..., 1:]
    kept_error = np.abs(rgb_to_ycbcr(kept.image.astype(np.float32))[..., 1:] - chroma)
    free_error = np.abs(rgb_to_ycbcr(free.image.astype(np.float32))[..., 1:] - chroma)
    assert kept_error.mean() < 1.0  # uint8 rounding and gamut clipping only
    assert free_error.mean() > 3 * kept_error.mean()
    # ...while the luminance is the stylised one
    assert np.abs(rgb_to_ycbcr(kept.image)[..., 0] - rgb_to_ycbcr(free.image)[..., 0]).mean() < 1.0


def test_same_seed_same_image_other_seed_other_image(engine, tubingen, starry):
    job = EngineJob(tubingen, [("starry", starry)])
    [a] = engine.run([job], params(init="noise", seed=7, iterations=3))
    [b] = engine.run([job], params(init="noise", seed=7, iterations=3))
    [c] = engine.run([job], params(init="noise", seed=8, iterations=3))
    np.testing.assert_array_equal(a.image, b.image)
    assert np.abs(a.image.astype(int) - c.image.astype(int)).mean() > 10


def test_batch_gives_the_same_images_as_single_runs(engine, tubingen, golden_gate, starry, scream):
    jobs = [
        EngineJob(tubingen, [("starry", starry)]),
        EngineJob(golden_gate, [("scream", scream)]),
        EngineJob(tubingen[:, ::-1].copy(), [("scream", scream)]),
    ]
    batch = engine.run(jobs, params())
    for job, batched in zip(jobs, batch, strict=True):
        [alone] = engine.run([job], params())
        difference = np.abs(batched.image.astype(int) - alone.image.astype(int))
        assert difference.max() <= 3, difference.max()
        assert batched.losses[-1].total == pytest.approx(alone.losses[-1].total, rel=1e-3)


def test_style_targets_are_computed_once_per_style(engine, tubingen, golden_gate, starry, scream):
    styles = [("grid-starry", starry), ("grid-scream", scream)]
    grid = [EngineJob(content, [style]) for content in (tubingen, golden_gate) for style in styles]
    before = engine.style_targets_computed
    engine.run(grid, params(iterations=2))
    assert engine.style_targets_computed == before + 2
    engine.run(grid[::-1], params(iterations=2))
    assert engine.style_targets_computed == before + 2
    engine.run(grid[:1], params(iterations=2, style_scale=1.5))  # another style size
    assert engine.style_targets_computed == before + 3


def test_lbfgs_decreases_the_loss(engine, tubingen, starry):
    [result] = engine.run(
        [EngineJob(tubingen, [("starry", starry)])], params(optimizer="lbfgs", iterations=15)
    )
    totals = [row.total for row in result.losses]
    assert totals[-1] < 0.5 * totals[0]
    assert all(later <= earlier * (1 + 1e-5) for earlier, later in itertools.pairwise(totals))


def test_coarse_to_fine_yields_the_requested_size(engine, tubingen, starry):
    events: list[ProgressEvent] = []
    [result] = engine.run(
        [EngineJob(tubingen, [("starry", starry)])],
        params(scales=2, iterations=6, preview_every=2),
        on_progress=events.append,
    )
    assert result.image.shape == (36, 48, 3)
    assert len(result.losses) == 6  # iterations are the total over all scales
    assert [e.iteration for e in events] == list(range(1, 7))
    assert {e.of for e in events} == {6}
    assert events[1].previews[0].shape == (18, 24, 3)  # 6 // 3 = 2 steps on the half scale
    assert events[3].previews[0].shape == (36, 48, 3)  # iteration 4, on the full scale


def test_scales_too_small_for_the_network_are_skipped(engine, tubingen, starry):
    # At 48 px, a third scale would be 9x12, below the 16 px block5 needs.
    events: list[ProgressEvent] = []
    [result] = engine.run(
        [EngineJob(tubingen, [("starry", starry)])],
        params(scales=3, iterations=6, preview_every=1),
        on_progress=events.append,
    )
    assert result.image.shape == (36, 48, 3)
    assert len(result.losses) == 6
    shapes = [e.previews[0].shape[:2] for e in events]
    assert shapes == [(18, 24)] * 2 + [(36, 48)] * 4  # two scales: 6 // 3 coarse, 4 fine


def test_progress_previews_and_mixed_shapes(engine, tubingen, hopper, starry):
    events: list[ProgressEvent] = []
    results = engine.run(
        [EngineJob(hopper, [("starry", starry)]), EngineJob(tubingen, [("starry", starry)])],
        params(iterations=4, preview_every=2),
        on_progress=events.append,
    )
    assert [r.image.shape for r in results] == [(48, 41, 3), (36, 48, 3)]
    assert [e.iteration for e in events] == [1, 2, 3, 4]
    assert all(len(e.losses) == 2 for e in events)
    assert [e.previews is not None for e in events] == [False, True, False, True]
    assert [p.shape for p in events[-1].previews] == [(48, 41, 3), (36, 48, 3)]
    for index, result in enumerate(results):
        assert result.losses == [e.losses[index] for e in events]
        np.testing.assert_array_equal(events[-1].previews[index].shape, result.image.shape)


def test_should_stop_cancels(engine, tubingen, starry):
    seen: list[int] = []
    with pytest.raises(JobCancelled):
        engine.run(
            [EngineJob(tubingen, [("starry", starry)])],
            params(iterations=50),
            on_progress=lambda e: seen.append(e.iteration),
            should_stop=lambda: len(seen) >= 3,
        )
    assert seen == [1, 2, 3]


def test_style_blend_with_one_zero_weight_equals_the_other_style(engine, tubingen, starry, scream):
    both = EngineJob(tubingen, [("starry", starry), ("scream", scream)])
    [blended] = engine.run([both], params(iterations=3, style_blend=(1.0, 0.0)))
    [alone] = engine.run([EngineJob(tubingen, [("starry", starry)])], params(iterations=3))
    assert np.abs(blended.image.astype(int) - alone.image.astype(int)).max() <= 1


def test_style_init_and_style_layer_weights(engine, tubingen, starry):
    layers = ("block1_conv1", "block3_conv1")
    [result] = engine.run(
        [EngineJob(tubingen, [("starry", starry)])],
        params(iterations=1, init="style", style_layers=layers, style_layer_weights=(2.0, 0.5)),
    )
    stretched = resize_to(starry, 36, 48)  # the init: the style stretched over the content
    content = resize_longest(tubingen, SIZE)
    image = result.image.astype(np.float32)
    assert np.abs(image - stretched).max() <= 10.5  # one Adam step: lr 10, plus uint8 rounding
    assert np.abs(image - content).mean() > 20.0


def test_bad_inputs_are_input_errors(engine, tubingen, starry):
    with pytest.raises(InputError, match="style_blend"):
        engine.run([EngineJob(tubingen, [("starry", starry)])], params(style_blend=(1.0, 2.0)))
    strip = np.zeros((4, 200, 3), np.float32)
    with pytest.raises(InputError, match="shortest side"):
        engine.run([EngineJob(strip, [("starry", starry)])], params())
    with pytest.raises(InputError, match="at least one style"):
        engine.run([EngineJob(tubingen, [])], params())
    assert engine.run([], params()) == []


def test_xla_step_matches_plain_step(engine, tubingen, starry):
    xla = StyleTransferEngine("none", jit_compile=True)
    job = EngineJob(tubingen, [("starry", starry)])
    [compiled] = xla.run([job], params(iterations=5))
    [plain] = engine.run([job], params(iterations=5))
    assert np.abs(compiled.image.astype(int) - plain.image.astype(int)).max() <= 3
    assert compiled.losses[-1].total == pytest.approx(plain.losses[-1].total, rel=1e-3)


def test_first_time_steps_are_announced_once(tubingen, starry):
    """Loading the network and compiling for a new size take seconds with no iteration to
    show; the engine says so first, and only the first time."""
    engine = StyleTransferEngine("none", jit_compile=False)
    stages: list[str] = []
    job = EngineJob(tubingen, [("starry", starry)])
    engine.run([job], NSTParams(iterations=1, size=32), on_stage=stages.append)
    height, width = resize_longest(tubingen, 32).shape[:2]
    assert stages == ["loading VGG19, weights none", f"compiling for {width}×{height}"]  # noqa: RUF001
    stages.clear()
    engine.run([job], NSTParams(iterations=1, size=32, seed=1), on_stage=stages.append)
    assert stages == []  # nothing new: same network, same size
    engine.run([job], NSTParams(iterations=1, size=24), on_stage=stages.append)
    assert len(stages) == 1 and stages[0].startswith("compiling for ")  # a new size


def test_average_of_iterates_is_smoother_and_reported(engine, tubingen, starry):
    job = EngineJob(tubingen, [("starry", starry)])
    [last] = engine.run([job], params(iterations=20, learning_rate=20.0))
    [averaged] = engine.run([job], params(iterations=20, learning_rate=20.0, average=0.9))
    assert last.losses == averaged.losses  # the same optimisation: only the returned image differs
    assert averaged.final.iteration == last.final.iteration == 20
    assert averaged.final.tv < last.final.tv  # Adam's step noise averages out
    assert np.abs(averaged.image.astype(int) - last.image.astype(int)).mean() > 0.5


def test_learning_rate_decays_to_its_fraction_at_the_last_step(engine, tubingen, starry):
    """Adam's first step moves a pixel by the learning rate; with `learning_rate_decay` d the
    last step of a scale takes d times it: a tiny d leaves the second of two steps nothing to
    move, so the image ends where one undecayed step leaves it."""
    job = EngineJob(tubingen, [("starry", starry)])
    [one] = engine.run([job], params(iterations=1))
    [decayed] = engine.run([job], params(iterations=2, learning_rate_decay=1e-6))
    [constant] = engine.run([job], params(iterations=2, learning_rate_decay=1.0))
    assert np.abs(decayed.image.astype(int) - one.image.astype(int)).max() <= 1
    assert np.abs(constant.image.astype(int) - one.image.astype(int)).max() > 3
