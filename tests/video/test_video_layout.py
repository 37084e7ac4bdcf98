"""Boards: panel tiling, even sides for H.264, and the size limit."""

from __future__ import annotations

import numpy as np
import pytest

from workers.video.layout import compose_board, plan_board


def panels(count: int, width: int, height: int) -> list[np.ndarray]:
    return [np.full((height, width, 3), 40 * (i + 1), np.uint8) for i in range(count)]


@pytest.mark.parametrize(
    ("layout", "count", "size"),
    [("1x1", 1, (640, 360)), ("1x2", 2, (1280, 360)), ("2x2", 4, (1280, 720))],
)
def test_boards_of_640x360(layout: str, count: int, size: tuple[int, int]) -> None:
    geometry = plan_board(layout, 640, 360)
    assert (geometry.width, geometry.height) == size
    board = compose_board(panels(count, 640, 360), geometry)
    assert board.shape == (size[1], size[0], 3)


def test_panels_are_placed_left_to_right_top_to_bottom() -> None:
    board = compose_board(panels(4, 8, 6), plan_board("2x2", 8, 6))
    assert [board[0, 0, 0], board[0, 8, 0], board[6, 0, 0], board[6, 8, 0]] == [40, 80, 120, 160]


def test_a_1x1_board_is_the_frame_itself() -> None:
    frame = panels(1, 64, 48)[0]
    assert compose_board([frame], plan_board("1x1", 64, 48)) is frame


def test_odd_sides_become_even_by_replicating_the_edge() -> None:
    frame = np.arange(7 * 5 * 3, dtype=np.uint8).reshape(5, 7, 3)
    geometry = plan_board("1x1", 7, 5)
    board = compose_board([frame], geometry)
    assert board.shape == (6, 8, 3)
    assert np.array_equal(board[:5, :7], frame)
    assert np.array_equal(board[5, :7], frame[4]) and np.array_equal(board[:5, 7], frame[:, 6])
    assert plan_board("1x2", 641, 361).width == 1282 and plan_board("1x2", 641, 361).height == 362


def test_large_boards_are_scaled_down_to_even_panels() -> None:
    geometry = plan_board("2x2", 1920, 1080)
    assert (geometry.panel_width, geometry.panel_height) == (960, 540)
    assert (geometry.width, geometry.height) == (1920, 1080)
    narrow = plan_board("1x2", 1921, 1081, max_width=1000, max_height=1000)
    assert narrow.width <= 1000 and narrow.panel_width % 2 == 0 and narrow.panel_height % 2 == 0
    board = compose_board(panels(2, 1921, 1081), narrow)
    assert board.shape == (narrow.height, narrow.width, 3)


def test_wrong_panel_count_is_refused() -> None:
    with pytest.raises(ValueError, match="3 panels for a 2x2 board"):
        compose_board(panels(3, 8, 6), plan_board("2x2", 8, 6))


@pytest.mark.parametrize(
    ("layout", "size"),
    [("1x3", (1920, 360)), ("3x1", (640, 1080)), ("2x3", (1920, 720)), ("4x4", (1920, 1080))],
)
def test_boards_of_any_shape(layout: str, size: tuple[int, int]) -> None:
    """Rows by columns of panels, scaled down alike when the board would pass 1920x1080."""
    rows, cols = (int(n) for n in layout.split("x"))
    geometry = plan_board(layout, 640, 360)
    assert (geometry.rows, geometry.cols) == (rows, cols)
    assert (geometry.width, geometry.height) == size
    tiles = [np.full((360, 640, 3), 10 * (i + 1), np.uint8) for i in range(rows * cols)]
    board = compose_board(tiles, geometry)
    assert board.shape == (size[1], size[0], 3)
    pw, ph = geometry.panel_width, geometry.panel_height
    corners = [int(board[r * ph, c * pw, 0]) for r in range(rows) for c in range(cols)]
    assert corners == [10 * (i + 1) for i in range(rows * cols)]
