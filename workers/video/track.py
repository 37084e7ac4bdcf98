"""Offline face tracking: keep every face covered from a little before it is first found to a little
after it is last found, through the frames where the detector misses it.

The video is recorded, so the boxes of frame t may depend on detections made *after* t: frames
wait in a look-ahead buffer until the detections they depend on exist. Detections come from
keyframes (index a multiple of `every`, plus the stream's first and last frame). Then:

- **Links.** A face found on one keyframe is paired with the same face on the next keyframe (by
  overlap, else by nearness of the centres, `match_boxes`). A face without a partner on the next
  keyframe is *bridged* to the first later keyframe, at most `max_gap` frames on, where a matching
  face starts a new run of links: the detector missed it in between.
- **Confirmation.** A detection counts if it is sure (`confirm` score), or if at least `support`
  linked detections lie within `window` frames of it: faces persist, most false detections of a
  weak threshold do not, so the detector can run with a low threshold without blurring noise.
- **Boxes of frame t.** Confirmed detections on t; boxes interpolated linearly along each link and
  bridge spanning t; a face with no link onwards stays where it was last seen for `hold` frames
  (hysteresis), and one with no link backwards is covered `hold` frames before it was first seen
  (a face turning into view is found late). Boxes are smoothed: each detection is replaced by the
  mean of its box and those up to `smooth` links before and after, so masks do not jitter.

The boxes of frame t depend only on detections within `reach` frames of t, so a segment decoded
from `reach` frames before its first frame to `reach` frames after its last one gives exactly the
boxes of the whole-video run. The buffer holds at most about `reach` frames.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from workers.video.detect import Box, FaceDetector, iou, merge_overlapping


class Detection(NamedTuple):
    box: Box
    score: float


@dataclass(frozen=True)
class TrackOptions:
    """Tracking thresholds, in frames of the source video (see the module docstring)."""

    hold: int = 12
    max_gap: int = 25
    window: int = 12
    support: int = 3
    confirm: float = 0.5
    smooth: int = 2

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


class TrackedFrame(NamedTuple):
    """One frame with its face boxes; `bridged` when a box covers a face the detector did not
    find on this frame although it looked (or had looked within a gap it bridged), i.e. the
    tracker kept the face covered through a detection gap."""

    index: int
    frame: np.ndarray
    boxes: list[Box]
    bridged: bool


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


def interpolate_box(a: Box, b: Box, t: float) -> Box:
    """The box at fraction `t` (0..1) of the way from `a` to `b`."""
    return Box(*(round(p + (q - p) * t) for p, q in zip(a, b, strict=True)))


Node = tuple[int, int]
"""A detection: (keyframe index, position in that keyframe's list)."""


class FaceTracks:
    """Detections of the keyframes seen so far, and the boxes they give each frame."""

    def __init__(self, options: TrackOptions) -> None:
        self.options = options
        self.keyframes: list[int] = []
        self.found: dict[int, list[Detection]] = {}
        self._links: dict[int, list[tuple[int, int]]] = {}
        self._memo: dict[tuple[str, Node], object] = {}
        self.ended = False

    def add(self, index: int, detections: list[Detection]) -> None:
        """Record keyframe `index` (later than every keyframe recorded before)."""
        if self.keyframes and index <= self.keyframes[-1]:
            raise ValueError(f"keyframe {index} is not after {self.keyframes[-1]}")
        self.keyframes.append(index)
        self.found[index] = detections

    def finish(self) -> None:
        """No keyframe follows: every answer about the recorded ones is final."""
        self.ended = True

    def _cached(self, kind: str, node: Node, compute: Callable[[Node], Any]) -> Any:
        """`compute(node)`, remembered once no later keyframe can change it (keyframes reach
        `max_gap + window` frames past the node, or the stream has ended)."""
        key = (kind, node)
        if key in self._memo:
            return self._memo[key]
        value = compute(node)
        span = self.options.max_gap + self.options.window
        if self.ended or self.keyframes[-1] - node[0] >= span:
            self._memo[key] = value
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

    def has_predecessor(self, node: Node) -> bool:
        """Whether an earlier detection links or bridges to this one."""
        return self._cached("predecessor", node, self._has_predecessor)

    def _has_predecessor(self, node: Node) -> bool:
        if self._linked_backward(node) is not None:
            return True
        key, _ = node
        at = bisect.bisect_left(self.keyframes, key) - 2
        while at >= 0 and key - self.keyframes[at] <= self.options.max_gap:
            earlier = self.keyframes[at]
            for i in range(len(self.found[earlier])):
                found = self.successor((earlier, i))
                if found is not None and found[0] == node:
                    return True
            at -= 1
        return False

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
        """The mean box of this detection and up to `smooth` linked ones each side."""
        return self._cached("smoothed", node, self._smoothed)

    def _smoothed(self, node: Node) -> Box:
        chain = [self.found[node[0]][node[1]].box]
        back: Node | None = node
        forward: Node | None = node
        for _ in range(self.options.smooth):
            back = self._linked_backward(back) if back else None
            forward = self._linked_forward(forward) if forward else None
            chain += [self.found[n[0]][n[1]].box for n in (back, forward) if n is not None]
        if len(chain) == 1:
            return chain[0]
        cx = sum(b.x + b.w / 2 for b in chain) / len(chain)
        cy = sum(b.y + b.h / 2 for b in chain) / len(chain)
        w, h = sum(b.w for b in chain) / len(chain), sum(b.h for b in chain) / len(chain)
        return Box(round(cx - w / 2), round(cy - h / 2), round(w), round(h))

    def boxes_at(self, t: int) -> tuple[list[Box], bool]:
        """The boxes of frame t and whether one of them bridges a detection gap there."""
        opts = self.options
        span = max(opts.hold, opts.max_gap)
        first = bisect.bisect_left(self.keyframes, t - span)
        last = bisect.bisect_right(self.keyframes, t + opts.hold)
        boxes: list[Box] = []
        bridged = False
        for key in self.keyframes[first:last]:
            for i in range(len(self.found[key])):
                node = (key, i)
                if not self.confirmed(node):
                    continue
                if key == t:
                    boxes.append(self.smoothed(node))
                    continue
                if key > t:
                    if key - t <= opts.hold and not self.has_predecessor(node):
                        boxes.append(self.smoothed(node))
                        bridged = True
                    continue
                after = self.successor(node)
                if after is not None:
                    (later, j), is_bridge = after
                    if later > t:
                        fraction = (t - key) / (later - key)
                        boxes.append(
                            interpolate_box(
                                self.smoothed(node), self.smoothed((later, j)), fraction
                            )
                        )
                        bridged |= is_bridge
                elif t - key <= opts.hold:
                    boxes.append(self.smoothed(node))
                    bridged = True
        return merge_overlapping(boxes), bridged


def _scored(detector: FaceDetector, frame: np.ndarray) -> list[Detection]:
    return [Detection(box, score) for box, score in detector.detect_scored(frame)]


def track_faces(
    frames: Iterable[tuple[int, np.ndarray]],
    detector: FaceDetector,
    every: int,
    options: TrackOptions | None = None,
) -> Iterator[TrackedFrame]:
    """Yield a TrackedFrame for each (index, frame) of `frames`, in order, detecting on keyframes
    only (see the module docstring). Indexes must increase by one. A frame is yielded once the
    keyframes up to `reach` frames after it have been detected, so at most about `reach` frames
    are held at once."""
    if every < 1:
        raise ValueError("detect every must be at least 1")
    options = options or TrackOptions()
    reach = options.reach(every)
    tracks = FaceTracks(options)
    held: deque[tuple[int, np.ndarray]] = deque()
    last: tuple[int, np.ndarray] | None = None
    for index, frame in frames:
        if not tracks.keyframes or index % every == 0:
            tracks.add(index, _scored(detector, frame))
        held.append((index, frame))
        last = (index, frame)
        while held and held[0][0] + reach <= index:
            t, kept = held.popleft()
            yield TrackedFrame(t, kept, *tracks.boxes_at(t))
    if last is not None and tracks.keyframes[-1] != last[0]:
        tracks.add(last[0], _scored(detector, last[1]))
    tracks.finish()
    while held:
        t, kept = held.popleft()
        yield TrackedFrame(t, kept, *tracks.boxes_at(t))
