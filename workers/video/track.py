"""Offline face tracking: keep every face covered from the first frame it is in view to the last,
through the frames where the detector misses it or did not look.

The video is recorded, so the boxes of frame t may depend on detections made *after* t: frames
wait in a look-ahead buffer until the detections they depend on exist. Detections come from
keyframes (index a multiple of `every`, plus the stream's first and last frame) and, where faces
move fast, are lost or appear unexplained, from the frames between two keyframes, searched on
demand (`workers.video.refine`). Every frame searched is a *detection frame*. Then:

- **Links.** A face found on one detection frame is paired with the same face on the next one
  (by overlap, else by nearness of the centres, `match_boxes`). A face without a partner there is
  *bridged* to the first later detection frame, at most `max_gap` frames on, where a matching
  face starts a new run of links: the detector missed it in between.
- **Confirmation.** A detection counts if it is sure (`confirm` score), or if at least `support`
  linked detections lie within `window` frames of it: faces persist, most false detections of a
  weak threshold do not, so the detector can run with a low threshold without blurring noise.
- **Smoothing.** Each detection's box is the mean of its own and those up to `smooth` links
  before and after it, as many on each side (at the start or end of a run, fewer), so masks do
  not jitter and a moving face's box is not pulled towards where it goes or came from.
- **Boxes of frame t.** Confirmed detections on t; between two linked detections, the box moved
  linearly from one to the other and *grown* on every side by `grow` x the face's speed (px a
  frame, the largest of its edges' speeds) x the frames to the nearer of the two: the further
  from a detection and the faster the face, the wider the mask, because a face does not walk in
  straight lines. Before its first detection a face is covered `hold` frames, and after its last
  one `hold` frames, by the hull of where it was found and where its speed takes it (each edge
  moving at its own speed, so a face entering or leaving at the frame's edge, whose box is cut
  there, is covered from the first frame a part of it shows), grown the same way.

The boxes of frame t depend only on detections within `reach` frames of t, so a segment decoded
from `reach` frames before its first frame to `reach` frames after its last one gives exactly the
boxes of the whole-video run. The buffer holds at most about `reach` frames, and detections more
than twice `reach` frames behind the frame last handed out are forgotten, so memory does not grow
with the video's length.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from workers.video.detect import Box, FaceDetector, intersection, iou
from workers.video.refine import Detection, interpolate_box, refine

__all__ = [
    "Detection",
    "FaceTracks",
    "TrackOptions",
    "TrackedFrame",
    "interpolate_box",
    "match_boxes",
    "track_faces",
]


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


class TrackedFrame(NamedTuple):
    """One frame with its face boxes. `bridged`: a box covers a face the detector did not find on
    this frame although it looked (or had looked within a gap it bridged), i.e. the tracker kept
    the face covered through a detection gap. `searched`: detector runs made on this frame beyond
    its keyframe's (detection on demand). `lost`: faces last seen on this frame, inside the
    picture, and not found again, though the video goes on."""

    index: int
    frame: np.ndarray
    boxes: list[Box]
    bridged: bool
    searched: int = 0
    lost: int = 0


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


def _edges(box: Box) -> Edges:
    return (box.x, box.y, box.x + box.w, box.y + box.h)


def _velocity(a: Box, b: Box, frames: int) -> Edges:
    """Each edge's speed, px a frame, from box `a` to box `b` `frames` frames later."""
    return tuple((q - p) / frames for p, q in zip(_edges(a), _edges(b), strict=True))  # type: ignore[return-value]


def _box(edges: Edges, margin: float = 0.0) -> Box:
    """The box with these edges, grown by `margin` px on every side."""
    x0, y0 = round(edges[0] - margin), round(edges[1] - margin)
    x1, y1 = round(edges[2] + margin), round(edges[3] + margin)
    return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def _speed(velocity: Edges) -> float:
    return max(abs(v) for v in velocity)


class FaceTracks:
    """Detections of the detection frames seen so far, and the boxes they give each frame."""

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

    def _motion(self, node: Node, forward: bool) -> Edges:
        """The face's edge speeds at this detection: towards its successor (`forward`) or from
        its predecessor; still when it has none."""
        if forward:
            after = self.successor(node)
            other = after[0] if after is not None else None
        else:
            other = self.predecessor(node)
        if other is None:
            return (0.0, 0.0, 0.0, 0.0)
        first, second = (node, other) if forward else (other, node)
        return _velocity(self.smoothed(first), self.smoothed(second), second[0] - first[0])

    def _held(self, node: Node, frames: int, forward: bool) -> Box:
        """Where a face can be `frames` frames after (`forward`) or before its detection `node`
        with no detection in between: the hull of staying where it was found and walking on at
        its speed, grown by `grow` x speed x frames."""
        box = self.smoothed(node)
        velocity = self._motion(node, forward=not forward)
        sign = 1 if forward else -1
        edges = _edges(box)
        walked = [e + sign * v * frames for e, v in zip(edges, velocity, strict=True)]
        hull = (
            min(edges[0], walked[0]),
            min(edges[1], walked[1]),
            max(edges[2], walked[2]),
            max(edges[3], walked[3]),
        )
        return _box(hull, self.options.grow * _speed(velocity) * frames)

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
                    if key - t <= opts.hold and self.predecessor(node) is None:
                        boxes.append(self._held(node, key - t, forward=False))
                        bridged = True
                    continue
                after = self.successor(node)
                if after is not None:
                    (later, j), is_bridge = after
                    if later > t:
                        a, b = self.smoothed(node), self.smoothed((later, j))
                        speed = _speed(_velocity(a, b, later - key))
                        margin = opts.grow * speed * min(t - key, later - t)
                        moved = interpolate_box(a, b, (t - key) / (later - key))
                        boxes.append(_box(_edges(moved), margin))
                        bridged |= is_bridge
                elif t - key <= opts.hold:
                    boxes.append(self._held(node, t - key, forward=True))
                    bridged = True
        return drop_covered(boxes), bridged

    def lost_at(self, t: int, width: int, height: int) -> int:
        """Faces whose last detection is on frame t, while they are inside the picture: neither
        at its edge nor walking out of it within `hold` frames. Call it once every detection
        frame up to `reach` frames after t is recorded, and only if the video goes on for
        longer than `hold` frames after t."""
        if t not in self.found:
            return 0
        lost = 0
        for i, detection in enumerate(self.found[t]):
            node = (t, i)
            if not self.confirmed(node) or self.successor(node) is not None:
                continue
            if self.predecessor(node) is None:
                continue  # seen once: a flicker, not a face followed and lost
            box = self.smoothed(node)
            margin = (box.w + box.h) / 2
            out = self._held(node, self.options.hold, forward=True)
            near_edge = (
                box.x < margin
                or box.y < margin
                or box.x + box.w > width - margin
                or box.y + box.h > height - margin
            )
            leaving = out.x + out.w > width or out.y + out.h > height or out.x < 0 or out.y < 0
            if not near_edge and not leaving and detection.seen:
                lost += 1
        return lost


def drop_covered(boxes: list[Box], share: float = 0.95) -> list[Box]:
    """The boxes without those lying (by `share` of their area or more) inside a larger one: a
    face's box held on after its track ended, where a new run of detections of it lies. Boxes that
    merely overlap are all kept (two faces passing each other), since keeping only one of them
    would uncover part of the other."""
    kept: list[Box] = []
    for box in sorted(set(boxes), key=lambda b: b.w * b.h, reverse=True):
        area = box.w * box.h
        if all(intersection(box, other) < share * area for other in kept):
            kept.append(box)
    return sorted(kept)


def _scored(detector: FaceDetector, frame: np.ndarray) -> list[Detection]:
    return [Detection(box, score) for box, score in detector.detect_scored(frame)]


def track_faces(
    frames: Iterable[tuple[int, np.ndarray]],
    detector: FaceDetector,
    every: int,
    options: TrackOptions | None = None,
) -> Iterator[TrackedFrame]:
    """Yield a TrackedFrame for each (index, frame) of `frames`, in order, detecting on keyframes
    and, where motion asks for it, on the frames between (see the module docstring). Indexes must
    increase by one. A frame is yielded once the keyframes up to `reach` frames after it have been
    detected, so at most about `reach` frames are held at once."""
    if every < 1:
        raise ValueError("detect every must be at least 1")
    options = options or TrackOptions()
    reach = options.reach(every)
    tracks = FaceTracks(options)
    held: deque[tuple[int, np.ndarray]] = deque()
    searched: dict[int, int] = {}
    shape: tuple[int, int] = (0, 0)

    def detect_key(index: int, frame: np.ndarray) -> None:
        found = _scored(detector, frame)
        if tracks.keyframes:
            previous = tracks.keyframes[-1]
            between = [(i, f) for i, f in held if previous < i < index]
            refined = refine(
                detector,
                (previous, tracks.found[previous]),
                (index, found),
                between,
                quiet=options.quiet,
                search=options.search,
            )
            for t, detections in sorted(refined.frames.items()):
                tracks.add(t, detections)
                searched[t] = refined.runs
        tracks.add(index, found)

    def out(t: int, kept: np.ndarray, final: bool) -> TrackedFrame:
        boxes, bridged = tracks.boxes_at(t)
        lost = tracks.lost_at(t, *shape) if not final else 0
        tracks.forget(t - 2 * reach)
        return TrackedFrame(t, kept, boxes, bridged, searched.pop(t, 0), lost)

    last: tuple[int, np.ndarray] | None = None
    for index, frame in frames:
        shape = (frame.shape[1], frame.shape[0])
        held.append((index, frame))
        if not tracks.keyframes or index % every == 0:
            detect_key(index, frame)
        last = (index, frame)
        while held and held[0][0] + reach <= index:
            t, kept = held.popleft()
            yield out(t, kept, final=False)
    if last is not None and tracks.keyframes[-1] != last[0]:
        detect_key(*last)
    tracks.finish()
    end = last[0] if last is not None else 0
    while held:
        t, kept = held.popleft()
        yield out(t, kept, final=end - t <= options.hold)
