"""Vehicles that show no plate: found by the vehicle model now and then, and followed.

A vehicle whose plate box the plate detector never finds (the plate missing, covered or
turned away) leaves no plate track. While something moves in view and no plate is
tracked, the camera's pipeline has the vehicle model look at one detected frame every
``vehicles.watch_interval_s``; :class:`VehicleWatch` matches the vehicles of each look to
those of the looks before, and says when one is due to be reported: wholly in the frame
and at least ``vehicles.min_width`` pixels wide (near enough for its plate to be read) for
``min_seen_s`` (the camera's ``events.max_event_delay_s``: a plate found late has been
found by then), never holding a plate box, and driving towards or away from the camera
(one driving across shows its side, where no plate is). Owned by one camera's reporting task:
not thread-safe.

The looks of every live camera of a daemon share one :class:`WatchBudget`
(``vehicles.watch_looks_per_s``), so the watch's cost stays the same however many cameras
there are.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from streamer.config import VehiclesConfig
from streamer.sources.frame import Frame
from streamer.vision.direction import Box, Direction, direction_of
from streamer.vision.vehicles import INSIDE, Vehicle, iou, overlap

#: Looks a vehicle must be seen in before it is reported.
MIN_LOOKS = 2
#: A vehicle box at least this much like the one before (overlap, or a centre within this
#: share of its size) is the same vehicle.
SAME_IOU, SAME_CENTRE = 0.2, 0.5
#: A box closer to the frame's edge than this share of the frame may be cut off, and its
#: plate out of view.
EDGE = 0.01
#: A watched vehicle missed in this many looks has gone.
MISSED_LOOKS = 3


@dataclass
class Watched:
    """A vehicle the vehicle model found in one look or more.

    Attributes:
        watch_id: its number on this camera.
        boxes: its box in each look, oldest first.
        path: those wholly in the frame (which say which way it moves).
        best: the look with its largest box wholly in the frame, and its vehicle there.
        plated: a plate box was in it in some look: it is no vehicle without a plate.
        reported: its event was given.
        near_since: the clock of the first look that saw it near (see :meth:`VehicleWatch.near`).
    """

    watch_id: int
    first_seen: datetime
    last_seen: datetime
    first_clock: float
    last_clock: float
    boxes: list[Box] = field(default_factory=list)
    path: list[Box] = field(default_factory=list)
    best: tuple[Frame, Vehicle] | None = None
    plated: bool = False
    reported: bool = False
    near_since: float | None = None

    @property
    def looks(self) -> int:
        """In how many looks it was seen."""
        return len(self.boxes)

    @property
    def direction(self) -> Direction | None:
        """Which way it moved between the looks."""
        return direction_of(self.path)


def _centre_near(a: Box, b: Box) -> bool:
    size = max(a[2] - a[0], a[3] - a[1])
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    return math.hypot(dx, dy) <= SAME_CENTRE * size


def _inside(box: Box, shape: tuple[int, ...]) -> bool:
    height, width = shape[:2]
    margin_x, margin_y = EDGE * width, EDGE * height
    x1, y1, x2, y2 = box
    return x1 >= margin_x and y1 >= margin_y and x2 <= width - margin_x and y2 <= height - margin_y


class VehicleWatch:
    """The vehicles one camera's looks found, matched look to look.

    Example:
        >>> watch = VehicleWatch(VehiclesConfig(), min_seen_s=3.0)
        >>> due, gone = watch.look(frame, detector.vehicles(frame.image), plate_boxes)
    """

    def __init__(self, config: VehiclesConfig, min_seen_s: float) -> None:
        self.config = config
        self.min_seen_s = min_seen_s
        self._open: list[Watched] = []
        self._ids = itertools.count(1)

    @property
    def following(self) -> bool:
        """Whether a vehicle that may be reported is in view (so looks should go on)."""
        return any(not w.plated and not w.reported for w in self._open)

    def look(
        self, frame: Frame, vehicles: Sequence[Vehicle], plates: Sequence[Box]
    ) -> tuple[list[Watched], list[Watched]]:
        """Match ``vehicles``, found in ``frame`` with the ``plates`` the plate detector
        found there, to those seen before. Returns the vehicles due to be reported now
        (marked reported), and those reported before that have gone."""
        unmatched = list(self._open)
        for vehicle in vehicles:
            match = self._match(vehicle.box, unmatched)
            if match is None:
                match = Watched(
                    next(self._ids), frame.captured_at, frame.captured_at, frame.clock_s, 0.0
                )
                self._open.append(match)
            else:
                unmatched.remove(match)
            self._seen(match, frame, vehicle, plates)
        lost_s = MISSED_LOOKS * max(self.config.watch_interval_s, 0.1)
        gone = [w for w in self._open if frame.clock_s - w.last_clock > lost_s]
        self._open = [w for w in self._open if w not in gone]
        due = [w for w in self._open if self._due(w)]
        for watched in due:
            watched.reported = True
        return due, [w for w in gone if w.reported]

    def finish_all(self) -> list[Watched]:
        """End every watched vehicle (the source has ended); those that were reported."""
        ended, self._open = self._open, []
        return [w for w in ended if w.reported]

    def _match(self, box: Box, candidates: Sequence[Watched]) -> Watched | None:
        scored = [
            (iou(box, w.boxes[-1]), w)
            for w in candidates
            if iou(box, w.boxes[-1]) >= SAME_IOU or _centre_near(w.boxes[-1], box)
        ]
        return max(scored, key=lambda pair: pair[0])[1] if scored else None

    def _seen(
        self, watched: Watched, frame: Frame, vehicle: Vehicle, plates: Sequence[Box]
    ) -> None:
        watched.boxes.append(vehicle.box)
        if _inside(vehicle.box, frame.image.shape):
            watched.path.append(vehicle.box)
        watched.last_seen, watched.last_clock = frame.captured_at, frame.clock_s
        if any(overlap(plate, vehicle.box) >= INSIDE for plate in plates):
            watched.plated = True
        if watched.near_since is None and self.near(vehicle.box, frame.image.shape):
            watched.near_since = frame.clock_s
        size = (vehicle.box[2] - vehicle.box[0]) * (vehicle.box[3] - vehicle.box[1])
        if _inside(vehicle.box, frame.image.shape) and (
            watched.best is None
            or size
            > (watched.best[1].box[2] - watched.best[1].box[0])
            * (watched.best[1].box[3] - watched.best[1].box[1])
        ):
            watched.best = (frame, vehicle)

    def near(self, box: Box, shape: tuple[int, ...]) -> bool:
        """Whether a vehicle in ``box`` is near enough for its plate to be read: wholly in
        a frame of ``shape``, and at least ``vehicles.min_width`` pixels wide."""
        return _inside(box, shape) and box[2] - box[0] >= self.config.min_width

    def _due(self, watched: Watched) -> bool:
        if watched.plated or watched.reported or watched.looks < MIN_LOOKS:
            return False
        near = watched.near_since
        if near is None or watched.last_clock - near < self.min_seen_s:
            return False
        direction = watched.direction
        return direction is not None and direction.travel in {"approaching", "receding"}


class WatchBudget:
    """How many looks of the watch the daemon's live cameras may take between them: a
    token bucket of ``per_s`` looks a second (at most ``per_s``, or one, at once) on the
    wall clock; 0 sets no limit. A camera refused waits for its next detected frame.
    Used from the event loop only: not thread-safe.

    Example:
        >>> budget = WatchBudget(2.0)
        >>> budget.take(), budget.take(), budget.take()
        (True, True, False)
    """

    def __init__(self, per_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_s = per_s
        self._clock = clock
        self._most = max(1.0, per_s)
        self._tokens = self._most
        self._at = clock()

    def take(self) -> bool:
        """Whether a look may be taken now (and count it)."""
        if self.per_s <= 0:
            return True
        now = self._clock()
        self._tokens = min(self._most, self._tokens + (now - self._at) * self.per_s)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
