"""The style-transfer benchmark's measuring core on tiny images: every requested row comes back
with usable figures, and the report has a line per row. No timing is asserted."""

from __future__ import annotations

import math

import pytest

from bench.nst import Row, measure, table, tf32_peak

pytestmark = pytest.mark.slow  # two XLA compiles and the eager baseline: ~30 s on 2 cores


def test_measure_returns_a_well_formed_row_per_size_and_batch():
    rows = measure(sizes=[32], batches=[1, 2], iterations=1)
    assert [(row.size, row.batch) for row in rows] == [(32, 1), (32, 2)]
    for row in rows:
        assert isinstance(row, Row)
        assert row.iterations == 1
        figures = (
            row.baseline_s,
            row.engine_s,
            row.speedup,
            row.baseline_first_s,
            row.engine_first_s,
            row.flops_per_image_step,
            row.engine_iterations_per_second,
            row.engine_tflops,
            row.engine_gflops,
            row.matmul_share,
        )
        assert all(math.isfinite(value) and value > 0 for value in figures), row
    text = table(rows, gpu=None, peak=None, notes=["a note"])
    body = [line for line in text.splitlines() if line.startswith("| 32 |")]
    assert len(body) == 2
    assert all(line.count("|") == 10 for line in body)  # nine columns on CPU


def test_tf32_peak_tells_the_pcie_h100_from_the_sxm_one():
    assert tf32_peak("NVIDIA H100 PCIe", None) == 378.0
    assert tf32_peak("NVIDIA H100 80GB HBM3", None) == 494.7
    assert tf32_peak("NVIDIA H200", None) == 494.7
    assert tf32_peak("NVIDIA A100-SXM4-80GB", None) == 156.0
    assert tf32_peak("NVIDIA L4", None) is None
    assert tf32_peak("NVIDIA L4", 60.0) == 60.0


def test_time_to_quality_rows_and_table_on_a_tiny_image():
    from bench import nst_quality as q
    from bench.nst_images import distinct_contents, style_image
    from bench.time_to_quality import table as quality_table

    # A floor near zero: no stop at a fraction of the tutorial's time, which on a tiny image is
    # shorter than the row's compile.
    content, style = distinct_contents(1, 32)[0], style_image(32)
    run = q.SizeRun(content, style, 32, "none", iterations=4, floor=1e-3)
    adam = q.replace(q.METHODS[0], cap=4)  # one XLA compile
    row = run.row(adam)
    assert math.isfinite(run.result.target) and run.result.target > 0
    assert run.result.tutorial_check < 0.01  # the eager loop and its compiled stand-in agree
    assert row.method == adam.name and row.best > 0 and row.cap == 4
    assert row.tutorial_step > 0 and row.tutorial_seconds > row.tutorial_step
    assert len(run.result.tutorial_steps) == q.PROBE  # the steps before the row
    run.averaged(adam, 3)
    assert run.result.averaged is not None and run.result.averaged.iterations == 3
    text = quality_table([run.result], "none", ["a note"])
    assert text.count("| 32 |") == 1
    assert "random-init VGG19" in text and "Averaged iterate (32 px" in text
