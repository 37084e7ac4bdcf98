"""`python -m bench.time_to_quality`: the time-to-quality tables of BENCHMARKS.md.

With the real network (`--weights imagenet`, the default) it writes the `nst-quality` section;
with `--weights none` (the seeded random network) the `nst-quality-random` one. The section is
rewritten after every row, so a run cut short keeps the rows it finished. `--quick` (64 px,
two methods, 20 iterations) only prints. See `bench.nst_quality` for what a row measures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path

import tensorflow as tf

from bench import nst_quality as q
from bench.nst_images import STYLE, distinct_contents, style_image
from bench.report import machine_line, write_section
from workers.nst.device import configure_tensorflow

SECTIONS = {"imagenet": "nst-quality", "none": "nst-quality-random"}
VARIANTS = ("`--init noise`", "`--init fast`", "bfloat16 network")
VARIANT_NOTE = (
    "Variant rows (another start image, the bfloat16 network) take the fastest row of the first "
    "size; the other sizes measure the fastest rows of the first. bfloat16 is a timing row (40 "
    "iterations): compare its s/iteration with its float32 row. `--init fast` starts from the "
    "Magenta painting, far from the photo's content features."
)
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
                reached = f"not reached in {row.stopped} (under {row.floor:g}x)"
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
    checks = ", ".join(
        f"{100 * r.tutorial_check:.2g}% ({r.size} px)" for r in results if r.tutorial_check >= 0
    )
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
        "of it at 1/F of the tutorial's estimated seconds (`under Fx`: that row is less than "
        "F times faster than the tutorial). Multi-scale rows "
        "count all their steps and reach the target only on the full-size scale. "
        "`decay to f`: the learning rate falls geometrically to f times its start over each "
        "scale (`learning_rate_decay`).",
        *(
            [VARIANT_NOTE]
            if any(r.method.endswith(VARIANTS) for x in results for r in x.rows)
            else []
        ),
        "No GPU on this machine: CPU rows only.",
        f"Load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores shared "
        "with other work; the interleaved tutorial timing puts that load on both sides).",
    ]


def _loaded(data: dict) -> q.SizeResult:
    rows = [q.Reached(**row) for row in data.pop("rows")]
    averaged = data.pop("averaged")
    return q.SizeResult(**data, rows=rows, averaged=averaged and q.Averaged(**averaged))


def render(paths: list[str], weights: str, section: str, extra: list[str]) -> None:
    """Merge the sizes of several runs (rows of one size run in parallel, sharing the target
    the first of them computed) and write the section."""
    by_size: dict[int, q.SizeResult] = {}
    loads = []
    for path in paths:
        saved = json.loads(Path(path).read_text())
        loads.append(saved["load"])
        for result in map(_loaded, saved["results"]):
            merged = by_size.setdefault(result.size, result)
            if merged is result:
                continue
            merged.rows += result.rows
            merged.tutorial_steps += result.tutorial_steps
            merged.averaged = merged.averaged or result.averaged
            if math.isnan(merged.tutorial_check):
                merged.tutorial_check = result.tutorial_check
    results = [by_size[size] for size in sorted(by_size)]
    load = tuple(max(values) for values in zip(*loads, strict=True))
    text = table(results, weights, notes(results, weights, load) + extra) + machine_line()
    print(text)
    write_section(section, text)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="imagenet", help="imagenet, none or a .h5 path")
    parser.add_argument("--sizes", type=_ints, help="comma-separated sizes in px")
    parser.add_argument("--methods", help="comma-separated method keys (default: all)")
    parser.add_argument("--finalists", type=int, default=2, help="methods at the other sizes")
    parser.add_argument("--quick", action="store_true", help="64 px, 2 methods, print only")
    parser.add_argument("--no-variants", action="store_true", help="main methods only")
    parser.add_argument("--variants-of", help="the variants of this method, not the fastest's")
    parser.add_argument("--averaged-iterations", type=int, help="for the averaged iterate")
    parser.add_argument("--section", help="the BENCHMARKS.md section to write")
    parser.add_argument("--target", type=float, help="the first size's target, if known")
    parser.add_argument("--floor", type=float, default=q.MIN_SPEEDUP, help="stop rows below this")
    parser.add_argument("--save", type=Path, help="also keep the results in this JSON file")
    parser.add_argument("--threads", type=int, help="TensorFlow intra-op threads (default: cores)")
    parser.add_argument(
        "--render", help="comma-separated JSON files of runs: merge them, write the table"
    )
    parser.add_argument("--note", action="append", default=[], help="a note for the table")
    return parser


def _methods(args: argparse.Namespace) -> tuple[q.Method, ...]:
    methods = q.METHODS
    if args.methods is not None:
        keys = args.methods.split(",")
        methods = tuple(m for k in keys for m in q.METHODS if m.key == k)  # in the order given
    if args.quick:
        methods = tuple(q.replace(m, cap=20) for m in methods[:2])
    return methods


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    load = os.getloadavg()
    section = args.section or SECTIONS.get(args.weights, "nst-quality")
    if args.render:
        render(args.render.split(","), args.weights, section, args.note)
        return
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    configure_tensorflow()
    methods = _methods(args)
    sizes = args.sizes or ([64] if args.quick else [128, 256])
    results: list[q.SizeResult] = []

    def write() -> None:
        text = table(results, args.weights, notes(results, args.weights, load)) + machine_line()
        print(text, flush=True)
        if not args.quick:
            write_section(section, text)
        if args.save:
            saved = {"load": load, "results": [dataclasses.asdict(r) for r in results]}
            args.save.write_text(json.dumps(saved))

    first = sizes[0]
    run = q.SizeRun(distinct_contents(1, first)[0], style_image(first), first, args.weights,
                    target=args.target, floor=args.floor)  # fmt: skip
    results.append(run.result)
    rows = []
    for method in methods:
        rows.append(run.row(method))
        write()
    best = q.fastest(rows, methods, 1)
    if args.variants_of:
        best = [next(m for m in q.METHODS if m.key == args.variants_of)]
    if best and not (args.quick or args.no_variants):
        for variant in q.variants(best[0]):
            run.row(variant)
            write()
        reached = rows[methods.index(best[0])].iterations if best[0] in methods else None
        run.averaged(best[0], args.averaged_iterations or reached or best[0].cap)
        write()
    for size in sizes[1:]:
        run = q.SizeRun(
            distinct_contents(1, size)[0], style_image(size), size, args.weights, floor=args.floor
        )
        results.append(run.result)
        for method in q.fastest(rows, methods, args.finalists):
            run.row(method)
            write()


if __name__ == "__main__":
    main()
