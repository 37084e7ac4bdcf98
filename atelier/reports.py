"""What people look at after a batch: loss plots, loss CSVs and the contact sheet.

Pure PIL/numpy/matplotlib (no OpenCV, no TensorFlow) so producers can draw them from the database
and storage alone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LOSS_COLUMNS = ("iteration", "total", "content", "style", "tv")
LossRow = Sequence[float]


def loss_csv(rows: Sequence[LossRow]) -> str:
    """The loss history as CSV with a header, one line per iteration."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LOSS_COLUMNS)
    for row in rows:
        writer.writerow([int(row[0]), *(f"{v:.6g}" for v in row[1:])])
    return out.getvalue()


def loss_plot_png(rows: Sequence[LossRow], title: str = "") -> bytes:
    """A log-scale plot of every loss term against the iteration."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    data = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    try:
        for column, name in enumerate(LOSS_COLUMNS[1:], start=1):
            values = data[:, column]
            if np.any(values > 0):
                ax.plot(data[:, 0], np.where(values > 0, values, np.nan), label=name)
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss (weighted)")
        ax.set_title(title or "loss history")
        ax.grid(True, which="both", alpha=0.3)
        if len(data):
            ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()
    finally:
        plt.close(fig)


@dataclass(frozen=True)
class SheetCell:
    """One result of the grid, or None where a job has no result (yet)."""

    image: Image.Image | None
    caption: str = ""


def _fit(image: Image.Image | None, cell: int) -> np.ndarray:
    canvas = Image.new("RGB", (cell, cell), (236, 236, 236))
    if image is not None:
        scale = cell / max(image.width, image.height)  # small results are enlarged too
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        thumb = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        canvas.paste(thumb, ((cell - thumb.width) // 2, (cell - thumb.height) // 2))
    return np.asarray(canvas)


def _hconcat(tiles: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(list(tiles), axis=1)


def _vconcat(rows: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(list(rows), axis=0)


def _label(draw: ImageDraw.ImageDraw, at: tuple[int, int], text: str, font: object) -> None:
    """Dark text on a light box, readable over a thumbnail."""
    box = draw.multiline_textbbox(at, text, font=font)
    draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(255, 255, 255))
    draw.multiline_text(at, text, fill=(0, 0, 0), font=font)


def contact_sheet_png(
    contents: Sequence[Image.Image | None],
    styles: Sequence[Image.Image | None],
    cells: Sequence[Sequence[SheetCell]],
    cell: int = 160,
    row_labels: Sequence[str] | None = None,
    column_labels: Sequence[str] | None = None,
) -> bytes:
    """Contents as rows, styles as columns, each row and column headed by its input (an image,
    and text when labels are given: a parameter grid's values, say).

    Built like a filter board: tiles joined with hconcat into rows, rows joined with vconcat.
    """
    gap = np.full((cell, 4, 3), 255, np.uint8)
    header = [_fit(None, cell), gap] + [t for s in styles for t in (_fit(s, cell), gap)]
    rows = [_hconcat(header[:-1])]
    for content, row in zip(contents, cells, strict=True):
        tiles = [_fit(content, cell), gap]
        for entry in row:
            tiles += [_fit(entry.image, cell), gap]
        rows.append(np.full((4, rows[0].shape[1], 3), 255, np.uint8))
        rows.append(_hconcat(tiles[:-1]))
    sheet = Image.fromarray(_vconcat(rows))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for r, row in enumerate(cells, start=1):
        for c, entry in enumerate(row, start=1):
            if entry.caption:
                x, y = c * (cell + 4) + 4, r * (cell + 4) + cell - 14
                draw.text((x, y), entry.caption, fill=(0, 0, 0), font=font)
    for c, text in enumerate(column_labels or [], start=1):
        _label(draw, (c * (cell + 4) + 4, 4), text, font)
    for r, text in enumerate(row_labels or [], start=1):
        _label(draw, (4, r * (cell + 4) + 4), text, font)
    out = io.BytesIO()
    sheet.save(out, format="PNG")
    return out.getvalue()
