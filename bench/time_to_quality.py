"""`python -m bench.time_to_quality`: the time-to-quality tables of BENCHMARKS.md.

With the real network (`--weights imagenet`, the default) it writes the `nst-quality` section;
with `--weights none` (the seeded random network) the `nst-quality-random` one. The section is
rewritten after every row, so a run cut short keeps the rows it finished. `--quick` (64 px,
two methods, 20 iterations) only prints. See `bench.nst_quality` for what a row measures.
"""

from __future__ import annotations

import argparse
import os

from bench import nst_quality as q
from bench.nst_images import STYLE, distinct_contents, style_image
from bench.report import machine_line, write_section
from workers.nst.device import configure_tensorflow

SECTIONS = {"imagenet": "nst-quality", "none": "nst-quality-random"}
WEIGHT_WORDS = {"imagenet": "ImageNet weights", "none": "random-init VGG19"}


def _cell(value: float | None, digits: str = ".0f") -> str:
    return "n/a" if value is None else format(value, digits)


def table(results: list[q.SizeResult], weights: str, notes: list[str]) -> str:
    words = WEIGHT_WORDS.get(weights, f"weights {weights}")
    lines = [
        f"## Neural style transfer: time to quality ({words})",
        "",
        "Seconds and iterations to reach the loss the tutorial loop reaches after 500 "
        f"iterations, one image, on CPU, {words}. Speed-up: the tutorial's seconds (timed "
        "interleaved with that row) over the row's, in the same run.",
        "",
        "| size | method | iterations (cap) | seconds | warm seconds | tutorial seconds | "
        "speed-up | s/iteration | tutorial s/iteration | lowest loss / target |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        for row in result.rows:
            reached = "not reached" if row.iterations is None else str(row.iterations)
            if row.stopped is not None:
                reached = f"not reached in {row.stopped} (time limit)"
            speedup = "n/a" if row.speedup is None else f"{row.speedup:.1f}x"
            lines.append(
                f"| {result.size} | {row.method} | {reached} ({row.cap}) | "
                f"{_cell(row.seconds)} | {_cell(row.warm_seconds)} | "
                f"{row.tutorial_seconds:.0f} | {speedup} | {row.per_iteration:.3f} | "
                f"{row.tutorial_step:.3f} | {row.best / result.target:.3f} |"
            )
    for result in results:
        if result.averaged is not None:
            a = result.averaged
            lines += [
                "",
                f"Averaged iterate ({result.size} px, the fastest row's settings with "
                f"`--average {q.AVERAGE_DECAY}`, {a.iterations} iterations): the returned "
                f"average's loss is {a.average:.3f} of the target, the last iterate's "
                f"{a.last:.3f}; the average's TV loss is {a.tv_ratio:.3f} of the last "
                "iterate's.",
            ]
    lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def notes(results: list[q.SizeResult], weights: str, load: tuple[float, ...]) -> list[str]:
    words = WEIGHT_WORDS.get(weights, f"weights {weights}")
    checks = ", ".join(f"{100 * r.tutorial_check:.2g}% ({r.size} px)" for r in results)
    return [
        f"Content: a square crop of the first test photo; style: {STYLE}; default weights "
        "and layers (content 5, style 100, TV 1e-3, content layer block4_conv2, "
        f"relu1_1-relu5_1), initialised from the content unless the row says otherwise; {words}.",
        "Tutorial: the TensorFlow tutorial's eager loop (Adam 0.02 on [0, 1] = 5.1 grey "
        f"levels); {q.PROBE} eager steps are timed before every row and after the last, and a "
        "row's tutorial seconds are its first step (targets included) plus 499 times the "
        "median of the steps around that row. The target (its loss after 500 iterations) is "
        "that of the same update run compiled; the eager losses differ from the compiled ones "
        f"by at most {checks} over the eager steps taken.",
        "Engine rows: a fresh engine each (trace and XLA compile in the seconds; warm seconds "
        "leave the first iteration out), `iterations` set to the cap (a decay schedule spans "
        "it), stopped at the first full-size loss at or below the target, or when still short "
        f"of it at 1/{q.MIN_SPEEDUP:g} of the tutorial's seconds (time limit: such a row is "
        f"less than {q.MIN_SPEEDUP:g}x faster). Multi-scale rows "
        "count all their steps and reach the target only on the full-size scale. "
        "`decay to f`: the learning rate falls geometrically to f times its start over each "
        "scale (`learning_rate_decay`).",
        "Variant rows (another start image, the bfloat16 network) take the fastest row of the "
        "first size; the other sizes measure the fastest rows of the first. bfloat16 is a "
        "timing row (40 iterations): compare its s/iteration with its float32 row. `--init "
        "fast` starts from the Magenta painting, far from the photo's content features.",
        "No GPU on this machine: CPU rows only.",
        f"Load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores shared "
        "with other work; the interleaved tutorial timing puts that load on both sides).",
    ]


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="imagenet", help="imagenet, none or a .h5 path")
    parser.add_argument("--sizes", type=_ints, help="comma-separated sizes in px")
    parser.add_argument("--methods", help="comma-separated method keys (default: all)")
    parser.add_argument("--finalists", type=int, default=2, help="methods at the other sizes")
    parser.add_argument("--quick", action="store_true", help="64 px, 2 methods, print only")
    parser.add_argument("--no-variants", action="store_true", help="main methods only")
    parser.add_argument("--section", help="the BENCHMARKS.md section to write")
    args = parser.parse_args(argv)
    configure_tensorflow()
    load = os.getloadavg()
    methods = q.METHODS
    if args.methods:
        keys = args.methods.split(",")
        methods = tuple(m for k in keys for m in q.METHODS if m.key == k)  # in the order given
    if args.quick:
        methods = tuple(q.replace(m, cap=20) for m in methods[:2])
    sizes = args.sizes or ([64] if args.quick else [128, 256])
    section = args.section or SECTIONS.get(args.weights, "nst-quality")
    results: list[q.SizeResult] = []

    def write() -> None:
        text = table(results, args.weights, notes(results, args.weights, load)) + machine_line()
        print(text, flush=True)
        if not args.quick:
            write_section(section, text)

    runs = [
        q.SizeRun(distinct_contents(1, sizes[0])[0], style_image(sizes[0]), sizes[0], args.weights)
    ]
    results.append(runs[0].result)
    rows = []
    for method in methods:
        rows.append(runs[0].row(method))
        write()
    best = q.fastest(rows, methods, 1)
    if best and not (args.quick or args.no_variants):
        for variant in q.variants(best[0]):
            runs[0].row(variant)
            write()
        reached = rows[methods.index(best[0])].iterations or best[0].cap
        runs[0].averaged(best[0], reached)
        write()
    for size in sizes[1:]:
        run = q.SizeRun(distinct_contents(1, size)[0], style_image(size), size, args.weights)
        results.append(run.result)
        for method in q.fastest(rows, methods, args.finalists):
            run.row(method)
            write()


if __name__ == "__main__":
    main()
