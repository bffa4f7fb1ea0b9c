"""Which way a vehicle moves in view, from the boxes of its track.

A camera at a gate looks along the lane from above it: a vehicle coming towards it grows
and moves down the frame (``approaching``), one going away shrinks and moves up
(``receding``), and one that does neither but moves sideways drives across (``left`` or
``right``). The ``angle`` is the way the box's centre moved in the frame, in degrees
counter-clockwise from the right: 0 right, 90 up, 180 left, 270 down. Boxes cut by the
frame's edge are left out by the tracker: their size and centre are not the vehicle's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Box ``(x1, y1, x2, y2)`` in frame pixels.
Box = tuple[int, int, int, int]

#: The ways a vehicle can move in view.
TRAVEL = ("approaching", "receding", "left", "right")
#: How much growing by a factor of e counts as a move towards the camera, in box sizes: a
#: vehicle coming at the camera grows by much less than it moves.
SIZE_WEIGHT = 3.0
#: A vehicle that moved less than this many of its box's sizes (towards the camera or
#: across) has not moved.
MOVED = 0.25
#: A move towards or away from the camera counts this many times one across: a vehicle in
#: a lane that bends moves sideways as much as along it.
TOWARDS_WEIGHT = 2.0
#: Boxes averaged at each end of the path, against jitter in single boxes.
ENDS = 3


@dataclass(frozen=True)
class Direction:
    """Which way a vehicle moved (one of :data:`TRAVEL`), and the angle of its move in
    the frame (degrees counter-clockwise from the right)."""

    travel: str
    angle: float


def _mean(boxes: Sequence[Box]) -> tuple[float, float, float]:
    """Centre x, centre y and size (square root of the area) of the boxes, averaged."""
    xs = [(b[0] + b[2]) / 2 for b in boxes]
    ys = [(b[1] + b[3]) / 2 for b in boxes]
    sizes = [math.sqrt(max(1, b[2] - b[0]) * max(1, b[3] - b[1])) for b in boxes]
    count = len(boxes)
    return sum(xs) / count, sum(ys) / count, sum(sizes) / count


def direction_of(path: Sequence[Box]) -> Direction | None:
    """Which way the boxes of ``path`` (oldest first) moved; ``None`` when they stood
    still or are fewer than two.

    Example:
        >>> direction_of([(100, 100, 140, 110), (90, 120, 150, 135)]).travel
        'approaching'
        >>> direction_of([(100, 100, 140, 110), (300, 102, 340, 112)]).travel
        'right'
    """
    if len(path) < 2:
        return None
    ends = max(1, min(ENDS, len(path) // 3))
    x0, y0, size0 = _mean(path[:ends])
    x1, y1, size1 = _mean(path[-ends:])
    scale = (size0 + size1) / 2
    towards = math.log(size1 / size0) * SIZE_WEIGHT + (y1 - y0) / scale
    across = (x1 - x0) / scale
    angle = math.degrees(math.atan2(-(y1 - y0), x1 - x0)) % 360.0
    if abs(towards) >= MOVED and abs(towards) * TOWARDS_WEIGHT >= abs(across):
        travel = "approaching" if towards > 0 else "receding"
    elif abs(across) >= MOVED:
        travel = "right" if across > 0 else "left"
    else:
        return None
    return Direction(travel, round(angle, 1))
