"""Write one benchmark's section of BENCHMARKS.md, leaving the other sections as they are.

Every benchmark owns the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`, so benchmarks
can be rerun one at a time without erasing each other's figures.
"""

from __future__ import annotations

import platform
import re
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Figures are written by the scripts in `bench/`. Every figure is a ratio against a\n"
    "baseline run in the same process, because absolute timings on shared machines drift\n"
    "from run to run.\n"
)


def machine_line() -> str:
    """Where and when the figures were taken, for the reader comparing runs."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"_{platform.machine()}, {platform.python_version()}, {stamp}_"


def write_section(name: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) the section `name` of BENCHMARKS.md with `body`."""
    text = path.read_text() if path.exists() else HEADER
    block = f"<!-- {name}:begin -->\n{body.rstrip()}\n<!-- {name}:end -->"
    pattern = re.compile(
        rf"<!-- {re.escape(name)}:begin -->.*?<!-- {re.escape(name)}:end -->", re.S
    )
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    path.write_text(text)
