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
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np

from workers.video.detect import Box, FaceDetector, intersection
from workers.video.links import (
    Edges,
    FaceLinks,
    Node,
    TrackOptions,
    box_from,
    edges_of,
    match_boxes,
    top_speed,
    velocity_between,
)
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


class FaceTracks(FaceLinks):
    """Detections of the detection frames seen so far, and the boxes they give each frame."""

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
        return velocity_between(self.smoothed(first), self.smoothed(second), second[0] - first[0])

    def _held(self, node: Node, frames: int, forward: bool) -> Box:
        """Where a face can be `frames` frames after (`forward`) or before its detection `node`
        with no detection in between: the hull of staying where it was found and walking on at
        its speed, grown by `grow` x speed x frames."""
        box = self.smoothed(node)
        velocity = self._motion(node, forward=not forward)
        sign = 1 if forward else -1
        edges = edges_of(box)
        walked = [e + sign * v * frames for e, v in zip(edges, velocity, strict=True)]
        hull = (
            min(edges[0], walked[0]),
            min(edges[1], walked[1]),
            max(edges[2], walked[2]),
            max(edges[3], walked[3]),
        )
        return box_from(hull, self.options.grow * top_speed(velocity) * frames)

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
                        speed = top_speed(velocity_between(a, b, later - key))
                        margin = opts.grow * speed * min(t - key, later - t)
                        moved = interpolate_box(a, b, (t - key) / (later - key))
                        boxes.append(box_from(edges_of(moved), margin))
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
