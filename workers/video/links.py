"""The links between a video's face detections: which detection on one detection frame is the
same face as which on the next (or, across a gap the detector missed, a later) one, which
detections are confirmed, and each detection's smoothed box. `workers.video.track` turns them
into the boxes of every frame; its docstring describes the rules (links, confirmation,
smoothing) and `TrackOptions` their thresholds.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.video.detect import Box, iou
from workers.video.refine import Detection


@dataclass(frozen=True)
class TrackOptions:
    """Tracking thresholds, in frames of the source video (see the module docstring), and those
    of detection on demand (`workers.video.refine`): `quiet` is how far (a share of its size) a
    face may move between two keyframes without the frames between being searched, `search` the
    fastest a face is looked for (a share of its size a frame)."""

    hold: int = 12
    max_gap: int = 25
    window: int = 12
    support: int = 3
    confirm: float = 0.5
    smooth: int = 2
    grow: float = 0.5
    quiet: float = 0.25
    search: float = 0.5

    @classmethod
    def for_rate(cls, fps: float, every: int) -> TrackOptions:
        """Half a second of hold and confirmation window, a second of bridged gap, and never
        less than the keyframe spacing needs (a bridge must reach past one missed keyframe)."""
        fps = fps if fps > 0 else 25.0
        return cls(
            hold=max(every, round(fps / 2)),
            max_gap=max(2 * every, round(fps)),
            window=max(2 * every, round(fps / 2)),
        )

    def reach(self, every: int) -> int:
        """How many frames before and after frame t the detections that decide t's boxes lie."""
        return self.hold + self.max_gap + self.window + (self.smooth + 1) * every


def match_boxes(before: list[Box], after: list[Box]) -> list[tuple[int, int]]:
    """Pairs (i, j) of boxes that are probably the same face, best pairs first: overlapping
    boxes by overlap, then boxes whose centres lie within about one face size of each other."""
    candidates = []
    for i, a in enumerate(before):
        for j, b in enumerate(after):
            size = (a.w + a.h + b.w + b.h) / 4 or 1.0
            distance = np.hypot(a.x + a.w / 2 - b.x - b.w / 2, a.y + a.h / 2 - b.y - b.h / 2)
            overlap = iou(a, b)
            if overlap > 0 or distance < size:
                candidates.append((-overlap, distance / size, i, j))
    pairs: list[tuple[int, int]] = []
    used_before: set[int] = set()
    used_after: set[int] = set()
    for _, _, i, j in sorted(candidates):
        if i not in used_before and j not in used_after:
            pairs.append((i, j))
            used_before.add(i)
            used_after.add(j)
    return pairs


Node = tuple[int, int]
"""A detection: (detection frame index, position in that frame's list)."""
Edges = tuple[float, float, float, float]
"""A box as its edges (x0, y0, x1, y1), or the speed of each edge in px a frame."""


def edges_of(box: Box) -> Edges:
    return (box.x, box.y, box.x + box.w, box.y + box.h)


def velocity_between(a: Box, b: Box, frames: int) -> Edges:
    """Each edge's speed, px a frame, from box `a` to box `b` `frames` frames later."""
    return tuple((q - p) / frames for p, q in zip(edges_of(a), edges_of(b), strict=True))  # type: ignore[return-value]


def box_from(edges: Edges, margin: float = 0.0) -> Box:
    """The box with these edges, grown by `margin` px on every side."""
    x0, y0 = round(edges[0] - margin), round(edges[1] - margin)
    x1, y1 = round(edges[2] + margin), round(edges[3] + margin)
    return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def top_speed(velocity: Edges) -> float:
    return max(abs(v) for v in velocity)


class FaceLinks:
    """Detections of the detection frames seen so far, and the links between them."""

    def __init__(self, options: TrackOptions) -> None:
        self.options = options
        self.keyframes: list[int] = []
        self.found: dict[int, list[Detection]] = {}
        self._links: dict[int, list[tuple[int, int]]] = {}
        self._memo: dict[int, dict[tuple[str, int], object]] = {}
        self.ended = False

    def add(self, index: int, detections: list[Detection]) -> None:
        """Record detection frame `index` (later than every one recorded before)."""
        if self.keyframes and index <= self.keyframes[-1]:
            raise ValueError(f"keyframe {index} is not after {self.keyframes[-1]}")
        self.keyframes.append(index)
        self.found[index] = detections

    def finish(self) -> None:
        """No detection frame follows: every answer about the recorded ones is final."""
        self.ended = True

    def forget(self, before: int) -> None:
        """Drop the detection frames before `before` and what was worked out from them."""
        cut = bisect.bisect_left(self.keyframes, before)
        for key in self.keyframes[:cut]:
            del self.found[key]
            self._links.pop(key, None)
            self._memo.pop(key, None)
        del self.keyframes[:cut]

    def held(self) -> int:
        """How many detection frames are remembered (what `forget` bounds)."""
        return len(self.keyframes)

    def _cached(self, kind: str, node: Node, compute: Callable[[Node], Any]) -> Any:
        """`compute(node)`, remembered once no later keyframe can change it (keyframes reach
        `max_gap + window` frames past the node, or the stream has ended)."""
        memo = self._memo.setdefault(node[0], {})
        key = (kind, node[1])
        if key in memo:
            return memo[key]
        value = compute(node)
        span = self.options.max_gap + self.options.window
        if self.ended or self.keyframes[-1] - node[0] >= span:
            memo[key] = value
        return value

    def _next_key(self, key: int) -> int | None:
        at = bisect.bisect_right(self.keyframes, key)
        return self.keyframes[at] if at < len(self.keyframes) else None

    def _prev_key(self, key: int) -> int | None:
        at = bisect.bisect_left(self.keyframes, key)
        return self.keyframes[at - 1] if at > 0 else None

    def _pairs(self, key: int) -> list[tuple[int, int]]:
        """Matches between keyframe `key` and the next one (memoised once that one exists)."""
        if key not in self._links:
            following = self._next_key(key)
            if following is None:
                return []
            self._links[key] = match_boxes(
                [d.box for d in self.found[key]], [d.box for d in self.found[following]]
            )
        return self._links[key]

    def _linked_forward(self, node: Node) -> Node | None:
        key, i = node
        following = self._next_key(key)
        for a, b in self._pairs(key):
            if a == i and following is not None:
                return following, b
        return None

    def _linked_backward(self, node: Node) -> Node | None:
        key, j = node
        previous = self._prev_key(key)
        if previous is None:
            return None
        for a, b in self._pairs(previous):
            if b == j:
                return previous, a
        return None

    def successor(self, node: Node) -> tuple[Node, bool] | None:
        """The next detection of the same face and whether it is a bridge over a gap."""
        return self._cached("successor", node, self._successor)

    def _successor(self, node: Node) -> tuple[Node, bool] | None:
        linked = self._linked_forward(node)
        if linked is not None:
            return linked, False
        key, i = node
        box = self.found[key][i].box
        at = bisect.bisect_right(self.keyframes, key) + 1
        while at < len(self.keyframes) and self.keyframes[at] - key <= self.options.max_gap:
            later = self.keyframes[at]
            starts = [
                j
                for j in range(len(self.found[later]))
                if self._linked_backward((later, j)) is None
            ]
            pairs = match_boxes([box], [self.found[later][j].box for j in starts])
            if pairs:
                return (later, starts[pairs[0][1]]), True
            at += 1
        return None

    def predecessor(self, node: Node) -> Node | None:
        """The earlier detection that links or bridges to this one, if any."""
        return self._cached("predecessor", node, self._predecessor)

    def _predecessor(self, node: Node) -> Node | None:
        linked = self._linked_backward(node)
        if linked is not None:
            return linked
        key, _ = node
        at = bisect.bisect_left(self.keyframes, key) - 2
        while at >= 0 and key - self.keyframes[at] <= self.options.max_gap:
            earlier = self.keyframes[at]
            for i in range(len(self.found[earlier])):
                found = self.successor((earlier, i))
                if found is not None and found[0] == node:
                    return earlier, i
            at -= 1
        return None

    def confirmed(self, node: Node) -> bool:
        """Sure on its own, or part of a run of `support` linked detections within `window`."""
        return self._cached("confirmed", node, self._confirmed)

    def _confirmed(self, node: Node) -> bool:
        key, i = node
        if self.found[key][i].score >= self.options.confirm:
            return True
        low, high = key - self.options.window, key + self.options.window
        seen, todo = {node}, [node]
        while todo and len(seen) < self.options.support:
            current = todo.pop()
            neighbours = [self._linked_backward(current)]
            after = self.successor(current)
            neighbours.append(after[0] if after else None)
            for other in neighbours:
                if other is not None and other not in seen and low <= other[0] <= high:
                    seen.add(other)
                    todo.append(other)
        return len(seen) >= self.options.support

    def smoothed(self, node: Node) -> Box:
        """The mean box of this detection and as many linked ones on each side, up to `smooth`."""
        return self._cached("smoothed", node, self._smoothed)

    def _smoothed(self, node: Node) -> Box:
        before: list[Node] = []
        after: list[Node] = []
        back: Node | None = node
        forward: Node | None = node
        for _ in range(self.options.smooth):
            back = self._linked_backward(back) if back else None
            forward = self._linked_forward(forward) if forward else None
            if back is None or forward is None:
                break
            before.append(back)
            after.append(forward)
        chain = [self.found[n[0]][n[1]].box for n in (node, *before, *after)]
        if len(chain) == 1:
            return chain[0]
        cx = sum(b.x + b.w / 2 for b in chain) / len(chain)
        cy = sum(b.y + b.h / 2 for b in chain) / len(chain)
        w, h = sum(b.w for b in chain) / len(chain), sum(b.h for b in chain) / len(chain)
        return Box(round(cx - w / 2), round(cy - h / 2), round(w), round(h))
